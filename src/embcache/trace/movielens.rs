//! MovieLens ratings: `userId,movieId,rating,timestamp` with a header (ml-latest, ml-20m, ml-25m),
//! `user::movie::rating::time` (ml-1m `ratings.dat`) or tab-separated without a header (ml-100k
//! `u.data`). Each rating is one sample with two lookups: table 0 the user, table 1 the movie.

use super::text::short;
use super::{io_err, Access};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Streaming reader of a MovieLens ratings file.
pub struct MovieLensReader {
    path: PathBuf,
    inner: BufReader<File>,
    line: String,
    line_no: u64,
    sample: u64,
    pending: Option<Access>,
    done: bool,
}

impl MovieLensReader {
    /// Opens `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| io_err(path, e))?;
        Ok(MovieLensReader {
            path: path.into(),
            inner: BufReader::with_capacity(1 << 16, f),
            line: String::new(),
            line_no: 0,
            sample: 0,
            pending: None,
            done: false,
        })
    }
}

impl Iterator for MovieLensReader {
    type Item = Result<Access>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(a) = self.pending.take() {
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
                    let s = self.line.trim();
                    if s.is_empty()
                        || (self.line_no == 1 && s.to_ascii_lowercase().starts_with("userid"))
                    {
                        continue;
                    }
                    let mut f: Vec<&str> = if s.contains("::") {
                        s.split("::").collect()
                    } else {
                        s.split([',', '\t']).collect()
                    };
                    f.truncate(2);
                    let parse = |i: usize, name: &str| -> std::result::Result<u64, String> {
                        let v = f.get(i).map(|v| v.trim()).ok_or_else(|| {
                            format!(
                                "missing {name} column (expected userId,movieId,rating,timestamp)"
                            )
                        })?;
                        v.parse::<u64>().map_err(|_| {
                            format!("{name} '{}' is not a non-negative integer", short(v))
                        })
                    };
                    match (parse(0, "userId"), parse(1, "movieId")) {
                        (Ok(u), Ok(m)) => {
                            self.pending = Some(Access {
                                group: self.sample,
                                table: 1,
                                id: m,
                            });
                            let a = Access {
                                group: self.sample,
                                table: 0,
                                id: u,
                            };
                            self.sample += 1;
                            return Some(Ok(a));
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            self.done = true;
                            return Some(Err(Error::parse(&self.path, Some(self.line_no), e)));
                        }
                    }
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
