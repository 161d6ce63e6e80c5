//! The measurement contract (`docs/measurements.md`): the `perfcast-measure` crate re-exported
//! (columns, typed [`Row`], [`Provenance`], streaming [`Reader`], [`Writer`], dates), plus what
//! only the library needs: where a row came from ([`Origin`]), each file's digest ([`Source`],
//! SHA-256 by the `sha2` crate) and reading a whole set of files routed by technique
//! ([`Measurements`]).
//!
//! Shared layer: imports nothing above [`crate::error`]; every technique's calibration reads its
//! rows through here.

pub mod digest;

pub use perfcast_measure::{
    iso8601, utc_now, Params, ParamsError, Provenance, Reader, Row, Writer, COLUMNS,
    LEGACY_COLUMNS, OPTIONAL_COLUMNS,
};

use crate::error::{Error, Result};
use digest::HashingReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

impl From<perfcast_measure::Error> for Error {
    fn from(e: perfcast_measure::Error) -> Self {
        match e {
            perfcast_measure::Error::Io { path, source } => Error::Io { path, source },
            other => {
                let (path, line, message) = other.parts();
                Error::parse(path.to_path_buf(), line, message)
            }
        }
    }
}

/// Where a row came from: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    /// The results file.
    pub file: Arc<Path>,
    /// 1-based line of the row.
    pub line: u64,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

impl Origin {
    /// A parse error at this row.
    pub fn err(&self, msg: impl Into<String>) -> Error {
        Error::parse(self.file.to_path_buf(), Some(self.line), msg)
    }
}

/// One results file's provenance as a calibration records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Source {
    /// Path as given.
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Rows in the file.
    pub rows: u64,
}

/// Reads `path` row by row (the contract's [`Reader`]), calling `f` on each row with its origin;
/// returns the file's size and SHA-256 (`rows` left 0 for the caller to fill).
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened; [`Error::Parse`] naming file and line for a
/// wrong header, a malformed row, or an error returned by `f`.
pub fn for_each_row(path: &Path, mut f: impl FnMut(Origin, Row) -> Result<()>) -> Result<Source> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hashing = HashingReader::new(std::io::BufReader::new(file));
    let file_arc: Arc<Path> = Arc::from(path);
    {
        let mut rdr = Reader::new(&mut hashing, path)?;
        while let Some(r) = rdr.next_row() {
            let (line, row) = r?;
            f(
                Origin {
                    file: file_arc.clone(),
                    line,
                },
                row,
            )?;
        }
    }
    Ok(Source {
        path: path.display().to_string(),
        sha256: hashing.hasher.hex(),
        bytes: hashing.hasher.len(),
        rows: 0,
    })
}

/// The `*.csv` files of `dir`, sorted by name.
///
/// # Errors
/// [`Error::Io`] when `dir` cannot be read.
pub fn csv_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv") && p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// The rows of one technique, in file order, with the files they came from.
#[derive(Debug, Clone, Default)]
pub struct Measurements {
    /// Technique name (the rows' `technique` column).
    pub technique: String,
    /// Rows with their origin.
    pub rows: Vec<(Origin, Row)>,
    /// The files holding at least one of these rows, in the order read (`rows` counts every
    /// row of the file, of any technique).
    pub sources: Vec<Source>,
}

/// Reads `paths` (in order) and splits the rows by technique, keeping only the techniques in
/// `known`.
///
/// # Errors
/// As [`for_each_row`]; a row whose technique is not in `known` is an [`Error::Parse`] at its
/// line naming the technique and the known ones.
pub fn read_by_technique(paths: &[PathBuf], known: &[&str]) -> Result<Vec<Measurements>> {
    let mut out: Vec<Measurements> = known
        .iter()
        .map(|t| Measurements {
            technique: t.to_string(),
            ..Measurements::default()
        })
        .collect();
    for p in paths {
        let mut rows = 0u64;
        let mut seen = vec![false; out.len()];
        let src = for_each_row(p, |o, r| {
            rows += 1;
            let i = known
                .iter()
                .position(|t| *t == r.technique)
                .ok_or_else(|| {
                    o.err(format!(
                        "technique = '{}': not a technique with a calibration; known: {}",
                        r.technique,
                        known.join(", ")
                    ))
                })?;
            seen[i] = true;
            out[i].rows.push((o, r));
            Ok(())
        })?;
        for (m, s) in out.iter_mut().zip(seen) {
            if s {
                m.sources.push(Source {
                    rows,
                    ..src.clone()
                });
            }
        }
    }
    Ok(out.into_iter().filter(|m| !m.rows.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_route_by_technique_and_unknown_ones_are_named() {
        let d = tempfile::tempdir().unwrap();
        let h = COLUMNS.join(",");
        let p = "2026-11-29T04:00:00Z,g,d,c,abc,cmd";
        let a = d.path().join("a.csv");
        let b = d.path().join("b.csv");
        std::fs::write(&a, format!("{h}\nspecdec,s,forward,m,,,1,2,100,,,forward_s,0.01,10,,s,{p}\nfreeze,s,layer,m,,,1,,,,seq=128,forward_s,0.02,10,,s,{p}\n")).unwrap();
        std::fs::write(
            &b,
            format!("{h}\nspecdec,s,e2e,m,none,0,1,9,100,,,tokens_per_s,50,3,,tokens/s,{p}\n"),
        )
        .unwrap();
        let parts = read_by_technique(&[a.clone(), b.clone()], &["specdec", "freeze"]).unwrap();
        let got: Vec<(&str, usize, usize)> = parts
            .iter()
            .map(|m| (m.technique.as_str(), m.rows.len(), m.sources.len()))
            .collect();
        assert_eq!(got, [("specdec", 2, 2), ("freeze", 1, 1)]);
        assert_eq!(parts[1].rows[0].1.params.get("seq"), Some("128"));
        assert_eq!(parts[1].rows[0].0.line, 3);
        assert_eq!(
            parts[0].sources[0].rows, 2,
            "rows of every technique in the file"
        );
        let e = read_by_technique(&[a, b], &["specdec"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.csv:3: technique = 'freeze'") && e.ends_with("known: specdec"),
            "{e}"
        );
    }
}
