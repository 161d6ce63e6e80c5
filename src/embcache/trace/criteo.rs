//! Criteo Kaggle (Display Advertising Challenge) TSV: per line a label, 13 integer features and
//! 26 categorical features as 32-bit hex strings. Each line is one sample with 26 lookups, table =
//! categorical column (0..26). An empty categorical value is the "missing" row of its table
//! (id `u64::MAX`), as DLRM's preprocessing maps missing values to one reserved index.

use super::text::short;
use super::{io_err, Access};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Categorical columns (= tables) per line.
pub const CATEGORICAL: usize = 26;
/// Integer columns per line.
pub const INTEGER: usize = 13;
/// Id of the row that missing values map to.
pub const MISSING_ID: u64 = u64::MAX;

/// Streaming reader of a Criteo TSV (one line and 26 pending lookups).
pub struct CriteoReader {
    path: PathBuf,
    inner: BufReader<File>,
    line: String,
    line_no: u64,
    sample: u64,
    pending: Vec<Access>,
    done: bool,
}

impl CriteoReader {
    /// Opens `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| io_err(path, e))?;
        Ok(CriteoReader {
            path: path.into(),
            inner: BufReader::with_capacity(1 << 16, f),
            line: String::new(),
            line_no: 0,
            sample: 0,
            pending: Vec::with_capacity(CATEGORICAL),
            done: false,
        })
    }

    fn parse_line(&mut self) -> std::result::Result<(), String> {
        let s = self.line.trim_end_matches(['\n', '\r']);
        // The columns in a fixed array (no allocation per line).
        let mut fields = [""; 1 + INTEGER + CATEGORICAL];
        let mut n = 0usize;
        for f in s.split('\t') {
            if let Some(slot) = fields.get_mut(n) {
                *slot = f;
            }
            n += 1;
        }
        if n != 1 + INTEGER + CATEGORICAL {
            return Err(format!(
                "{n} tab-separated columns, expected {} (label, 13 integer, 26 categorical)",
                1 + INTEGER + CATEGORICAL
            ));
        }
        for (t, v) in fields[1 + INTEGER..].iter().enumerate().rev() {
            let id = if v.is_empty() {
                MISSING_ID
            } else {
                u64::from_str_radix(v, 16).map_err(|_| {
                    format!(
                        "categorical column {} value '{}' is not hex",
                        t + 1,
                        short(v)
                    )
                })?
            };
            self.pending.push(Access {
                group: self.sample,
                table: t as u32,
                id,
            });
        }
        Ok(())
    }
}

impl Iterator for CriteoReader {
    type Item = Result<Access>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(a) = self.pending.pop() {
                return Some(Ok(a));
            }
            if self.done {
                return None;
            }
            self.line.clear();
            match self.inner.read_line(&mut self.line) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line_no += 1;
                    if self.line.trim().is_empty() {
                        continue;
                    }
                    if let Err(m) = self.parse_line() {
                        self.done = true;
                        return Some(Err(Error::parse(&self.path, Some(self.line_no), m)));
                    }
                    self.sample += 1;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(Error::parse(
                        &self.path,
                        Some(self.line_no + 1),
                        format!("unreadable line: {e}"),
                    )));
                }
            }
        }
    }
}
