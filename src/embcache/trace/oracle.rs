//! libCacheSim's oracleGeneral binary traces: 24-byte little-endian packed records
//! `{u32 clock_time; u64 obj_id; u32 obj_size; i64 next_access_vtime}` (libCacheSim
//! `traceReader/customizedReader/oracle/oracleGeneralBin.h`). `next_access_vtime` is the index of
//! the next request to the same object, or −1 when there is none. All accesses are table 0.

use super::{io_err, Access};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Bytes per record.
pub const RECORD_BYTES: usize = 24;

/// One decoded record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Wall-clock time (seconds, as the trace gives it).
    pub clock_time: u32,
    /// Object (row) id.
    pub obj_id: u64,
    /// Object size, bytes (1 for row-counted caches).
    pub obj_size: u32,
    /// Index of the next request to this object, −1 when none.
    pub next_access_vtime: i64,
}

impl Record {
    /// Encodes the record (little-endian, packed).
    pub fn to_bytes(&self) -> [u8; RECORD_BYTES] {
        let mut b = [0u8; RECORD_BYTES];
        b[0..4].copy_from_slice(&self.clock_time.to_le_bytes());
        b[4..12].copy_from_slice(&self.obj_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.obj_size.to_le_bytes());
        b[16..24].copy_from_slice(&self.next_access_vtime.to_le_bytes());
        b
    }

    /// Decodes a record.
    pub fn from_bytes(b: &[u8; RECORD_BYTES]) -> Self {
        let u32_at = |i: usize| {
            let mut x = [0u8; 4];
            x.copy_from_slice(&b[i..i + 4]);
            u32::from_le_bytes(x)
        };
        let u64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(x)
        };
        Record {
            clock_time: u32_at(0),
            obj_id: u64_at(4),
            obj_size: u32_at(12),
            next_access_vtime: u64_at(16) as i64,
        }
    }
}

/// Object sizes seen by a reader of a byte-sized trace (libCacheSim's oracleGeneral and CSV
/// traces carry one per request). perfcast's caches count rows, so sizes are ignored; this says
/// how much that matters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SizeStats {
    /// Requests read.
    pub requests: u64,
    /// Requests whose size is not 1 (a row-counted trace writes 1).
    pub sized: u64,
    /// Sum of the sizes, bytes.
    pub bytes: u64,
    /// Smallest size seen.
    pub min: u32,
    /// Largest size seen.
    pub max: u32,
}

impl SizeStats {
    /// Records one request's size.
    pub fn add(&mut self, size: u64) {
        let s = u32::try_from(size).unwrap_or(u32::MAX);
        if self.requests == 0 {
            (self.min, self.max) = (s, s);
        } else {
            self.min = self.min.min(s);
            self.max = self.max.max(s);
        }
        self.requests += 1;
        self.sized += u64::from(size != 1);
        self.bytes = self.bytes.saturating_add(size);
    }

    /// The warning a byte-sized trace deserves: `None` when every size is 1 (or 0: no size).
    pub fn warning(&self) -> Option<String> {
        if self.sized == 0 || self.max <= 1 {
            return None;
        }
        Some(format!(
            "object sizes ignored: {} of {} requests carry a size ({}..{} bytes, mean {:.0}); perfcast's caches count rows, so byte-sized results (libCacheSim without --ignore-obj-size) differ",
            self.sized,
            self.requests,
            self.min,
            self.max,
            self.bytes as f64 / self.requests.max(1) as f64
        ))
    }
}

/// Read buffer, bytes: a whole number of records (about 1 MiB), so records are decoded in place
/// from the buffer (no copy) except where a short read splits one.
const BUFFER_BYTES: usize = RECORD_BYTES * 43_690;

/// Streaming reader of an oracleGeneral file (a 1 MiB buffer; records decoded in place).
pub struct OracleReader {
    path: PathBuf,
    inner: BufReader<File>,
    record: u64,
    done: bool,
    sizes: SizeStats,
}

impl OracleReader {
    /// Opens `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened.
    pub fn open(path: &Path) -> Result<Self> {
        let f = File::open(path).map_err(|e| io_err(path, e))?;
        Ok(OracleReader {
            path: path.into(),
            inner: BufReader::with_capacity(BUFFER_BYTES, f),
            record: 0,
            done: false,
            sizes: SizeStats::default(),
        })
    }

    /// The object sizes of the records read so far.
    pub fn sizes(&self) -> SizeStats {
        self.sizes
    }

    /// The next access with the record's `next_access_vtime` (counting its object size).
    ///
    /// # Errors
    /// As [`OracleReader::next_record`].
    #[inline]
    pub fn next_with_vtime(&mut self) -> Option<Result<(Access, i64)>> {
        let r = self.next_record()?;
        let sample = self.record - 1;
        Some(r.map(|r| {
            self.sizes.add(u64::from(r.obj_size));
            (
                Access {
                    group: sample,
                    table: 0,
                    id: r.obj_id,
                },
                r.next_access_vtime,
            )
        }))
    }

    /// Calls `f` with every remaining access and its `next_access_vtime`, as
    /// [`OracleReader::next_with_vtime`] gives them, until `f` returns false: the records in the
    /// read buffer are decoded in one loop over its whole records (no per-record buffer check).
    ///
    /// # Errors
    /// As [`OracleReader::next_record`].
    pub fn scan_with_vtime(&mut self, mut f: impl FnMut(Access, i64) -> bool) -> Result<()> {
        loop {
            if self.done {
                return Ok(());
            }
            let n = match self.inner.fill_buf() {
                Ok(buf) if buf.len() >= RECORD_BYTES => {
                    let mut n = 0;
                    let mut stop = false;
                    for b in buf.chunks_exact(RECORD_BYTES) {
                        let b: &[u8; RECORD_BYTES] = b.try_into().expect("24-byte chunk");
                        let r = Record::from_bytes(b);
                        self.sizes.add(u64::from(r.obj_size));
                        let a = Access {
                            group: self.record + n as u64,
                            table: 0,
                            id: r.obj_id,
                        };
                        n += 1;
                        if !f(a, r.next_access_vtime) {
                            stop = true;
                            break;
                        }
                    }
                    self.inner.consume(n * RECORD_BYTES);
                    self.record += n as u64;
                    if stop {
                        return Ok(());
                    }
                    continue;
                }
                _ => self.next_with_vtime(),
            };
            match n {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok((a, next))) => {
                    if !f(a, next) {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// The next raw record: decoded straight from the read buffer when it holds a whole record
    /// (the common case), else assembled from short reads.
    ///
    /// # Errors
    /// A truncated final record (naming its 1-based number) or a read error.
    #[inline]
    pub fn next_record(&mut self) -> Option<Result<Record>> {
        if self.done {
            return None;
        }
        if let Ok(buf) = self.inner.fill_buf() {
            if let Some(b) = buf.first_chunk::<RECORD_BYTES>() {
                let r = Record::from_bytes(b);
                self.inner.consume(RECORD_BYTES);
                self.record += 1;
                return Some(Ok(r));
            }
        }
        self.next_record_slow()
    }

    fn next_record_slow(&mut self) -> Option<Result<Record>> {
        let mut buf = [0u8; RECORD_BYTES];
        let mut got = 0;
        while got < RECORD_BYTES {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(Error::parse(
                        &self.path,
                        Some(self.record + 1),
                        format!("record unreadable: {e}"),
                    )));
                }
            }
        }
        self.record += 1;
        if got == 0 {
            self.done = true;
            return None;
        }
        if got < RECORD_BYTES {
            self.done = true;
            return Some(Err(Error::parse(
                &self.path,
                Some(self.record),
                format!("truncated record {}: {got} of {RECORD_BYTES} bytes (oracleGeneral records are 24 bytes)", self.record),
            )));
        }
        Some(Ok(Record::from_bytes(&buf)))
    }
}

impl Iterator for OracleReader {
    type Item = Result<Access>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_with_vtime()?.map(|(a, _)| a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layout_is_24_packed_le_bytes() {
        let r = Record {
            clock_time: 1,
            obj_id: 0x0102_0304_0506_0708,
            obj_size: 1,
            next_access_vtime: -1,
        };
        let b = r.to_bytes();
        assert_eq!(&b[0..4], &[1, 0, 0, 0]);
        assert_eq!(&b[4..12], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&b[16..24], &[0xff; 8]);
        assert_eq!(Record::from_bytes(&b), r);
    }

    /// The block loop gives what the record-by-record reader gives, across read-buffer
    /// boundaries (more records than one buffer holds), with sizes, an early stop, and the
    /// truncated-record error at the end.
    #[test]
    fn block_scan_equals_record_by_record() {
        let n = BUFFER_BYTES / RECORD_BYTES * 2 + 123;
        let mut bytes = Vec::with_capacity(n * RECORD_BYTES + 10);
        for i in 0..n as u64 {
            let r = Record {
                clock_time: i as u32,
                obj_id: i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % 1000,
                obj_size: 1 + (i % 3 == 0) as u32 * 4095,
                next_access_vtime: if i % 5 == 0 { -1 } else { i as i64 + 7 },
            };
            bytes.extend_from_slice(&r.to_bytes());
        }
        let d = tempfile::tempdir().unwrap();
        let whole = d.path().join("whole.oracleGeneral");
        std::fs::write(&whole, &bytes).unwrap();
        bytes.extend_from_slice(&[1; 10]);
        let cut = d.path().join("cut.oracleGeneral");
        std::fs::write(&cut, &bytes).unwrap();
        for path in [&whole, &cut] {
            let mut a = OracleReader::open(path).unwrap();
            let mut want = Vec::new();
            let mut want_err = None;
            while let Some(x) = a.next_with_vtime() {
                match x {
                    Ok(x) => want.push(x),
                    Err(e) => want_err = Some(e.to_string()),
                }
            }
            let mut b = OracleReader::open(path).unwrap();
            let mut got = Vec::new();
            let err = b.scan_with_vtime(|x, next| {
                got.push((x, next));
                true
            });
            assert_eq!(got, want);
            assert_eq!(err.err().map(|e| e.to_string()), want_err);
            assert_eq!(a.sizes(), b.sizes());
            assert_eq!(want.len(), n);
        }
        assert!(OracleReader::open(&cut)
            .unwrap()
            .scan_with_vtime(|_, _| true)
            .unwrap_err()
            .to_string()
            .contains("truncated record"));
        // Stopping early stops at that access.
        let mut c = OracleReader::open(&whole).unwrap();
        let mut k = 0;
        c.scan_with_vtime(|_, _| {
            k += 1;
            k < 50_000
        })
        .unwrap();
        assert_eq!(k, 50_000);
    }

    #[test]
    fn sizes_other_than_one_are_reported() {
        let mut s = SizeStats::default();
        for _ in 0..3 {
            s.add(1);
        }
        assert_eq!(s.warning(), None);
        s.add(4096);
        s.add(512);
        let w = s.warning().unwrap();
        assert!(
            w.contains("2 of 5 requests") && w.contains("1..4096"),
            "{w}"
        );
        assert!(w.contains("mean 922"), "{w}");
    }
}
