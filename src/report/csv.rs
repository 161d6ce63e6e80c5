//! Tidy tables (one row per point × predictor); files are written by [`super::files`].

use crate::error::Result;
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::Path;

pub use super::files::write_atomic;

/// A table of records with named fields (JSON objects, field order preserved).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// The records.
    pub records: Vec<Map<String, Value>>,
}

impl Rows {
    /// Builds rows from serializable structs (each must serialize to a JSON object).
    pub fn from_serialize<T: Serialize>(items: &[T]) -> Self {
        Rows {
            records: items
                .iter()
                .map(|i| match serde_json::to_value(i) {
                    Ok(Value::Object(m)) => m,
                    Ok(other) => {
                        let mut m = Map::new();
                        m.insert("value".into(), other);
                        m
                    }
                    Err(e) => {
                        let mut m = Map::new();
                        m.insert("error".into(), Value::String(e.to_string()));
                        m
                    }
                })
                .collect(),
        }
    }

    /// Column names: the ordered union of the records' fields.
    pub fn columns(&self) -> Vec<String> {
        let mut cols: Vec<String> = Vec::new();
        for r in &self.records {
            for k in r.keys() {
                if !cols.iter().any(|c| c == k) {
                    cols.push(k.clone());
                }
            }
        }
        cols
    }

    /// Renders as CSV text (missing and null cells are empty; numbers in full precision).
    pub fn to_csv(&self) -> String {
        let cols = self.columns();
        let mut w = ::csv::Writer::from_writer(Vec::new());
        // Writing to a Vec cannot fail.
        let _ = w.write_record(&cols);
        for r in &self.records {
            let _ = w.write_record(cols.iter().map(|c| r.get(c).map(cell).unwrap_or_default()));
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }

    /// Writes the CSV atomically.
    ///
    /// # Errors
    /// [`crate::Error::Io`] or [`crate::Error::Output`] ([`write_atomic`]).
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_csv().as_bytes())
    }
}

/// A JSON value as a CSV / table cell.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct R {
        a: u32,
        b: Option<f64>,
        c: &'static str,
    }

    #[test]
    fn csv_has_header_and_empty_nulls() {
        let rows = Rows::from_serialize(&[
            R {
                a: 1,
                b: None,
                c: "x,y",
            },
            R {
                a: 2,
                b: Some(0.5),
                c: "z",
            },
        ]);
        assert_eq!(rows.to_csv(), "a,b,c\n1,,\"x,y\"\n2,0.5,z\n");
    }
}
