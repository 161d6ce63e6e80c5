//! Parquet traces (the optional `parquet` feature, via polars): integer columns `batch`, `table`,
//! `id`. Read in row-group slices of 64 Ki rows, so memory does not grow with the trace length
//! beyond polars' own buffers for one slice.

use super::{Access, DenseTrace};
use crate::error::{Error, Result};
use polars::prelude::*;
use std::path::{Path, PathBuf};

const SLICE: usize = 1 << 16;

/// Streaming reader of a Parquet trace.
pub struct ParquetReader {
    path: PathBuf,
    lazy: LazyFrame,
    offset: usize,
    buf: std::vec::IntoIter<Access>,
    done: bool,
}

impl ParquetReader {
    /// Opens `path`.
    ///
    /// # Errors
    /// The file cannot be scanned.
    pub fn open(path: &Path) -> Result<Self> {
        let pl_path = PlRefPath::new(path.to_string_lossy().as_ref());
        let lazy = LazyFrame::scan_parquet(pl_path, ScanArgsParquet::default())
            .map_err(|e| Error::parse(path, None, format!("not a Parquet trace: {e}")))?;
        Ok(ParquetReader {
            path: path.into(),
            lazy,
            offset: 0,
            buf: Vec::new().into_iter(),
            done: false,
        })
    }

    fn fill(&mut self) -> Result<()> {
        let df = self
            .lazy
            .clone()
            .slice(self.offset as i64, SLICE as IdxSize)
            .select([
                col("batch").cast(DataType::UInt64),
                col("table").cast(DataType::UInt32),
                col("id").cast(DataType::UInt64),
            ])
            .collect()
            .map_err(|e| {
                Error::parse(
                    &self.path,
                    Some(self.offset as u64 + 1),
                    format!("needs integer columns batch, table, id: {e}"),
                )
            })?;
        let n = df.height();
        let get = |name: &str| {
            df.column(name)
                .map_err(|e| Error::parse(&self.path, None, e.to_string()))
        };
        let (b, t, i) = (get("batch")?, get("table")?, get("id")?);
        let (b, t, i) = (
            b.u64()
                .map_err(|e| Error::parse(&self.path, None, e.to_string()))?,
            t.u32()
                .map_err(|e| Error::parse(&self.path, None, e.to_string()))?,
            i.u64()
                .map_err(|e| Error::parse(&self.path, None, e.to_string()))?,
        );
        let mut v = Vec::with_capacity(n);
        for k in 0..n {
            match (b.get(k), t.get(k), i.get(k)) {
                (Some(group), Some(table), Some(id)) => v.push(Access { group, table, id }),
                _ => {
                    return Err(Error::parse(
                        &self.path,
                        Some((self.offset + k + 1) as u64),
                        "null batch, table or id",
                    ))
                }
            }
        }
        self.offset += n;
        self.done = n < SLICE;
        self.buf = v.into_iter();
        Ok(())
    }
}

impl Iterator for ParquetReader {
    type Item = Result<Access>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(a) = self.buf.next() {
                return Some(Ok(a));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

/// Encodes a trace as Parquet bytes.
///
/// # Errors
/// polars errors.
pub fn encode(trace: &DenseTrace) -> Result<Vec<u8>> {
    let (mut b, mut t, mut i) = (Vec::new(), Vec::new(), Vec::new());
    for a in trace.accesses() {
        b.push(a.group);
        t.push(a.table);
        i.push(a.id);
    }
    let mut df = DataFrame::new(
        trace.len(),
        vec![
            Column::new("batch".into(), b),
            Column::new("table".into(), t),
            Column::new("id".into(), i),
        ],
    )
    .map_err(|e| Error::Unsupported(e.to_string()))?;
    let mut out = Vec::new();
    ParquetWriter::new(&mut out)
        .finish(&mut df)
        .map_err(|e| Error::Unsupported(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_across_slices() {
        // 3 tables × 50 000 samples: more than two 64 Ki-row slices.
        let z = crate::embcache::trace::zipf::ZipfSpec::new(1.0, vec![500, 300, 200], 150_000, 1)
            .unwrap();
        let t = DenseTrace::from_stream(z.stream(), 100, false, "zipf").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        crate::embcache::trace::writer::write(&t, crate::embcache::trace::TraceFormat::Parquet, &p)
            .unwrap();
        let back = DenseTrace::load(&p, crate::embcache::trace::TraceFormat::Parquet, 1).unwrap();
        assert_eq!(back.rows, t.rows);
        assert_eq!(back.batch_starts, t.batch_starts);
        assert_eq!(back.keys, t.keys);
        let bad = dir.path().join("bad.parquet");
        std::fs::write(&bad, b"not parquet").unwrap();
        assert!(DenseTrace::load(&bad, crate::embcache::trace::TraceFormat::Parquet, 1).is_err());
    }
}
