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

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `bytes` as a CSV trace: the accesses before the first error, and that error's text
    /// (path shortened to `t.csv`).
    fn read(bytes: &[u8]) -> (Vec<(u64, u32, u64)>, Option<String>) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.csv");
        std::fs::write(&p, bytes).unwrap();
        let mut ok = Vec::new();
        let mut it = CsvReader::open(&p).unwrap();
        for r in it.by_ref() {
            match r {
                Ok(a) => ok.push((a.group, a.table, a.id)),
                Err(e) => {
                    let msg = e.to_string().replace(&p.display().to_string(), "t.csv");
                    // An error ends the trace.
                    assert!(it.next().is_none(), "{msg}");
                    return (ok, Some(msg));
                }
            }
        }
        (ok, None)
    }

    #[test]
    fn reads_batches_tables_and_ids() {
        let (ok, err) = read(
            b"\xef\xbb\xbf Batch , TABLE,id \r\n0,0,1\r\n\n  \n0, 2 ,3,extra\n1,4294967295,+5\n\n7,1,18446744073709551615",
        );
        assert_eq!(err, None);
        assert_eq!(
            ok,
            vec![
                (0, 0, 1),
                (0, 2, 3),
                (1, u32::MAX, 5),
                (7, 1, u64::MAX)
            ]
        );
    }

    #[test]
    fn header_errors() {
        let err = |b: &[u8]| read(b).1.unwrap();
        assert_eq!(err(b""), "t.csv: empty trace: no header 'batch,table,id'");
        assert_eq!(
            err(b"0,0,1\n0,0,2\n"),
            "t.csv:1: missing header: expected 'batch,table,id', found '0,0,1'"
        );
        assert_eq!(
            err(b"\n\n"),
            "t.csv:1: missing header: expected 'batch,table,id', found ''"
        );
        assert_eq!(
            err(b"\nbatch,table,id\n0,0,1\n"),
            "t.csv:1: missing header: expected 'batch,table,id', found ''"
        );
        assert_eq!(
            err(b"batch;table;id\n"),
            "t.csv:1: missing header: expected 'batch,table,id', found 'batch;table;id'"
        );
        assert_eq!(
            err(b"\"batch\",table,id\n"),
            "t.csv:1: missing header: expected 'batch,table,id', found '\"batch\",table,id'"
        );
    }

    #[test]
    fn row_errors_name_the_line_and_stop() {
        let (ok, err) = read(b"batch,table,id\n0,0,1\n\n0,1\n0,0,2\n");
        assert_eq!(ok, vec![(0, 0, 1)]);
        assert_eq!(
            err.unwrap(),
            "t.csv:4: missing column 'id' (expected batch,table,id)"
        );
        let err = |b: &[u8]| read(b).1.unwrap();
        assert_eq!(
            err(b"batch,table,id\n0,0,-4\n"),
            "t.csv:2: id '-4' is not a non-negative integer"
        );
        assert_eq!(
            err(b"batch,table,id\n\n\n0,4294967296,1"),
            "t.csv:4: table 4294967296 exceeds 2^32-1"
        );
        assert_eq!(
            err(b"batch,table,id\n\"0\",0,1\n"),
            "t.csv:2: batch '\"0\"' is not a non-negative integer"
        );
        assert_eq!(
            err(b"batch,table,id\n,0,1\n"),
            "t.csv:2: batch '' is not a non-negative integer"
        );
        assert_eq!(
            err(b"batch,table,id\n0,0,1\r0,0,2\n"),
            "t.csv:2: id '1\r0' is not a non-negative integer"
        );
        assert_eq!(
            err(b"batch,table,id\n0,x123456789012345678901234567890123456789012345,1\n"),
            "t.csv:2: table 'x123456789012345678901234567890123456789...' is not a non-negative integer"
        );
    }
}
