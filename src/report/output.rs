//! Printing results on stdout as a table, JSON or CSV (`--format`).

use super::csv::{cell, Rows};
use serde_json::Value;
use std::fmt::Write as _;

/// Output format of the quick what-if commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    #[default]
    Table,
    /// One JSON object (or an array for several records): the stable contract for scripts.
    Json,
    /// CSV with a header.
    Csv,
}

/// Renders records in `format`. A single record in `table` format prints as `field  value` lines;
/// several as columns. `as_array` forces a JSON array even for one record.
pub fn print_records(rows: &Rows, format: Format, as_array: bool) -> String {
    match format {
        Format::Json => {
            let v: Vec<Value> = rows.records.iter().cloned().map(Value::Object).collect();
            let out = if v.len() == 1 && !as_array {
                serde_json::to_string_pretty(&v[0])
            } else {
                serde_json::to_string_pretty(&v)
            };
            out.unwrap_or_default() + "\n"
        }
        Format::Csv => rows.to_csv(),
        Format::Table => {
            if rows.records.len() == 1 && !as_array {
                let r = &rows.records[0];
                let w = r.keys().map(String::len).max().unwrap_or(0);
                let mut s = String::new();
                for (k, v) in r {
                    if !v.is_null() {
                        let _ = writeln!(s, "{k:<w$}  {}", human_field(k, v));
                    }
                }
                s
            } else {
                let cols: Vec<String> = rows
                    .columns()
                    .into_iter()
                    .filter(|c| {
                        rows.records
                            .iter()
                            .any(|r| r.get(c).is_some_and(|v| !v.is_null()))
                    })
                    .collect();
                let cells: Vec<Vec<String>> = rows
                    .records
                    .iter()
                    .map(|r| {
                        cols.iter()
                            .map(|c| r.get(c).map(|v| human_field(c, v)).unwrap_or_default())
                            .collect()
                    })
                    .collect();
                let widths: Vec<usize> = cols
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        cells
                            .iter()
                            .map(|r| r[i].len())
                            .max()
                            .unwrap_or(0)
                            .max(c.len())
                    })
                    .collect();
                let mut s = String::new();
                let line = |s: &mut String, items: &[String]| {
                    let parts: Vec<String> = items
                        .iter()
                        .zip(&widths)
                        .map(|(x, w)| format!("{x:>w$}"))
                        .collect();
                    let _ = writeln!(s, "{}", parts.join("  ").trim_end());
                };
                line(&mut s, &cols);
                for r in &cells {
                    line(&mut s, r);
                }
                s
            }
        }
    }
}

/// A value of field `key` for people: in the unit its name carries (`memory_bytes` → `141 GB`,
/// `step_s` → `47.7 ms`, see [`super::units::for_field`]), else [`human`].
fn human_field(key: &str, v: &Value) -> String {
    match v.as_f64() {
        Some(x) if v.is_number() => super::units::for_field(key, x).unwrap_or_else(|| human(v)),
        _ => human(v),
    }
}

/// A value for people: floats with 4–6 significant digits.
fn human(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x == 0.0 {
                "0".into()
            } else if x.abs() >= 1e6 || x.abs() < 1e-3 {
                format!("{x:.4e}")
            } else {
                let digits = (5 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
                format!("{x:.digits$}")
            }
        }
        other => cell(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_numbers() {
        assert_eq!(human(&serde_json::json!(1.948461538)), "1.94846");
        assert_eq!(human(&serde_json::json!(0.000123)), "1.2300e-4");
        assert_eq!(human(&serde_json::json!(12345.678)), "12345.7");
        assert_eq!(human(&serde_json::json!(7)), "7");
    }
}
