//! CSV traces with the header `batch,table,id` (non-negative integers; batches are consecutive
//! runs of equal `batch` values), read with the `csv` crate.
//!
//! The dialect is plain: comma-separated, no quoting (a `"` is an ordinary byte, so `"0"` is not
//! a number), `\n`-terminated lines (a `\r` before it is trimmed with the field's whitespace).
//! Fields are trimmed; columns after `id` are ignored; empty and whitespace-only lines are
//! skipped. The header is compared ignoring case, whitespace and a UTF-8 byte-order mark.

use super::text::short;
use super::{io_err, Access};
use crate::error::{Error, Result};
use csv::{ByteRecord, ReaderBuilder, Terminator};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// The required header.
pub const HEADER: &str = "batch,table,id";

/// Streaming reader of a `batch,table,id` CSV (one reused record: no allocation per line).
pub struct CsvReader {
    path: PathBuf,
    inner: csv::Reader<File>,
    rec: ByteRecord,
    /// Records read so far, the header included (the csv crate skips empty lines).
    records: u64,
    done: bool,
}

impl CsvReader {
    /// Opens `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| io_err(path, e))?;
        let inner = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .quoting(false)
            .terminator(Terminator::Any(b'\n'))
            .buffer_capacity(1 << 16)
            .from_reader(f);
        Ok(CsvReader {
            path: path.into(),
            inner,
            rec: ByteRecord::new(),
            records: 0,
            done: false,
        })
    }

    fn fail(&mut self, line: Option<u64>, msg: String) -> Option<Result<Access>> {
        self.done = true;
        Some(Err(Error::parse(&self.path, line, msg)))
    }

    /// The line of the current record. The csv crate skips empty lines without counting them in
    /// a record's position, so on this (error) path the file is scanned again for the line of
    /// the `records`-th non-empty line.
    fn line(&self) -> Option<u64> {
        let f = File::open(&self.path).ok()?;
        let mut r = BufReader::with_capacity(1 << 16, f);
        let (mut line, mut nonempty) = (0u64, 0u64);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if r.read_until(b'\n', &mut buf).ok()? == 0 {
                return None;
            }
            line += 1;
            if buf != b"\n" {
                nonempty += 1;
                if nonempty == self.records {
                    return Some(line);
                }
            }
        }
    }

    /// Checks the header record (the first non-empty line).
    fn header(&mut self) -> Option<Result<Access>> {
        // Without quoting, the fields joined by commas are the line as written.
        let raw = self.rec.iter().collect::<Vec<_>>().join(&b","[..]);
        let Ok(text) = std::str::from_utf8(&raw) else {
            let line = self.line();
            return self.fail(line, UTF8.into());
        };
        // Empty lines before the header: the first line is not the header.
        let (s, line) = match self.line() {
            Some(1) | None => (text.trim(), 1),
            Some(_) => ("", 1),
        };
        let h: String = s
            .trim_start_matches('\u{feff}')
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if !h.eq_ignore_ascii_case(HEADER) {
            let got = short(s);
            return self.fail(
                Some(line),
                format!("missing header: expected '{HEADER}', found '{got}'"),
            );
        }
        None
    }
}

/// What a line that is not UTF-8 reports (the wording of the standard library's line reader).
const UTF8: &str = "unreadable line: stream did not contain valid UTF-8";

impl Iterator for CsvReader {
    type Item = Result<Access>;
    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.inner.read_byte_record(&mut self.rec) {
                Ok(false) => {
                    self.done = true;
                    if self.records == 0 {
                        // Only empty lines: the first line is not the header.
                        if self.inner.position().byte() > 0 {
                            return self.fail(
                                Some(1),
                                format!("missing header: expected '{HEADER}', found ''"),
                            );
                        }
                        return Some(Err(Error::parse(
                            &self.path,
                            None,
                            format!("empty trace: no header '{HEADER}'"),
                        )));
                    }
                }
                Ok(true) => {
                    self.records += 1;
                    if self.records == 1 {
                        if let Some(err) = self.header() {
                            return Some(err);
                        }
                        continue;
                    }
                    if std::str::from_utf8(self.rec.as_slice()).is_err() {
                        let line = self.line();
                        return self.fail(line, UTF8.into());
                    }
                    // Validated above: every field is UTF-8.
                    let field = |i: usize| {
                        self.rec
                            .get(i)
                            .map(|b| std::str::from_utf8(b).unwrap_or_default().trim())
                    };
                    if self.rec.len() == 1 && field(0) == Some("") {
                        continue; // a whitespace-only line
                    }
                    let num = |i: usize, name: &str| -> std::result::Result<u64, String> {
                        let v = field(i).ok_or_else(|| {
                            format!("missing column '{name}' (expected {HEADER})")
                        })?;
                        v.parse::<u64>().map_err(|_| {
                            format!("{name} '{}' is not a non-negative integer", short(v))
                        })
                    };
                    let parsed =
                        (|| Ok::<_, String>((num(0, "batch")?, num(1, "table")?, num(2, "id")?)))();
                    match parsed {
                        Ok((b, t, id)) if t <= u64::from(u32::MAX) => {
                            return Some(Ok(Access {
                                group: b,
                                table: t as u32,
                                id,
                            }))
                        }
                        Ok((_, t, _)) => {
                            let line = self.line();
                            return self.fail(line, format!("table {t} exceeds 2^32-1"));
                        }
                        Err(m) => {
                            let line = self.line();
                            return self.fail(line, m);
                        }
                    }
                }
                Err(e) => {
                    let line = self.inner.position().line();
                    let msg = match e.kind() {
                        csv::ErrorKind::Io(io) => format!("unreadable line: {io}"),
                        _ => format!("unreadable line: {e}"),
                    };
                    return self.fail(Some(line), msg);
                }
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
            vec![(0, 0, 1), (0, 2, 3), (1, u32::MAX, 5), (7, 1, u64::MAX)]
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
            // The carriage return is echoed escaped (error.rs `esc`).
            "t.csv:2: id '1\\r0' is not a non-negative integer"
        );
        assert_eq!(
            err(b"batch,table,id\n0,x123456789012345678901234567890123456789012345,1\n"),
            "t.csv:2: table 'x123456789012345678901234567890123456789...' is not a non-negative integer"
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_is_named() {
        // The hand-written reader named the line before (its counter had not advanced yet).
        let (ok, err) = read(b"batch,table,id\n0,0,1\n\n0,\xff,2\n0,0,3\n");
        assert_eq!(ok, vec![(0, 0, 1)]);
        assert_eq!(
            err.unwrap(),
            "t.csv:4: unreadable line: stream did not contain valid UTF-8"
        );
    }
}
