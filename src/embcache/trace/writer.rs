//! Writes a trace in any format (atomically: a temporary file renamed into place).

use super::oracle::Record;
use super::{criteo, DenseTrace, TraceFormat};
use crate::error::{Error, Result};
use crate::report::write_atomic;
use std::fmt::Write as _;
use std::path::Path;

/// Encodes `trace` as `format` and writes it to `path`.
///
/// Text and oracleGeneral hold one table: other tables' ids would collide, so they are refused.
/// oracleGeneral records get `obj_size = 1` (a cache counted in rows), `clock_time` = batch
/// number, and the true `next_access_vtime` (record index of the next access, −1 for none), so
/// libCacheSim's Belady runs on the file as is. Criteo needs tables < 26; MovieLens exactly two.
///
/// # Errors
/// A format that cannot hold the trace; I/O errors.
pub fn write(trace: &DenseTrace, format: TraceFormat, path: &Path) -> Result<()> {
    let bytes = encode(trace, format)?;
    write_atomic(path, &bytes)
}

/// Encodes `trace` as `format`.
///
/// # Errors
/// See [`write()`].
pub fn encode(trace: &DenseTrace, format: TraceFormat) -> Result<Vec<u8>> {
    let n_tables = trace.keys.iter().map(|k| k.0).max().unwrap_or(0) + 1;
    let one_table = |f: &str| -> Result<()> {
        if n_tables > 1 {
            Err(Error::range(
                "--tables",
                n_tables,
                format!("1 for the {f} format (it has no table column; use csv)"),
            ))
        } else {
            Ok(())
        }
    };
    match format {
        TraceFormat::Text => {
            one_table("text")?;
            let mut s = String::with_capacity(trace.len() * 8);
            for a in trace.accesses() {
                let _ = writeln!(s, "{}", a.id);
            }
            Ok(s.into_bytes())
        }
        TraceFormat::Csv => {
            let mut s = String::with_capacity(trace.len() * 12);
            s.push_str(super::csv::HEADER);
            s.push('\n');
            for a in trace.accesses() {
                let _ = writeln!(s, "{},{},{}", a.group, a.table, a.id);
            }
            Ok(s.into_bytes())
        }
        TraceFormat::OracleGeneral => {
            one_table("oracle-general")?;
            let next = trace.next_use();
            let mut out = Vec::with_capacity(trace.len() * super::oracle::RECORD_BYTES);
            for (t, a) in trace.accesses().enumerate() {
                let r = Record {
                    clock_time: a.group as u32,
                    obj_id: a.id,
                    obj_size: 1,
                    next_access_vtime: if next[t] == u32::MAX {
                        -1
                    } else {
                        i64::from(next[t])
                    },
                };
                out.extend_from_slice(&r.to_bytes());
            }
            Ok(out)
        }
        TraceFormat::Criteo => {
            if n_tables as usize > criteo::CATEGORICAL {
                return Err(Error::range(
                    "--tables",
                    n_tables,
                    "at most 26 for the criteo format",
                ));
            }
            let mut s = String::new();
            let mut cols: Vec<Option<u64>> = vec![None; criteo::CATEGORICAL];
            let mut prev: Option<u32> = None;
            let flush = |s: &mut String, cols: &mut Vec<Option<u64>>| {
                s.push('0');
                for _ in 0..criteo::INTEGER {
                    s.push_str("\t0");
                }
                for c in cols.iter_mut() {
                    s.push('\t');
                    if let Some(id) = c.take() {
                        if id != criteo::MISSING_ID {
                            let _ = write!(s, "{id:08x}");
                        }
                    }
                }
                s.push('\n');
            };
            for a in trace.accesses() {
                if prev.is_some_and(|p| a.table <= p) {
                    flush(&mut s, &mut cols);
                }
                cols[a.table as usize] = Some(a.id);
                prev = Some(a.table);
            }
            flush(&mut s, &mut cols);
            Ok(s.into_bytes())
        }
        TraceFormat::MovieLens => {
            if n_tables != 2 {
                return Err(Error::range(
                    "--tables",
                    n_tables,
                    "2 for the movielens format (users, movies)",
                ));
            }
            let mut s = String::from("userId,movieId,rating,timestamp\n");
            let mut user: Option<u64> = None;
            for a in trace.accesses() {
                match (a.table, user) {
                    (0, None) => user = Some(a.id),
                    (1, Some(u)) => {
                        let _ = writeln!(s, "{u},{},5.0,{}", a.id, a.group);
                        user = None;
                    }
                    _ => {
                        return Err(Error::range(
                            "trace",
                            "tables out of order",
                            "alternating user (table 0), movie (table 1) lookups for movielens",
                        ))
                    }
                }
            }
            Ok(s.into_bytes())
        }
        TraceFormat::LcsCsv => {
            one_table("lcs-csv")?;
            // libCacheSim reads it with -t "time-col=1, obj-id-col=2, obj-size-col=3,
            // has-header=true" (perfcast from the header).
            let mut s = String::from("time,obj_id,obj_size\n");
            for a in trace.accesses() {
                let _ = writeln!(s, "{},{},1", a.group, a.id);
            }
            Ok(s.into_bytes())
        }
        TraceFormat::Parquet => encode_parquet(trace),
    }
}

#[cfg(feature = "parquet")]
fn encode_parquet(trace: &DenseTrace) -> Result<Vec<u8>> {
    super::parquet::encode(trace)
}

#[cfg(not(feature = "parquet"))]
fn encode_parquet(_: &DenseTrace) -> Result<Vec<u8>> {
    Err(Error::Unsupported(
        "Parquet traces need perfcast built with `--features parquet`".into(),
    ))
}
