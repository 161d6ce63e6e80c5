//! Embedding-cache simulation and the DLRM iteration-time model.
//!
//! Recommendation-model training spends much of its time fetching embedding rows; a small cache
//! of hot rows serves most lookups because row popularity is skewed (Bagpipe, SOSP 2023: 1 % of
//! rows take > 92 % of accesses). This module answers three questions:
//!
//! 1. **Hit rate of a policy on a trace** ([`simulate`]): exact, fast, per access and per batch
//!    after deduplication; policies in [`policy`] (LRU, FIFO, LFU, static top-k, Belady/MIN,
//!    Bagpipe lookahead). LRU, FIFO and Belady miss counts equal libCacheSim's on the same
//!    oracleGeneral file (integration test against the `libcachesim` Python package).
//! 2. **Hit rate from the skew alone** ([`analytic`]): static top-k `Σ_{i≤C} p_i` and LRU by Che's
//!    approximation under Zipf, plus the one-pass LRU miss-ratio curve ([`mrc`]).
//! 3. **The smallest cache for a target hit rate** ([`solve`]): exact for LRU from its one-pass
//!    miss-ratio curve, by bisection on simulations for the others.
//! 4. **Iteration time** ([`pipeline`]): no cache, an on-demand cache (misses on the critical
//!    path) and lookahead prefetch (overlapped with the previous iteration's compute).
//!
//! Traces ([`trace`]) stream from text, CSV, oracleGeneral, Criteo TSV, MovieLens and (feature
//! `parquet`) Parquet files, or come from a seeded Zipf generator with Criteo table profiles.

pub mod analytic;
pub mod calib;
pub mod idmap;
pub mod mrc;
pub mod pipeline;
pub mod policy;
pub mod solve;
pub mod spec;
pub mod stream;
pub mod study;
pub mod trace;

use crate::error::{Error, Result};
use policy::{
    belady::Belady, fifo::Fifo, lfu::Lfu, lookahead::Lookahead, lru::Lru, topk::StaticTopK, Policy,
    PolicyKind,
};
use serde::Serialize;
use std::time::Instant;
use trace::DenseTrace;

pub use spec::{evaluate, evaluate_each, Failed, Method, Params, Row, Sizes, SourceSpec, Spec};

/// A cache size as the user gives it: rows, a percentage (of the table's rows or of the trace's
/// unique rows, see [`CacheOf`]), or bytes (rows of `row_bytes` each).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CacheSize {
    /// Rows.
    Rows(u64),
    /// Percent (e.g. 1.0 = 1 %) of the rows [`CacheOf`] names.
    Percent(f64),
    /// Bytes (e.g. `12GiB` = 12 · 2³⁰): as many whole rows of `row_bytes` as fit.
    Bytes(f64),
}

/// What a percentage cache size is a fraction of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheOf {
    /// The embedding table's rows, as declared by the source (`--table-rows`, a table profile,
    /// or the generator's tables): what a planner sizing GPU memory means.
    #[default]
    Table,
    /// The distinct rows the trace touches (smaller than the table when the trace is a sample).
    Unique,
}

impl CacheOf {
    /// The name (`table`, `unique`).
    pub fn name(self) -> &'static str {
        match self {
            CacheOf::Table => "table",
            CacheOf::Unique => "unique",
        }
    }
}

impl std::str::FromStr for CacheOf {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "table" => Ok(CacheOf::Table),
            "unique" => Ok(CacheOf::Unique),
            other => Err(Error::range("--cache-of", other, "table or unique")),
        }
    }
}

/// Byte units accepted by [`CacheSize::parse`]: SI (powers of 1000) and IEC (powers of 1024).
const BYTE_UNITS: [(&str, f64); 9] = [
    ("kib", 1024.0),
    ("mib", 1048576.0),
    ("gib", 1073741824.0),
    ("tib", 1099511627776.0),
    ("kb", 1e3),
    ("mb", 1e6),
    ("gb", 1e9),
    ("tb", 1e12),
    ("b", 1.0),
];

/// What a size's denominators are: everything [`CacheSize::resolve`] needs to turn a size into
/// rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeBasis {
    /// Distinct rows of the trace.
    pub unique: usize,
    /// Rows of the embedding tables, when the source declares them.
    pub table_rows: Option<u64>,
    /// Bytes per row (`--row-bytes`).
    pub row_bytes: f64,
    /// What a percentage refers to.
    pub cache_of: CacheOf,
}

const CACHE_FORMS: &str =
    "rows (an integer ≥ 1), a percentage such as 5%, or bytes such as 12GiB or 500MB";

impl CacheSize {
    /// Parses `N` (rows), `P%` or bytes with a unit (`B`, `KB`, `MB`, `GB`, `TB` = powers of
    /// 1000; `KiB`, `MiB`, `GiB`, `TiB` = powers of 1024; case-insensitive, e.g. `12GiB`).
    ///
    /// # Errors
    /// Not a number, 0 rows, a percentage outside (0, 100000], bytes not finite and > 0.
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| Error::range("cache", s, CACHE_FORMS))?;
            if !(v > 0.0 && v <= 100_000.0) {
                return Err(Error::range("cache", s, "a percentage in (0, 100000]%"));
            }
            return Ok(CacheSize::Percent(v));
        }
        let lower = t.to_ascii_lowercase();
        for (unit, mult) in BYTE_UNITS {
            if let Some(num) = lower.strip_suffix(unit) {
                if num.ends_with(|c: char| c.is_ascii_alphabetic()) {
                    continue; // e.g. "kb" also ends with "b"; handled by its own unit
                }
                let v: f64 = num
                    .trim()
                    .parse()
                    .map_err(|_| Error::range("cache", s, CACHE_FORMS))?;
                let bytes = v * mult;
                if !(bytes.is_finite() && bytes > 0.0) {
                    return Err(Error::range("cache", s, "bytes > 0, such as 12GiB"));
                }
                return Ok(CacheSize::Bytes(bytes));
            }
        }
        match t.parse::<u64>() {
            Ok(0) => Err(Error::range(
                "cache",
                0,
                "≥ 1 row (or a percentage such as 5%, or bytes such as 12GiB)",
            )),
            Ok(n) => Ok(CacheSize::Rows(n)),
            Err(_) => Err(Error::range("cache", s, CACHE_FORMS)),
        }
    }

    /// Rows for a trace with `unique` rows, a percentage taken of the unique rows (rounded to
    /// the nearest row). Bytes need a row size: see [`CacheSize::resolve`].
    ///
    /// # Errors
    /// A percentage that rounds to 0 rows; a size in bytes.
    pub fn rows(&self, unique: usize) -> Result<usize> {
        match *self {
            CacheSize::Bytes(_) => Err(Error::range(
                "cache",
                self.to_string(),
                "rows or a percentage here (a size in bytes needs the row size)",
            )),
            _ => self.resolve(&SizeBasis {
                unique,
                table_rows: None,
                row_bytes: 1.0,
                cache_of: CacheOf::Unique,
            }),
        }
    }

    /// Rows of this size on `basis`: rows as given; a percentage of the table's rows
    /// ([`CacheOf::Table`]) or of the trace's unique rows, rounded to the nearest row; bytes
    /// ÷ `row_bytes`, rounded down (whole rows that fit).
    ///
    /// # Errors
    /// A percentage of the table when the source declares no table size; a size that gives 0
    /// rows.
    pub fn resolve(&self, basis: &SizeBasis) -> Result<usize> {
        match *self {
            CacheSize::Rows(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            CacheSize::Percent(p) => {
                let (of, what) = match basis.cache_of {
                    CacheOf::Unique => (basis.unique as f64, "unique rows of the trace"),
                    CacheOf::Table => match basis.table_rows {
                        Some(t) => (t as f64, "table rows"),
                        None => {
                            return Err(Error::range(
                                "cache",
                                format!("{p}%"),
                                "rows or bytes: the trace does not declare its table size (give --table-rows N or --profile NAME for a fraction of the table, or --cache-of unique for a fraction of the trace's distinct rows)",
                            ))
                        }
                    },
                };
                let n = (p / 100.0 * of).round();
                if n < 1.0 {
                    Err(Error::range(
                        "cache",
                        format!("{p}%"),
                        format!("≥ 1 row: {p}% of {of} {what} rounds to 0"),
                    ))
                } else {
                    Ok(n as usize)
                }
            }
            CacheSize::Bytes(b) => {
                let n = (b / basis.row_bytes).floor();
                if n < 1.0 {
                    Err(Error::range(
                        "cache",
                        self.to_string(),
                        format!("≥ one row of {} bytes (--row-bytes)", basis.row_bytes),
                    ))
                } else {
                    Ok(n.min(usize::MAX as f64) as usize)
                }
            }
        }
    }
}

impl std::fmt::Display for CacheSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheSize::Rows(n) => write!(f, "{n}"),
            CacheSize::Percent(p) => write!(f, "{p}%"),
            CacheSize::Bytes(b) => write!(f, "{b}B"),
        }
    }
}

/// Per-batch counts of one simulation (the pipeline model's input).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchCounts {
    /// Unique rows of every batch.
    pub unique: Vec<u32>,
    /// Unique rows of every batch that missed (rows fetched for it; for lookahead, prefetched).
    pub misses: Vec<u32>,
    /// Rows evicted (written back) during every batch.
    pub evictions: Vec<u32>,
}

/// The result of one simulation or closed form (DESIGN.md §5 field names).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metrics {
    /// Policy name.
    pub policy: String,
    /// `sim` or `analytic`.
    pub method: &'static str,
    /// Lookahead window, batches (lookahead only).
    pub window: Option<usize>,
    /// Capacity, rows.
    pub cache_rows: u64,
    /// Capacity, bytes: `cache_rows` × the row size (`--row-bytes`); filled by
    /// [`Metrics::with_sizes`].
    pub cache_bytes: Option<f64>,
    /// Capacity as a fraction of the table's rows (`table_rows`), when the source declares them.
    pub cache_fraction_of_table: Option<f64>,
    /// Capacity as a fraction of the unique rows.
    pub cache_fraction_of_unique: f64,
    /// Whether the cache holds more rows than the trace has (allowed: only compulsory misses).
    pub cache_exceeds_unique: bool,
    /// Accesses (lookups).
    pub accesses: u64,
    /// Hits.
    pub hits: u64,
    /// Misses.
    pub misses: u64,
    /// hits / accesses.
    pub hit_rate: f64,
    /// Rows of the embedding tables, as the source declares them (`--table-rows`, a table
    /// profile, the generator's tables); `None` for a trace file without a declaration.
    pub table_rows: Option<u64>,
    /// Distinct rows in the trace (or in the modelled tables for `analytic`).
    pub unique_ids: u64,
    /// Batches.
    pub batches: Option<u64>,
    /// Sum over batches of the batch's unique rows.
    pub batch_unique_accesses: Option<u64>,
    /// Sum over batches of the unique rows that missed (rows fetched).
    pub batch_unique_misses: Option<u64>,
    /// 1 − batch_unique_misses / batch_unique_accesses.
    pub batch_unique_hit_rate: Option<f64>,
    /// Mean unique rows per batch.
    pub unique_rows_per_batch: Option<f64>,
    /// Mean rows fetched (lookahead: prefetched) per batch.
    pub prefetch_rows_per_batch: Option<f64>,
    /// Largest number of rows fetched for one batch.
    pub max_prefetch_rows_per_batch: Option<u64>,
    /// Mean rows evicted (written back) per batch.
    pub writeback_rows_per_batch: Option<f64>,
    /// Lookahead: the smallest cache the window needs (peak occupancy, unbounded capacity); filled
    /// by [`with_min_cache_rows`] (a second pass, not timed in `sim_s`).
    pub min_cache_rows: Option<u64>,
    /// Seconds the simulation loop took (the streaming simulator, [`stream`]: the whole pass,
    /// reading and remapping included).
    pub sim_s: Option<f64>,
    /// Simulated accesses per second (one core; over `sim_s`).
    pub sim_requests_per_s: Option<f64>,
    /// Seed of a generated trace.
    pub seed: Option<u64>,
    /// Remarks (e.g. a cache larger than the unique rows).
    pub note: String,
}

fn drive<P: Policy>(p: &mut P, trace: &DenseTrace) -> (u64, BatchCounts) {
    let nb = trace.n_batches();
    let mut seen = vec![u32::MAX; trace.n_rows()];
    let mut bc = BatchCounts {
        unique: Vec::with_capacity(nb),
        misses: Vec::with_capacity(nb),
        evictions: Vec::with_capacity(nb),
    };
    let mut hits = 0u64;
    let mut tick = crate::sweep::Ticker::default();
    for b in 0..nb {
        tick.add(trace.batch(b).len() as u64);
        let ev0 = p.evicted();
        let (mut u, mut m) = (0u32, 0u32);
        for &r in trace.batch(b) {
            let hit = p.access(r);
            hits += u64::from(hit);
            let s = &mut seen[r as usize];
            if *s != b as u32 {
                *s = b as u32;
                u += 1;
                m += u32::from(!hit);
            }
        }
        bc.unique.push(u);
        bc.misses.push(m);
        bc.evictions.push((p.evicted() - ev0) as u32);
    }
    (hits, bc)
}

/// Simulates `kind` with `cache_rows` on `trace`.
///
/// # Errors
/// A capacity of 0; a lookahead capacity below the two-batch working set.
pub fn simulate(
    trace: &DenseTrace,
    kind: PolicyKind,
    cache_rows: usize,
) -> Result<(Metrics, BatchCounts)> {
    if cache_rows == 0 {
        return Err(Error::range("cache", 0, "≥ 1 row"));
    }
    let n = trace.n_rows();
    let start = Instant::now();
    let (hits, bc) = match kind {
        PolicyKind::Lru => {
            let (h, b) = drive(&mut Lru::new(cache_rows, n), trace);
            (h, b)
        }
        PolicyKind::Fifo => {
            let (h, b) = drive(&mut Fifo::new(cache_rows, n), trace);
            (h, b)
        }
        PolicyKind::Lfu => {
            let (h, b) = drive(&mut Lfu::new(cache_rows, n), trace);
            (h, b)
        }
        PolicyKind::StaticTopK { profile_fraction } => {
            let (h, b) = drive(
                &mut StaticTopK::new(cache_rows, trace, profile_fraction),
                trace,
            );
            (h, b)
        }
        PolicyKind::Belady => {
            let (h, b) = drive(&mut Belady::new(cache_rows, trace), trace);
            (h, b)
        }
        PolicyKind::Lookahead { window } => {
            let (h, b) = drive(&mut Lookahead::new(cache_rows, trace, window)?, trace);
            (h, b)
        }
    };
    let sim_s = start.elapsed().as_secs_f64();
    let totals = Totals {
        accesses: trace.len() as u64,
        hits,
        batches: bc.unique.len() as u64,
        unique: bc.unique.iter().map(|&x| u64::from(x)).sum(),
        misses: bc.misses.iter().map(|&x| u64::from(x)).sum(),
        evictions: bc.evictions.iter().map(|&x| u64::from(x)).sum(),
        max_misses: bc.misses.iter().copied().max().unwrap_or(0),
    };
    let m = metrics_of(kind, cache_rows, trace.n_rows(), totals, sim_s);
    Ok((m, bc))
}

/// The counts of one simulation, summed over its batches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Totals {
    pub(crate) accesses: u64,
    pub(crate) hits: u64,
    pub(crate) batches: u64,
    pub(crate) unique: u64,
    pub(crate) misses: u64,
    pub(crate) evictions: u64,
    pub(crate) max_misses: u32,
}

/// The metrics of a simulation of `kind` with `cache_rows` over `n` distinct rows (shared by the
/// in-memory and the streaming simulators, so their outputs are the same expressions).
pub(crate) fn metrics_of(
    kind: PolicyKind,
    cache_rows: usize,
    n: usize,
    t: Totals,
    sim_s: f64,
) -> Metrics {
    let accesses = t.accesses;
    let (nb, bu, bm, be) = (t.batches, t.unique, t.misses, t.evictions);
    let exceeds = cache_rows > n;
    Metrics {
        policy: kind.name().to_string(),
        method: "sim",
        window: match kind {
            PolicyKind::Lookahead { window } => Some(window),
            _ => None,
        },
        cache_rows: cache_rows as u64,
        cache_bytes: None,
        cache_fraction_of_table: None,
        cache_fraction_of_unique: cache_rows as f64 / n as f64,
        cache_exceeds_unique: exceeds,
        accesses,
        hits: t.hits,
        misses: accesses - t.hits,
        hit_rate: t.hits as f64 / accesses as f64,
        table_rows: None,
        unique_ids: n as u64,
        batches: Some(nb),
        batch_unique_accesses: Some(bu),
        batch_unique_misses: Some(bm),
        batch_unique_hit_rate: Some(1.0 - bm as f64 / bu.max(1) as f64),
        unique_rows_per_batch: Some(bu as f64 / nb as f64),
        prefetch_rows_per_batch: Some(bm as f64 / nb as f64),
        max_prefetch_rows_per_batch: Some(t.max_misses.into()),
        writeback_rows_per_batch: Some(be as f64 / nb as f64),
        min_cache_rows: None,
        sim_s: Some(sim_s),
        sim_requests_per_s: Some(accesses as f64 / sim_s.max(1e-9)),
        seed: None,
        note: if exceeds {
            format!(
                "cache of {cache_rows} rows exceeds the {n} unique rows: only compulsory misses"
            )
        } else {
            String::new()
        },
    }
}

impl Metrics {
    /// Fills the size columns that need more than the trace: `cache_bytes` (`cache_rows` ×
    /// `row_bytes`), `table_rows` and `cache_fraction_of_table` (when the table size is known).
    pub fn with_sizes(&mut self, row_bytes: f64, table_rows: Option<u64>) {
        self.cache_bytes = Some(self.cache_rows as f64 * row_bytes);
        self.table_rows = table_rows;
        self.cache_fraction_of_table = table_rows.map(|t| self.cache_rows as f64 / t.max(1) as f64);
    }
}

/// Fills `min_cache_rows` of a lookahead result (one more pass over the trace).
pub fn with_min_cache_rows(m: &mut Metrics, trace: &DenseTrace) {
    if let Some(w) = m.window {
        m.min_cache_rows = Some(Lookahead::min_cache_rows(trace, w) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_sizes_parse() {
        assert_eq!(CacheSize::parse("100").unwrap(), CacheSize::Rows(100));
        assert_eq!(CacheSize::parse("2.5%").unwrap().rows(1000).unwrap(), 25);
        assert!(CacheSize::parse("0")
            .unwrap_err()
            .to_string()
            .contains("cache = 0"));
        assert!(CacheSize::parse("abc").is_err());
        assert!(CacheSize::parse("0%").is_err());
        assert!(CacheSize::parse("0.01%").unwrap().rows(100).is_err());
    }

    #[test]
    fn cache_sizes_in_bytes_and_of_the_table() {
        assert_eq!(
            CacheSize::parse("12GiB").unwrap(),
            CacheSize::Bytes(12.0 * 1024.0 * 1024.0 * 1024.0)
        );
        assert_eq!(
            CacheSize::parse("1.5 kb").unwrap(),
            CacheSize::Bytes(1500.0)
        );
        assert_eq!(CacheSize::parse("500MB").unwrap(), CacheSize::Bytes(5e8));
        assert_eq!(CacheSize::parse("100b").unwrap(), CacheSize::Bytes(100.0));
        for bad in ["12XB", "GiB", "-1GiB", "0MB"] {
            assert!(CacheSize::parse(bad).is_err(), "{bad}");
        }
        let basis = |cache_of, table_rows| SizeBasis {
            unique: 719,
            table_rows,
            row_bytes: 512.0,
            cache_of,
        };
        let b = basis(CacheOf::Table, Some(1000));
        // 12 GiB of 512-byte rows: 2^34 / 2^9 = 2^25 rows.
        assert_eq!(
            CacheSize::parse("12GiB").unwrap().resolve(&b).unwrap(),
            25_165_824
        );
        // Bytes round down to whole rows: 1 KB holds one 512-byte row.
        assert_eq!(CacheSize::Bytes(1000.0).resolve(&b).unwrap(), 1);
        let e = CacheSize::Bytes(511.0).resolve(&b).unwrap_err().to_string();
        assert!(e.contains("one row of 512 bytes"), "{e}");
        // A percentage is of the table's rows, or of the unique rows when asked.
        assert_eq!(CacheSize::Percent(5.0).resolve(&b).unwrap(), 50);
        let u = basis(CacheOf::Unique, Some(1000));
        assert_eq!(CacheSize::Percent(5.0).resolve(&u).unwrap(), 36);
        let e = CacheSize::Percent(5.0)
            .resolve(&basis(CacheOf::Table, None))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--table-rows") && e.contains("--cache-of unique"),
            "{e}"
        );
        assert!(CacheSize::Bytes(1e6).rows(10).is_err());
    }

    #[test]
    fn per_batch_dedup_counts() {
        // Batches of 3: [1 1 2] [2 3 3]; LRU with room for everything.
        let t = DenseTrace::from_rows(&[1, 1, 2, 2, 3, 3], 3);
        let (m, bc) = simulate(&t, PolicyKind::Lru, 10).unwrap();
        assert_eq!((m.hits, m.misses), (3, 3));
        assert_eq!(bc.unique, vec![2, 2]);
        assert_eq!(bc.misses, vec![2, 1]);
        assert_eq!(m.batch_unique_misses, Some(3));
        assert!(m.cache_exceeds_unique && m.note.contains("exceeds"));
    }
}
