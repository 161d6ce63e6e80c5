//! CSV traces with the header `batch,table,id` (non-negative integers; batches are consecutive
//! runs of equal `batch` values).

use super::text::short;
use super::{io_err, Access};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// The required header.
pub const HEADER: &str = "batch,table,id";

/// Streaming reader of a `batch,table,id` CSV.
pub struct CsvReader {
    path: PathBuf,
    inner: BufReader<File>,
    line: String,
    line_no: u64,
    done: bool,
}

impl CsvReader {
    /// Opens `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| io_err(path, e))?;
        Ok(CsvReader {
            path: path.into(),
            inner: BufReader::with_capacity(1 << 16, f),
            line: String::new(),
            line_no: 0,
            done: false,
        })
    }

    fn fail(&mut self, msg: String) -> Option<Result<Access>> {
        self.done = true;
        Some(Err(Error::parse(&self.path, Some(self.line_no), msg)))
    }
}

impl Iterator for CsvReader {
    type Item = Result<Access>;
    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line.clear();
            match self.inner.read_line(&mut self.line) {
                Ok(0) => {
                    self.done = true;
                    if self.line_no == 0 {
                        return Some(Err(Error::parse(
                            &self.path,
                            None,
                            format!("empty trace: no header '{HEADER}'"),
                        )));
                    }
                }
                Ok(_) => {
                    self.line_no += 1;
                    let s = self.line.trim();
                    if self.line_no == 1 {
                        let h: String = s
                            .trim_start_matches('\u{feff}')
                            .chars()
                            .filter(|c| !c.is_whitespace())
                            .collect();
                        if !h.eq_ignore_ascii_case(HEADER) {
                            let got = short(s);
                            return self.fail(format!(
                                "missing header: expected '{HEADER}', found '{got}'"
                            ));
                        }
                        continue;
                    }
                    if s.is_empty() {
                        continue;
                    }
                    let mut f = s.split(',');
                    let mut num = |name: &str| -> std::result::Result<u64, String> {
                        let v = f.next().map(str::trim).ok_or_else(|| {
                            format!("missing column '{name}' (expected {HEADER})")
                        })?;
                        v.parse::<u64>().map_err(|_| {
                            format!("{name} '{}' is not a non-negative integer", short(v))
                        })
                    };
                    let parsed = (|| Ok::<_, String>((num("batch")?, num("table")?, num("id")?)))();
                    match parsed {
                        Ok((b, t, id)) if t <= u64::from(u32::MAX) => {
                            return Some(Ok(Access {
                                group: b,
                                table: t as u32,
                                id,
                            }))
                        }
                        Ok((_, t, _)) => return self.fail(format!("table {t} exceeds 2^32-1")),
                        Err(m) => return self.fail(m),
                    }
                }
                Err(e) => return self.fail(format!("unreadable line: {e}")),
            }
        }
        None
    }
}
