//! Plain text traces: one decimal id per line (table 0, one sample per line). Blank lines and lines
//! starting with `#` are skipped.

use super::{io_err, Access};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Streaming reader of a text trace (a 64 KiB buffer and one line).
pub struct TextReader {
    path: PathBuf,
    inner: BufReader<File>,
    line: String,
    line_no: u64,
    sample: u64,
    done: bool,
}

impl TextReader {
    /// Opens `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| io_err(path, e))?;
        Ok(TextReader {
            path: path.into(),
            inner: BufReader::with_capacity(1 << 16, f),
            line: String::new(),
            line_no: 0,
            sample: 0,
            done: false,
        })
    }
}

impl Iterator for TextReader {
    type Item = Result<Access>;
    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line.clear();
            match self.inner.read_line(&mut self.line) {
                Ok(0) => self.done = true,
                Ok(_) => {
                    self.line_no += 1;
                    let s = self.line.trim();
                    if s.is_empty() || s.starts_with('#') {
                        continue;
                    }
                    let Ok(id) = s.parse::<u64>() else {
                        self.done = true;
                        return Some(Err(Error::parse(
                            &self.path,
                            Some(self.line_no),
                            format!("id '{}' is not a non-negative integer", short(s)),
                        )));
                    };
                    let a = Access {
                        group: self.sample,
                        table: 0,
                        id,
                    };
                    self.sample += 1;
                    return Some(Ok(a));
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
        None
    }
}

/// At most 40 characters of `s`, for error messages.
pub(crate) fn short(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}
