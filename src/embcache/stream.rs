//! Streaming simulation: LRU, FIFO, LFU, Belady and static top-k in one pass over a trace that
//! is read (or generated) as it goes, with memory bounded by the number of distinct rows, not
//! accesses (static top-k first profiles its hot set: two more passes, see [`profile_top_k`]).
//!
//! The in-memory path ([`super::simulate`] on a [`DenseTrace`](super::trace::DenseTrace)) keeps
//! one `u32` per access and, per batch, the unique/miss/eviction counts (≈ 24 bytes per access
//! with `--batch 1`). Here:
//! - ids are remapped to dense rows by first appearance as they stream ([`Remap`]: an
//!   open-addressing [`IdMap`], or for a generated trace a flat array over its declared tables),
//!   so the dense rows, and with them every tie-break, are those of the in-memory path;
//! - speed: a reading thread decodes and remaps while the simulating thread runs the policy;
//!   both prefetch a few accesses ahead (the remap slot, the declared next use, the policy's
//!   per-row state), so the cache misses of several accesses overlap, and per-row arrays of
//!   4 MiB or more ask for transparent huge pages (fewer TLB misses);
//! - the policies grow their per-row arrays as rows appear (`grow`);
//! - per-batch counts are folded into sums as each batch ends ([`Tally`]), including the
//!   on-demand pipeline times, in the same order as [`super::pipeline::Pipeline::times`] adds
//!   them, so the results are bit-identical;
//! - Belady needs each access's next use: an oracleGeneral file declares it
//!   (`next_access_vtime`), which is used as is after checking, while streaming, that it agrees
//!   with the trace (every reuse was announced, at a constant offset, and nothing else was); if
//!   it does not, or for other formats, the next uses are computed with a spool: the dense rows
//!   are written to an unnamed temporary file in the OS temp dir (4 bytes per access on disk,
//!   removed by the OS when closed, even after a kill), rewritten in place into next uses by a
//!   backward pass with one `u32` per row, and read forward next to a second pass over the source.
//!
//! State per distinct row: LRU 8 bytes, FIFO 1 (+ the ring, ≤ capacity), LFU 12, Belady 8
//! (+ 8 while checking declared next uses), plus 4 for the batch stamp and the remap
//! (an [`IdMap`] slot, 21–43 bytes per distinct id, or 4 bytes per declared table row for a
//! generated trace); Belady's heap holds at most 4 entries of 16 bytes per resident row + 64.

use super::idmap::{self, IdMap};
use super::pipeline::{IterTimes, Pipeline};
use super::policy::{fifo::Fifo, lfu::Lfu, lru::Lru, topk::StaticTopK, Policy, PolicyKind};
use super::trace::{self, lcs_csv, movielens, oracle, zipf::ZipfSpec, Access};
use super::trace::{ReadOptions, TraceFormat};
use super::Metrics;
use crate::error::{Error, Result};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Instant;

mod lookahead;
pub use lookahead::min_feasible_rows as lookahead_min_feasible_rows;

/// A trace that can be read more than once: a file, or a seeded generator (regenerated
/// identically on every pass).
#[derive(Debug, Clone)]
pub enum Source {
    /// A trace file.
    File {
        /// Path.
        path: PathBuf,
        /// Format.
        format: TraceFormat,
        /// Format options (MovieLens order and lookups, libCacheSim CSV columns).
        opts: ReadOptions,
    },
    /// The seeded Zipf generator.
    Zipf(ZipfSpec),
    /// Another source's dense rows and batch starts, spooled to a temporary file by one pass
    /// over it ([`spool_rows`]): read back far faster than the source is generated or parsed,
    /// by every pass of a study's points.
    Rows(std::sync::Arc<RowSpool>),
}

/// A source's accesses as dense rows (numbered by first appearance) in an unnamed temporary
/// file, 4 bytes per access: the row, with the top bit set on a batch's first access. Its passes
/// read it at their own offsets (positional reads), so the points of a study read it at once.
#[derive(Debug)]
pub struct RowSpool {
    file: std::fs::File,
    /// Accesses.
    pub accesses: u64,
    /// Distinct rows.
    pub rows: u32,
    /// The source's description ([`Source::describe`]).
    desc: String,
    /// What the source's reader ignored ([`Source::scan`]).
    warnings: Vec<String>,
}

/// The flag of a batch's first access in a [`RowSpool`].
const ROW_BATCH: u32 = 1 << 31;

/// Reads `buf.len()` bytes (fewer at the end of the file) at `pos` of `file` without moving its
/// offset; `None` where the platform has no positional read.
fn read_at(file: &std::fs::File, buf: &mut [u8], pos: u64) -> Option<std::io::Result<usize>> {
    #[cfg(unix)]
    let one = |b: &mut [u8], at: u64| std::os::unix::fs::FileExt::read_at(file, b, at);
    #[cfg(windows)]
    let one = |b: &mut [u8], at: u64| std::os::windows::fs::FileExt::seek_read(file, b, at);
    #[cfg(any(unix, windows))]
    {
        let mut n = 0;
        while n < buf.len() {
            match one(&mut buf[n..], pos + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(n))
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (file, buf, pos);
        None
    }
}

/// Spools `src`'s dense rows and batch starts (batches of `batch` samples) to a [`RowSpool`]
/// in one pass; with it the accesses and distinct rows. `None` (nothing spooled) where a
/// row does not fit the spool's 31 bits or the platform has no positional read: read `src`
/// itself then.
///
/// # Errors
/// Reader errors; an empty trace; temporary-file errors.
pub fn spool_rows(src: &Source, batch: u64) -> Result<Option<RowSpool>> {
    let name = src.name();
    let io = |e: std::io::Error| Error::parse(&name, None, format!("temporary spool file: {e}"));
    let file = tempfile::tempfile().map_err(io)?;
    if read_at(&file, &mut [], 0).is_none() {
        return Ok(None);
    }
    let mut remap = Remap::for_source(src);
    let mut batcher = Batcher::new(batch, src.has_batches());
    let (mut n, mut rows) = (0u64, 0u32);
    let (mut err, mut too_many) = (None, false);
    let warnings = {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
        let warnings = src.scan(|a, _| {
            let (r, new) = remap.row(a.table, a.id, rows);
            if r >= ROW_BATCH {
                too_many = true;
                return false;
            }
            rows += u32::from(new);
            let flag = if batcher.starts(a.group) {
                ROW_BATCH
            } else {
                0
            };
            n += 1;
            if let Err(e) = w.write_all(&(r | flag).to_le_bytes()) {
                err = Some(io(e));
                return false;
            }
            true
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        if too_many {
            return Ok(None);
        }
        w.flush().map_err(io)?;
        warnings
    };
    if n == 0 {
        return Err(Error::parse(&name, None, "empty trace: no accesses"));
    }
    Ok(Some(RowSpool {
        file,
        accesses: n,
        rows,
        desc: src.describe(),
        warnings,
    }))
}

impl RowSpool {
    /// Calls `f` with every access (row as id, batch number as group, table 0), in order; false
    /// from `f` stops early.
    fn scan(&self, mut f: impl FnMut(Access, i64) -> bool) -> Result<()> {
        let io = |e: std::io::Error| {
            Error::parse(&self.desc, None, format!("temporary spool file: {e}"))
        };
        let mut buf = vec![0u8; 1 << 20];
        let (mut pos, mut group) = (0u64, 0u64);
        let end = self.accesses * 4;
        while pos < end {
            let len = buf.len().min((end - pos) as usize);
            let got = read_at(&self.file, &mut buf[..len], pos)
                .unwrap_or(Ok(0))
                .map_err(io)?;
            if got < len {
                return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            for c in buf[..len].chunks_exact(4) {
                let x = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                if x & ROW_BATCH != 0 && pos > 0 {
                    group += 1;
                }
                pos += 4;
                let a = Access {
                    group,
                    table: 0,
                    id: u64::from(x & !ROW_BATCH),
                };
                if !f(a, -1) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

impl Source {
    /// Where the trace comes from, as [`super::trace::DenseTrace::source`] says it.
    pub fn describe(&self) -> String {
        match self {
            Source::File { path, .. } => path.display().to_string(),
            Source::Zipf(z) => z.describe(),
            Source::Rows(r) => r.desc.clone(),
        }
    }

    /// Whether `group` is an explicit batch number (CSV, Parquet) rather than a sample number.
    pub fn has_batches(&self) -> bool {
        match self {
            Source::File { format, .. } => format.has_batches(),
            Source::Zipf(_) => false,
            Source::Rows(_) => true,
        }
    }

    /// Whether the format declares every access's next use (oracleGeneral).
    pub fn declares_next_use(&self) -> bool {
        matches!(
            self,
            Source::File {
                format: TraceFormat::OracleGeneral,
                ..
            }
        )
    }

    /// Calls `f` with every access, in order, and its declared next use (`next_access_vtime`
    /// for oracleGeneral, −1 for the other formats); `f` returning false stops the pass early.
    /// Returns what the reader had to ignore (object sizes), as
    /// [`super::trace::DenseTrace::warnings`].
    ///
    /// # Errors
    /// The first reader error; format options that do not apply to the format.
    pub fn scan(&self, mut f: impl FnMut(Access, i64) -> bool) -> Result<Vec<String>> {
        let (path, format, opts) = match self {
            Source::Rows(r) => {
                r.scan(f)?;
                return Ok(r.warnings.clone());
            }
            Source::Zipf(z) => {
                for a in z.stream() {
                    if !f(a?, -1) {
                        break;
                    }
                }
                return Ok(Vec::new());
            }
            Source::File { path, format, opts } => (path, *format, opts),
        };
        opts.check(format)?;
        let mut run = |r: &mut dyn Iterator<Item = Result<Access>>| -> Result<()> {
            for a in r {
                if !f(a?, -1) {
                    break;
                }
            }
            Ok(())
        };
        match format {
            TraceFormat::OracleGeneral => {
                let mut r = oracle::OracleReader::open(path)?;
                r.scan_with_vtime(&mut f)?;
                Ok(r.sizes().warning().into_iter().collect())
            }
            TraceFormat::LcsCsv => {
                let layout = opts.csv.clone().unwrap_or_default();
                let mut r = lcs_csv::LcsCsvReader::open(path, layout)?;
                run(&mut r)?;
                Ok(r.sizes().warning().into_iter().collect())
            }
            TraceFormat::MovieLens => {
                let mut r = movielens::open(
                    path,
                    opts.order.unwrap_or_default(),
                    opts.lookups.unwrap_or_default(),
                )?;
                run(&mut r)?;
                Ok(Vec::new())
            }
            _ => {
                let mut r = trace::open(path, format)?;
                run(&mut r)?;
                Ok(Vec::new())
            }
        }
    }

    /// The path, for error messages.
    fn name(&self) -> String {
        self.describe()
    }
}

/// `(table, id)` → dense row, by first appearance.
#[derive(Debug)]
pub enum Remap {
    /// Any ids: an open-addressing hash map ([`IdMap`]).
    Hash(IdMap),
    /// Ids below known table sizes (a generated trace): a flat array, one `u32` per table row.
    Flat {
        /// First index of every table.
        offsets: Vec<u64>,
        /// Dense row of every table row, `u32::MAX` when not seen yet.
        rows: Vec<u32>,
    },
}

impl Remap {
    /// The remap for `src`: flat over a generator's tables, hashed otherwise.
    pub fn for_source(src: &Source) -> Self {
        match src {
            Source::Zipf(z) => {
                let mut offsets = Vec::with_capacity(z.tables.len());
                let mut total = 0u64;
                for &n in &z.tables {
                    offsets.push(total);
                    total += n;
                }
                match usize::try_from(total) {
                    Ok(n) if total < u64::from(u32::MAX) => Remap::Flat {
                        offsets,
                        rows: vec![u32::MAX; n],
                    },
                    _ => Remap::Hash(IdMap::default()),
                }
            }
            Source::File { .. } => Remap::Hash(IdMap::default()),
            // Rows already dense: renumbered by first appearance again, they stay the same.
            Source::Rows(r) => Remap::Flat {
                offsets: vec![0],
                rows: vec![u32::MAX; r.rows as usize],
            },
        }
    }

    /// Where `(table, id)` lives: its hash, or its index in the flat array.
    #[inline]
    pub fn hash(&self, table: u32, id: u64) -> u64 {
        match self {
            Remap::Hash(_) => IdMap::hash(table, id),
            Remap::Flat { offsets, .. } => offsets[table as usize] + id,
        }
    }

    /// Starts loading the entry of [`Remap::hash`] `h` (a hint; see [`idmap::prefetch`]).
    #[inline]
    pub fn prefetch(&self, h: u64) {
        match self {
            Remap::Hash(m) => m.prefetch(h),
            Remap::Flat { rows, .. } => {
                if let Some(r) = rows.get(h as usize) {
                    idmap::prefetch(r);
                }
            }
        }
    }

    /// [`Remap::row`] given the key's [`Remap::hash`] `h`.
    #[inline]
    pub fn row_hashed(&mut self, h: u64, table: u32, id: u64, next: u32) -> (u32, bool) {
        match self {
            Remap::Hash(m) => m.row_hashed(h, table, id, next),
            Remap::Flat { rows, .. } => {
                let r = &mut rows[h as usize];
                if *r == u32::MAX {
                    *r = next;
                    (next, true)
                } else {
                    (*r, false)
                }
            }
        }
    }

    /// The dense row of `(table, id)`, `next` (the number of rows so far) when new; the flag
    /// says whether it is new.
    #[inline]
    pub fn row(&mut self, table: u32, id: u64, next: u32) -> (u32, bool) {
        let h = self.hash(table, id);
        self.row_hashed(h, table, id, next)
    }
}

/// Batch boundaries from access groups, as [`super::trace::DenseTrace::from_stream`] draws them.
#[derive(Debug, Clone, Copy)]
struct Batcher {
    batch: u64,
    has_batches: bool,
    cur: Option<u64>,
    /// The groups `lo..hi` of the current batch (empty before the first), to skip the division.
    lo: u64,
    hi: u64,
}

impl Batcher {
    fn new(batch: u64, has_batches: bool) -> Self {
        Batcher {
            batch: batch.max(1),
            has_batches,
            cur: None,
            lo: 0,
            hi: 0,
        }
    }

    /// Whether `group` starts a new batch.
    #[inline]
    fn starts(&mut self, group: u64) -> bool {
        if (self.lo..self.hi).contains(&group) {
            return false;
        }
        let b = if self.has_batches || self.batch == 1 {
            group
        } else {
            group / self.batch
        };
        let per = if self.has_batches { 1 } else { self.batch };
        self.lo = b * per;
        self.hi = self.lo.saturating_add(per);
        if self.cur != Some(b) {
            self.cur = Some(b);
            true
        } else {
            false
        }
    }
}

/// Per-batch counts folded into sums as batches end (what [`super::BatchCounts`] holds per
/// batch, and the on-demand pipeline times).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Accesses.
    pub accesses: u64,
    /// Hits.
    pub hits: u64,
    /// Batches.
    pub batches: u64,
    /// Σ unique rows per batch.
    pub unique: u64,
    /// Σ unique rows that missed per batch.
    pub misses: u64,
    /// Σ evictions per batch.
    pub evictions: u64,
    /// Largest unique misses of one batch.
    pub max_misses: u32,
    /// Σ over batches of the pipeline's iteration without a cache, s.
    no_cache_sum_s: f64,
    /// Σ over batches of the pipeline's on-demand iteration, s.
    on_demand_sum_s: f64,
    /// Lookahead: iteration times with the next batch prefetched ([`Pipeline::prefetch_s`]).
    lookahead: bool,
    /// Lookahead: the first batch's fetch plus one term per batch whose successor has ended, s.
    prefetch_sum_s: f64,
    /// Lookahead: the last ended batch's evictions.
    prev_evictions: u32,
    cur_unique: u32,
    cur_misses: u32,
    /// Accesses of the current batch so far, capped at 2.
    cur_len: u8,
    /// The current batch's first row.
    first: u32,
    ev0: u64,
    /// Batch stamp of every row (the batch number + 1 of its last access; 0 = none).
    seen: Vec<u32>,
    stamp: u32,
    /// Distinct rows.
    pub rows: u32,
}

impl Tally {
    fn end_batch(&mut self, evicted: u64, pipe: Option<&Pipeline>) {
        if self.stamp == 0 {
            return;
        }
        let (u, m) = (self.cur_unique, self.cur_misses);
        self.batches += 1;
        self.unique += u64::from(u);
        self.misses += u64::from(m);
        self.evictions += evicted - self.ev0;
        self.max_misses = self.max_misses.max(m);
        if let Some(p) = pipe {
            // The same terms, added in the same order, as Pipeline::no_cache_s / on_demand_s.
            self.no_cache_sum_s += p.busy_s() + 2.0 * p.xfer_s(u);
            self.on_demand_sum_s += p.busy_s() + 2.0 * p.xfer_s(m);
            if self.lookahead {
                // Pipeline::prefetch_s: xfer(m₀), then per batch b max(busy, xfer(m_{b+1}) +
                // xfer(ev_b)), added when b + 1 ends (the last one in `times`).
                let ev = (evicted - self.ev0) as u32;
                if self.batches == 1 {
                    self.prefetch_sum_s = p.xfer_s(m);
                } else {
                    self.prefetch_sum_s +=
                        p.busy_s().max(p.xfer_s(m) + p.xfer_s(self.prev_evictions));
                }
                self.prev_evictions = ev;
            }
        }
    }

    fn start_batch(&mut self, evicted: u64) -> Result<()> {
        if self.stamp == u32::MAX - 1 {
            return Err(Error::range(
                "--batch",
                "a trace of 2^32 − 2 or more batches",
                "fewer batches: a larger --batch",
            ));
        }
        self.stamp += 1;
        self.cur_len = 0;
        self.cur_unique = 0;
        self.cur_misses = 0;
        self.ev0 = evicted;
        Ok(())
    }

    #[inline]
    fn count(&mut self, r: u32, hit: bool) {
        self.accesses += 1;
        self.hits += u64::from(hit);
        // A batch's first access is unique without looking; its stamp is written only when a
        // second access comes (so batches of one access, `--batch 1` on most formats, touch no
        // per-row memory here).
        if self.cur_len == 0 {
            self.cur_len = 1;
            self.first = r;
            self.cur_unique = 1;
            self.cur_misses = u32::from(!hit);
            return;
        }
        if self.cur_len == 1 {
            self.seen[self.first as usize] = self.stamp;
            self.cur_len = 2;
        }
        let s = &mut self.seen[r as usize];
        if *s != self.stamp {
            *s = self.stamp;
            self.cur_unique += 1;
            self.cur_misses += u32::from(!hit);
        }
    }

    /// On-demand iteration times, as [`Pipeline::times`] gives them for the same counts.
    pub fn times(&self, p: &Pipeline) -> IterTimes {
        let mean = |s: f64| {
            if self.batches == 0 {
                0.0
            } else {
                s / self.batches as f64
            }
        };
        if self.lookahead {
            let last = p.busy_s().max(p.xfer_s(0) + p.xfer_s(self.prev_evictions));
            let prefetch = if self.batches == 0 {
                0.0
            } else {
                mean(self.prefetch_sum_s + last)
            };
            return p.times_of(mean(self.no_cache_sum_s), prefetch);
        }
        p.times_of(mean(self.no_cache_sum_s), mean(self.on_demand_sum_s))
    }

    /// Bytes held per distinct row by the tally (the batch stamps): what a test can bound.
    pub fn state_bytes(&self) -> usize {
        self.seen.capacity() * std::mem::size_of::<u32>()
    }
}

/// A policy that grows with the rows it sees.
trait Grow: Policy {
    fn grow(&mut self, n_rows: usize);
    /// Starts loading the state of row `r` (a hint: no effect on any result).
    fn prefetch(&self, r: u32);
    /// Second-stage hint, [`AHEAD_POLICY_2`] accesses before `r`'s: the state a hit on `r`
    /// also touches, found through `r`'s (prefetched) state.
    fn prefetch_2(&self, _r: u32) {}
    fn go(&mut self, r: u32, _next: u64) -> bool {
        self.access(r)
    }
}

impl Grow for Lru {
    fn grow(&mut self, n: usize) {
        Lru::grow(self, n);
    }
    #[inline]
    fn prefetch(&self, r: u32) {
        Lru::prefetch(self, r);
    }
    #[inline]
    fn prefetch_2(&self, r: u32) {
        Lru::prefetch_neighbours(self, r);
    }
}
impl Grow for Fifo {
    fn grow(&mut self, n: usize) {
        Fifo::grow(self, n);
    }
    #[inline]
    fn prefetch(&self, r: u32) {
        Fifo::prefetch(self, r);
    }
}
impl Grow for Lfu {
    fn grow(&mut self, n: usize) {
        Lfu::grow(self, n);
    }
    #[inline]
    fn prefetch(&self, r: u32) {
        Lfu::prefetch(self, r);
    }
}

/// A 4-ary max-heap of `(next-use key, row)`: half the levels of a binary heap, and a node's
/// four children are adjacent (one or two cache lines), so a pop from a heap of 10^5–10^6
/// entries misses the cache about half as often. Pops the same maximum as
/// `std::collections::BinaryHeap` (equal entries are indistinguishable).
#[derive(Debug, Clone, Default)]
struct Heap4 {
    v: Vec<(u64, u32)>,
}

impl Heap4 {
    fn len(&self) -> usize {
        self.v.len()
    }

    #[inline]
    fn push(&mut self, x: (u64, u32)) {
        let mut i = self.v.len();
        self.v.push(x);
        while i > 0 {
            let p = (i - 1) / 4;
            if self.v[p] >= x {
                break;
            }
            self.v[i] = self.v[p];
            i = p;
        }
        self.v[i] = x;
    }

    /// Moves `x` down from slot `i` (whose old value is discarded) to where the heap order
    /// holds.
    #[inline]
    fn sift_down(&mut self, mut i: usize, x: (u64, u32)) {
        let n = self.v.len();
        loop {
            let c = 4 * i + 1;
            if c >= n {
                break;
            }
            let mut m = c;
            for j in c + 1..(c + 4).min(n) {
                if self.v[j] > self.v[m] {
                    m = j;
                }
            }
            if self.v[m] <= x {
                break;
            }
            self.v[i] = self.v[m];
            i = m;
        }
        self.v[i] = x;
    }

    #[inline]
    fn pop(&mut self) -> Option<(u64, u32)> {
        let last = self.v.pop()?;
        if self.v.is_empty() {
            return Some(last);
        }
        let top = self.v[0];
        self.sift_down(0, last);
        Some(top)
    }

    /// Drops the entries whose key is no longer their row's (`key[row] != key`) and restores
    /// the heap order, prefetching the rows' keys a few entries ahead.
    fn retain_live(&mut self, key: &[u64]) {
        const AHEAD: usize = 16;
        let mut w = 0;
        for i in 0..self.v.len() {
            if let Some(&(_, r)) = self.v.get(i + AHEAD) {
                idmap::prefetch(&key[r as usize]);
            }
            let (k, r) = self.v[i];
            if key[r as usize] == k {
                self.v[w] = (k, r);
                w += 1;
            }
        }
        self.v.truncate(w);
        for i in (0..w.div_ceil(4)).rev() {
            let x = self.v[i];
            self.sift_down(i, x);
        }
    }
}

/// Belady/MIN driven by next uses given with each access (see [`super::policy::belady`]; the
/// same rule and tie-break: a row never used again ranks above every position, later-first-seen
/// rows first).
#[derive(Debug, Clone)]
pub struct StreamBelady {
    cap: usize,
    len: usize,
    /// Key of each row's current heap entry (next use + 1, `u64::MAX` = never); 0 = not resident.
    key: Vec<u64>,
    heap: Heap4,
    evicted: u64,
}

impl StreamBelady {
    /// An empty cache of `capacity` rows.
    pub fn new(capacity: usize) -> Self {
        StreamBelady {
            cap: capacity,
            len: 0,
            key: Vec::new(),
            heap: Heap4::default(),
            evicted: 0,
        }
    }

    /// Heap entries now (bounded by 4 × resident rows + 64 after every access).
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// Serves one access whose next use has key `next` (position + 1, or `u64::MAX` for none).
    #[inline]
    pub fn access_next(&mut self, r: u32, next: u64) -> bool {
        let hit = self.key[r as usize] != 0;
        if hit {
            self.key[r as usize] = next;
            self.heap.push((next, r));
            if self.heap.len() > 4 * self.len + 64 {
                self.heap.retain_live(&self.key);
            }
            return true;
        }
        if self.cap == 0 {
            return false;
        }
        if self.len == self.cap {
            while let Some((k, v)) = self.heap.pop() {
                if self.key[v as usize] == k {
                    self.key[v as usize] = 0;
                    self.len -= 1;
                    self.evicted += 1;
                    break;
                }
            }
        }
        self.key[r as usize] = next;
        self.heap.push((next, r));
        self.len += 1;
        false
    }
}

impl Policy for StreamBelady {
    fn name(&self) -> &'static str {
        "belady"
    }
    fn capacity(&self) -> usize {
        self.cap
    }
    fn len(&self) -> usize {
        self.len
    }
    fn contains(&self, row: u32) -> bool {
        self.key.get(row as usize).is_some_and(|&k| k != 0)
    }
    fn access(&mut self, _: u32) -> bool {
        unreachable!("StreamBelady needs the next use: access_next")
    }
    fn evicted(&self) -> u64 {
        self.evicted
    }
    fn resident(&self) -> Vec<u32> {
        (0..self.key.len() as u32)
            .filter(|&r| self.key[r as usize] != 0)
            .collect()
    }
}

impl Grow for StreamBelady {
    fn grow(&mut self, n: usize) {
        if n > self.key.len() {
            idmap::resize_huge(&mut self.key, n, 0);
        }
    }
    #[inline]
    fn prefetch(&self, r: u32) {
        if let Some(k) = self.key.get(r as usize) {
            idmap::prefetch(k);
        }
    }
    #[inline]
    fn go(&mut self, r: u32, next: u64) -> bool {
        self.access_next(r, next)
    }
}

/// Static top-k for a streaming pass: [`StaticTopK`] with its hot set profiled as
/// [`StaticTopK::new`] profiles a trace in memory (accesses per row over the first
/// `⌈accesses × fraction⌉`, at least one), from two passes over the source (the accesses, then the
/// prefix) instead of a trace in memory. State: 8 bytes per distinct row of the prefix while
/// profiling, then 2 per row.
///
/// # Errors
/// Reader errors; an empty trace.
pub fn profile_top_k(src: &Source, capacity: usize, fraction: f64) -> Result<StaticTopK> {
    let (n, _) = count(src)?;
    let prefix = ((n as f64 * fraction.clamp(0.0, 1.0)).ceil() as u64).clamp(1, n.max(1));
    let mut remap = Remap::for_source(src);
    let mut counts: Vec<u64> = Vec::new();
    let mut t = 0u64;
    src.scan(|a, _| {
        if t == prefix {
            return false;
        }
        let (r, new) = remap.row(a.table, a.id, counts.len() as u32);
        if new {
            counts.push(0);
        }
        counts[r as usize] += 1;
        t += 1;
        true
    })?;
    drop(remap);
    Ok(StaticTopK::from_counts(capacity, &counts, counts.len()))
}

impl Grow for StaticTopK {
    fn grow(&mut self, n: usize) {
        StaticTopK::grow(self, n);
    }
    #[inline]
    fn prefetch(&self, r: u32) {
        StaticTopK::prefetch(self, r);
    }
}

/// One streaming pass's result.
#[derive(Debug, Clone)]
pub struct Pass {
    /// Counts.
    pub tally: Tally,
    /// What the reader ignored.
    pub warnings: Vec<String>,
    /// Seconds the pass took (reading, remapping and the policy).
    pub sim_s: f64,
}

/// Where a pass gets each access's next-use key from.
enum NextUse<'a> {
    /// Not needed.
    None,
    /// The declared `next_access_vtime`, checked as the pass goes.
    Declared(&'a mut Check),
    /// Read from the spool (next positions in trace order, `u32::MAX` = none).
    Spool(std::io::BufReader<&'a std::fs::File>),
}

/// Checks that declared next uses agree with the trace: every reuse was announced at the same
/// offset from its position, and the number of announced reuses equals the number of reuses.
#[derive(Debug, Default)]
struct Check {
    /// Declared next use of every row's last access (`i64::MIN` = never).
    declared: Vec<i64>,
    offset: Option<i64>,
    announced: u64,
    reuses: u64,
    ok: bool,
}

impl Check {
    /// Starts loading row `r`'s declared next use (a hint; rows not seen yet are skipped).
    #[inline]
    fn prefetch(&self, r: u32) {
        if let Some(d) = self.declared.get(r as usize) {
            idmap::prefetch(d);
        }
    }

    /// The key of an access of `r` at position `t` declaring `next`; false in `ok` once the
    /// declarations disagree with the trace.
    #[inline]
    fn key(&mut self, r: u32, new: bool, t: u64, next: i64) -> u64 {
        let r = r as usize;
        if new {
            let n = self.declared.len() + 1;
            idmap::resize_huge(&mut self.declared, n, i64::MIN);
        } else {
            self.reuses += 1;
            let d = self.declared[r];
            let off = d.wrapping_sub(t as i64);
            match self.offset {
                _ if d == i64::MIN => self.ok = false,
                None => self.offset = Some(off),
                Some(o) if o != off => self.ok = false,
                Some(_) => {}
            }
        }
        if (0..i64::MAX).contains(&next) {
            self.announced += 1;
            self.declared[r] = next;
            next as u64 + 1
        } else {
            self.declared[r] = i64::MIN;
            u64::MAX
        }
    }
}

/// One access as the reading thread hands it to the simulating one.
#[derive(Debug, Clone, Copy, Default)]
struct Item {
    row: u32,
    /// [`NEW_ROW`] | [`NEW_BATCH`].
    flags: u32,
    /// Next-use key (Belady), 0 otherwise.
    key: u64,
}

/// The access's row appears for the first time.
const NEW_ROW: u32 = 1;
/// The access starts a batch.
const NEW_BATCH: u32 = 2;
/// Accesses per hand-over between the threads.
const ITEMS: usize = 1 << 14;
/// How many accesses ahead the reading thread prefetches the remap's slot of an id: enough
/// lookups in flight to cover a DRAM miss (≈ 100 ns) at a few ns of work per access.
const AHEAD_REMAP: usize = 16;
/// How many accesses ahead the reading thread prefetches a row's declared next use (after its
/// row is known).
const AHEAD_DECLARED: usize = 8;
/// How many accesses ahead the simulating thread prefetches the policy's state of a row.
const AHEAD_POLICY: usize = 12;
/// How many accesses ahead it prefetches what that state points to ([`Grow::prefetch_2`]).
const AHEAD_POLICY_2: usize = 5;

/// An access waiting for its remap lookup (its slot is being prefetched).
#[derive(Debug, Clone, Copy)]
struct Pending {
    a: Access,
    declared: i64,
    h: u64,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            a: Access {
                group: 0,
                table: 0,
                id: 0,
            },
            declared: 0,
            h: 0,
        }
    }
}

/// A delay line of `N` (a power of two) values: each push returns the value pushed `N` pushes
/// earlier, once there is one.
#[derive(Debug)]
struct Delay<T, const N: usize> {
    slots: [T; N],
    pushed: usize,
}

impl<T: Copy + Default, const N: usize> Delay<T, N> {
    fn new() -> Self {
        Delay {
            slots: [T::default(); N],
            pushed: 0,
        }
    }

    #[inline]
    fn push(&mut self, x: T) -> Option<T> {
        let old = std::mem::replace(&mut self.slots[self.pushed % N], x);
        self.pushed += 1;
        (self.pushed > N).then_some(old)
    }

    /// The values not returned yet, oldest first; empties the line.
    fn drain(&mut self) -> Vec<T> {
        let left = self.pushed.min(N);
        let v = (self.pushed - left..self.pushed)
            .map(|i| self.slots[i % N])
            .collect();
        self.pushed = 0;
        v
    }
}

/// An access with its row, waiting for its next-use key (its declared next use is being
/// prefetched).
#[derive(Debug, Clone, Copy, Default)]
struct Looked {
    row: u32,
    flags: u32,
    declared: i64,
}

/// The reading thread's work on each access, in three stages a few accesses apart so that the
/// cache misses of several accesses overlap: hash the id and prefetch its remap slot; look the
/// row up (in trace order, so rows are numbered by first appearance) and prefetch its declared
/// next use; compute the next-use key and hand the access over.
struct Feeder<'a, 'n> {
    name: &'a str,
    remap: Remap,
    batcher: Batcher,
    next: NextUse<'n>,
    rows: u32,
    t: u64,
    pending: Delay<Pending, AHEAD_REMAP>,
    looked: Delay<Looked, AHEAD_DECLARED>,
    buf: Vec<Item>,
    tx: std::sync::mpsc::SyncSender<Vec<Item>>,
    back_rx: std::sync::mpsc::Receiver<Vec<Item>>,
    err: Option<Error>,
    /// The simulating thread stopped listening.
    closed: bool,
}

impl Feeder<'_, '_> {
    /// Takes one access; false stops the pass (an error, a failed check, a closed channel).
    #[inline]
    fn push(&mut self, a: Access, declared: i64) -> bool {
        let h = self.remap.hash(a.table, a.id);
        self.remap.prefetch(h);
        match self.pending.push(Pending { a, declared, h }) {
            Some(p) => self.look_up(p),
            None => true,
        }
    }

    #[inline]
    fn look_up(&mut self, p: Pending) -> bool {
        let mut flags = 0;
        if self.batcher.starts(p.a.group) {
            flags |= NEW_BATCH;
        }
        let (row, new) = self.remap.row_hashed(p.h, p.a.table, p.a.id, self.rows);
        if new {
            if self.rows == u32::MAX - 1 {
                self.err = Some(Error::parse(
                    self.name,
                    None,
                    "more than 2^32 − 2 distinct ids",
                ));
                return false;
            }
            self.rows += 1;
            flags |= NEW_ROW;
        }
        let l = Looked {
            row,
            flags,
            declared: p.declared,
        };
        match &self.next {
            NextUse::Declared(c) => {
                c.prefetch(row);
                match self.looked.push(l) {
                    Some(l) => self.emit(l),
                    None => true,
                }
            }
            _ => self.emit(l),
        }
    }

    #[inline]
    fn emit(&mut self, l: Looked) -> bool {
        let key = match &mut self.next {
            NextUse::None => 0,
            NextUse::Declared(c) => {
                let k = c.key(l.row, l.flags & NEW_ROW != 0, self.t, l.declared);
                if !c.ok {
                    return false;
                }
                k
            }
            NextUse::Spool(f) => {
                let mut b = [0u8; 4];
                if let Err(e) = f.read_exact(&mut b) {
                    self.err = Some(Error::parse(self.name, None, format!("spool read: {e}")));
                    return false;
                }
                match u32::from_le_bytes(b) {
                    u32::MAX => u64::MAX,
                    n => u64::from(n) + 1,
                }
            }
        };
        self.t += 1;
        self.buf.push(Item {
            row: l.row,
            flags: l.flags,
            key,
        });
        if self.buf.len() == ITEMS {
            let fresh = self
                .back_rx
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(ITEMS));
            if self
                .tx
                .send(std::mem::replace(&mut self.buf, fresh))
                .is_err()
            {
                self.closed = true;
                return false;
            }
        }
        true
    }

    /// Whether the pass was stopped: an error, a closed channel or a failed check.
    fn stopped(&self) -> bool {
        self.err.is_some() || self.closed || matches!(&self.next, NextUse::Declared(c) if !c.ok)
    }

    /// Finishes the accesses still in the stages and hands over the last chunk (unless the
    /// pass was stopped); the error that stopped it, if any.
    fn finish(mut self) -> Result<()> {
        for p in self.pending.drain() {
            if self.stopped() || !self.look_up(p) {
                break;
            }
        }
        for l in self.looked.drain() {
            if self.stopped() || !self.emit(l) {
                break;
            }
        }
        if let Some(e) = self.err {
            return Err(e);
        }
        if !self.buf.is_empty() && !self.closed {
            let _ = self.tx.send(self.buf);
        }
        Ok(())
    }
}

/// One pass: a reading thread decodes, remaps and finds batch starts and next uses while this
/// thread runs the policy and the tally (two cores: the remap's hash probes and the policy's
/// list updates miss the cache in parallel), chunks of [`ITEMS`] accesses apart. Both threads
/// prefetch a few accesses ahead (see [`Feeder`], [`Grow::prefetch`]).
fn pass<P: Grow>(
    src: &Source,
    batch: u64,
    p: &mut P,
    pipe: Option<&Pipeline>,
    next: NextUse<'_>,
) -> Result<Pass> {
    use std::sync::mpsc::{channel, sync_channel};
    let start = Instant::now();
    let name = src.name();
    let mut tally = Tally::default();
    let mut err: Option<Error> = None;
    let warnings = std::thread::scope(|scope| -> Result<Vec<String>> {
        let (tx, rx) = sync_channel::<Vec<Item>>(4);
        let (back_tx, back_rx) = channel::<Vec<Item>>();
        let name = &name;
        let reader = scope.spawn(move || -> Result<Vec<String>> {
            let mut feeder = Feeder {
                name,
                remap: Remap::for_source(src),
                batcher: Batcher::new(batch, src.has_batches()),
                next,
                rows: 0,
                t: 0,
                pending: Delay::new(),
                looked: Delay::new(),
                buf: Vec::with_capacity(ITEMS),
                tx,
                back_rx,
                err: None,
                closed: false,
            };
            let warnings = src.scan(|a, declared| feeder.push(a, declared))?;
            feeder.finish()?;
            Ok(warnings)
        });
        // Accesses simulated, for the caller's progress bar (`sweep::scoped`; this thread).
        let mut tick = crate::sweep::Ticker::default();
        'chunks: for mut chunk in rx.iter() {
            tick.add(chunk.len() as u64);
            for (i, it) in chunk.iter().enumerate() {
                if let Some(ahead) = chunk.get(i + AHEAD_POLICY) {
                    p.prefetch(ahead.row);
                }
                if let Some(ahead) = chunk.get(i + AHEAD_POLICY_2) {
                    p.prefetch_2(ahead.row);
                }
                if it.flags & NEW_BATCH != 0 {
                    tally.end_batch(p.evicted(), pipe);
                    if let Err(e) = tally.start_batch(p.evicted()) {
                        err = Some(e);
                        break 'chunks;
                    }
                }
                if it.flags & NEW_ROW != 0 {
                    tally.rows += 1;
                    idmap::resize_huge(&mut tally.seen, tally.rows as usize, 0);
                    p.grow(tally.rows as usize);
                }
                let hit = p.go(it.row, it.key);
                tally.count(it.row, hit);
            }
            chunk.clear();
            let _ = back_tx.send(chunk);
        }
        drop(rx);
        reader
            .join()
            .unwrap_or_else(|_| Err(Error::parse(name, None, "the reading thread panicked")))
    });
    if let Some(e) = err {
        return Err(e);
    }
    let warnings = warnings?;
    tally.end_batch(p.evicted(), pipe);
    if tally.accesses == 0 {
        return Err(Error::parse(&name, None, "empty trace: no accesses"));
    }
    Ok(Pass {
        tally,
        warnings,
        sim_s: start.elapsed().as_secs_f64(),
    })
}

/// Counts the accesses and distinct rows of `src` (one pass, no policy).
///
/// # Errors
/// The first reader error; an empty trace.
pub fn count(src: &Source) -> Result<(u64, u64)> {
    let mut remap = Remap::for_source(src);
    let (mut n, mut rows) = (0u64, 0u32);
    src.scan(|a, _| {
        n += 1;
        let (_, new) = remap.row(a.table, a.id, rows);
        rows += u32::from(new);
        true
    })?;
    if n == 0 {
        return Err(Error::parse(src.name(), None, "empty trace: no accesses"));
    }
    Ok((n, u64::from(rows)))
}

/// Whether [`simulate`] streams `kind` (every policy does).
pub fn streams(kind: PolicyKind) -> bool {
    matches!(
        kind,
        PolicyKind::Lru
            | PolicyKind::Fifo
            | PolicyKind::Lfu
            | PolicyKind::StaticTopK { .. }
            | PolicyKind::Belady
            | PolicyKind::Lookahead { .. }
    )
}

/// Simulates `kind` with `cache_rows` on `src` in bounded memory; the metrics equal
/// [`super::simulate`]'s on the same trace (but `sim_s`, which here includes reading), and with
/// `pipe` so do the on-demand iteration times. `batch` is in samples (ignored by formats with a
/// batch column).
///
/// # Errors
/// A capacity of 0; a policy that does not stream (see [`streams`]); reader errors; an empty
/// trace.
pub fn simulate(
    src: &Source,
    batch: u64,
    kind: PolicyKind,
    cache_rows: usize,
    pipe: Option<&Pipeline>,
) -> Result<(Metrics, Pass)> {
    simulate_memo(src, batch, kind, cache_rows, pipe, &Memo::default())
}

/// What the simulations of one source at one batch size share whatever their cache size:
/// lookahead's two-batch working set (one pass) and its peak occupancy per window (a spool and
/// a pass each). A study's points that read the same source share one memo
/// ([`simulate_memo`]), so these passes run once per source (and window), not once per point.
/// Its memory is a few words per window; it is safe to share between threads (a value being
/// computed blocks the other threads asking for it, rather than computing it twice).
#[derive(Debug, Default)]
pub struct Memo {
    min_feasible_rows: std::sync::Mutex<Option<usize>>,
    min_cache_rows: std::sync::Mutex<std::collections::BTreeMap<usize, u64>>,
}

impl Memo {
    /// Lookahead's largest two-batch working set of `src` ([`lookahead_min_feasible_rows`]),
    /// computed on the first call.
    ///
    /// # Errors
    /// Reader errors.
    pub fn min_feasible_rows(&self, src: &Source, batch: u64) -> Result<usize> {
        let mut m = self
            .min_feasible_rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = *m {
            return Ok(n);
        }
        let n = lookahead::min_feasible_rows(src, batch)?;
        *m = Some(n);
        Ok(n)
    }

    /// Lookahead's peak occupancy with window `window` and unbounded capacity (its
    /// `min_cache_rows`), computed on the first call for that window.
    ///
    /// # Errors
    /// Reader and spool errors; an empty trace.
    pub fn min_cache_rows(&self, src: &Source, batch: u64, window: usize) -> Result<u64> {
        let mut m = self
            .min_cache_rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&n) = m.get(&window) {
            return Ok(n);
        }
        let (_, peak) = lookahead::run(src, batch, usize::MAX, window, None)?;
        m.insert(window, peak as u64);
        Ok(peak as u64)
    }
}

/// [`simulate`] with the passes that do not depend on the cache size taken from (or stored in)
/// `memo`, which must only ever be used with this `src` and `batch`.
///
/// # Errors
/// As [`simulate`].
pub fn simulate_memo(
    src: &Source,
    batch: u64,
    kind: PolicyKind,
    cache_rows: usize,
    pipe: Option<&Pipeline>,
    memo: &Memo,
) -> Result<(Metrics, Pass)> {
    if cache_rows == 0 {
        return Err(Error::range("cache", 0, "≥ 1 row"));
    }
    let mut min_cache_rows = None;
    let ps = match kind {
        PolicyKind::Lru => pass(
            src,
            batch,
            &mut Lru::new(cache_rows, 0),
            pipe,
            NextUse::None,
        )?,
        PolicyKind::Fifo => pass(
            src,
            batch,
            &mut Fifo::new(cache_rows, 0),
            pipe,
            NextUse::None,
        )?,
        PolicyKind::Lfu => pass(
            src,
            batch,
            &mut Lfu::new(cache_rows, 0),
            pipe,
            NextUse::None,
        )?,
        PolicyKind::Belady => belady(src, batch, cache_rows, pipe)?,
        PolicyKind::StaticTopK { profile_fraction } => {
            let start = Instant::now();
            let mut p = profile_top_k(src, cache_rows, profile_fraction)?;
            let r = pass(src, batch, &mut p, pipe, NextUse::None)?;
            Pass {
                sim_s: start.elapsed().as_secs_f64(),
                ..r
            }
        }
        PolicyKind::Lookahead { window } => {
            // Reader errors first, then the checks of the in-memory Lookahead::new.
            let need = memo.min_feasible_rows(src, batch)?;
            super::policy::lookahead::check(cache_rows, window, || need)?;
            let (ps, _) = lookahead::run(src, batch, cache_rows, window, pipe)?;
            min_cache_rows = Some(memo.min_cache_rows(src, batch, window)?);
            ps
        }
    };
    let t = &ps.tally;
    let m = super::metrics_of(
        kind,
        cache_rows,
        t.rows as usize,
        super::Totals {
            accesses: t.accesses,
            hits: t.hits,
            batches: t.batches,
            unique: t.unique,
            misses: t.misses,
            evictions: t.evictions,
            max_misses: t.max_misses,
        },
        ps.sim_s,
    );
    let m = Metrics {
        min_cache_rows,
        ..m
    };
    Ok((m, ps))
}

fn belady(src: &Source, batch: u64, cap: usize, pipe: Option<&Pipeline>) -> Result<Pass> {
    if src.declares_next_use() {
        let start = Instant::now();
        let mut check = Check {
            ok: true,
            ..Default::default()
        };
        let mut p = StreamBelady::new(cap);
        let r = pass(src, batch, &mut p, pipe, NextUse::Declared(&mut check))?;
        if check.ok && check.announced == check.reuses {
            return Ok(Pass {
                sim_s: start.elapsed().as_secs_f64(),
                ..r
            });
        }
    }
    let start = Instant::now();
    let spool = spool_next_uses(src)?;
    let mut p = StreamBelady::new(cap);
    let r = pass(
        src,
        batch,
        &mut p,
        pipe,
        NextUse::Spool(std::io::BufReader::with_capacity(1 << 20, &spool)),
    )?;
    Ok(Pass {
        sim_s: start.elapsed().as_secs_f64(),
        ..r
    })
}

/// Accesses per spool chunk in the backward pass.
const CHUNK: usize = 1 << 20;

/// Writes every access's next position (`u32::MAX` = none) to an unnamed temporary file, in
/// trace order: the dense rows forward, then a backward pass rewriting them in place.
fn spool_next_uses(src: &Source) -> Result<std::fs::File> {
    let name = src.name();
    let io = |e: std::io::Error| Error::parse(&name, None, format!("temporary spool file: {e}"));
    let mut file = tempfile::tempfile().map_err(io)?;
    let mut remap = Remap::for_source(src);
    let (mut n, mut rows) = (0u64, 0u32);
    let mut err = None;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
        src.scan(|a, _| {
            if n >= u64::from(u32::MAX) {
                err = Some(Error::parse(
                    &name,
                    None,
                    "Belady on a trace of 2^32 − 1 or more accesses without declared next uses; split it",
                ));
                return false;
            }
            let (r, new) = remap.row(a.table, a.id, rows);
            rows += u32::from(new);
            n += 1;
            if let Err(e) = w.write_all(&r.to_le_bytes()) {
                err = Some(io(e));
                return false;
            }
            true
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        w.flush().map_err(io)?;
    }
    drop(remap);
    let mut last = vec![u32::MAX; rows as usize];
    let mut buf = vec![0u8; CHUNK * 4];
    let mut end = n;
    while end > 0 {
        let begin = end.saturating_sub(CHUNK as u64);
        let len = ((end - begin) * 4) as usize;
        let b = &mut buf[..len];
        file.seek(SeekFrom::Start(begin * 4)).map_err(io)?;
        file.read_exact(b).map_err(io)?;
        for (i, c) in b.chunks_exact_mut(4).enumerate().rev() {
            let t = (begin + i as u64) as u32;
            let r = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize;
            c.copy_from_slice(&last[r].to_le_bytes());
            last[r] = t;
        }
        file.seek(SeekFrom::Start(begin * 4)).map_err(io)?;
        file.write_all(b).map_err(io)?;
        end = begin;
    }
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::super::trace::{oracle::Record, writer, DenseTrace};
    use super::*;

    /// The metrics with the wall-clock fields cleared (they differ between any two runs).
    fn timeless(mut m: Metrics) -> Metrics {
        m.sim_s = None;
        m.sim_requests_per_s = None;
        m
    }

    const KINDS: [PolicyKind; 9] = [
        PolicyKind::Lookahead { window: 1 },
        PolicyKind::Lookahead { window: 2 },
        PolicyKind::Lookahead { window: 5 },
        PolicyKind::Lru,
        PolicyKind::Fifo,
        PolicyKind::Lfu,
        PolicyKind::StaticTopK {
            profile_fraction: 1.0,
        },
        PolicyKind::StaticTopK {
            profile_fraction: 0.3,
        },
        PolicyKind::Belady,
    ];

    /// Streaming equals in-memory, bit for bit (metrics and on-demand times), for every streaming
    /// policy, several caches (below, at and above the unique rows) and batch sizes.
    fn assert_same(src: &Source, load: impl Fn(u64) -> DenseTrace) {
        let pipe = Pipeline::new(1e-3, 256.0, 1e9, 2e-6).unwrap();
        for batch in [1, 7, 64] {
            let t = load(batch);
            let n = t.n_rows();
            for kind in KINDS {
                for cap in [1, 3, n / 10 + 1, n / 2, n, n + 5] {
                    let what = format!("{} cap {cap} batch {batch} on {}", kind.name(), t.source);
                    let m0 = super::super::simulate(&t, kind, cap);
                    let m1 = simulate(src, batch, kind, cap, Some(&pipe));
                    let ((mut m0, bc), (m1, ps)) = match (m0, m1) {
                        (Ok(a), Ok(b)) => (a, b),
                        (Err(a), Err(b)) => {
                            // Lookahead below its two-batch working set: the same error.
                            assert_eq!(a.to_string(), b.to_string(), "{what}");
                            continue;
                        }
                        (a, b) => {
                            panic!("{what}: in memory {:?}, streaming {:?}", a.err(), b.err())
                        }
                    };
                    let ahead = matches!(kind, PolicyKind::Lookahead { .. });
                    super::super::with_min_cache_rows(&mut m0, &t);
                    assert_eq!(timeless(m0), timeless(m1), "{what}");
                    assert_eq!(pipe.times(&bc, ahead), ps.tally.times(&pipe), "{what}");
                    assert_eq!(ps.warnings, t.warnings, "{what}");
                }
            }
        }
    }

    fn zipf() -> ZipfSpec {
        ZipfSpec::new(0.9, vec![300, 40], 6000, 11).unwrap()
    }

    #[test]
    fn generated_trace_streams_like_the_dense_trace() {
        let z = zipf();
        let src = Source::Zipf(z.clone());
        assert_same(&src, |b| {
            DenseTrace::from_stream(z.stream(), b, false, &z.describe()).unwrap()
        });
    }

    #[test]
    fn files_stream_like_the_dense_trace() {
        let z = ZipfSpec::new(0.9, vec![500], 5000, 3).unwrap();
        let t = DenseTrace::from_stream(z.stream(), 1, false, "z").unwrap();
        let d = tempfile::tempdir().unwrap();
        for (name, fmt) in [
            ("t.txt", TraceFormat::Text),
            ("t.csv", TraceFormat::Csv),
            ("t.oracleGeneral", TraceFormat::OracleGeneral),
        ] {
            let path = d.path().join(name);
            writer::write(&t, fmt, &path).unwrap();
            let src = Source::File {
                path: path.clone(),
                format: fmt,
                opts: ReadOptions::default(),
            };
            assert_same(&src, |b| DenseTrace::load(&path, fmt, b).unwrap());
        }
    }

    /// A source spooled to dense rows ([`spool_rows`]) simulates like the source itself, for
    /// every policy at several sizes: a generated trace (two tables) at batches 1 and 7, a CSV
    /// file whose batch column fixes the batches, and an oracleGeneral file with object sizes
    /// (whose reader warning the spool repeats); its counts are [`count`]'s.
    #[test]
    fn row_spools_stream_like_their_source() {
        let z = zipf();
        let t = DenseTrace::from_stream(z.stream(), 3, false, "z").unwrap();
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("t.csv");
        writer::write(&t, TraceFormat::Csv, &path).unwrap();
        let csv = Source::File {
            path,
            format: TraceFormat::Csv,
            opts: ReadOptions::default(),
        };
        // oracleGeneral with object sizes: the reader's warning comes through the spool.
        let mut bytes = Vec::new();
        for (i, a) in t.accesses().filter(|a| a.table == 0).enumerate() {
            let rec = Record {
                clock_time: i as u32,
                obj_id: a.id,
                obj_size: 4096,
                next_access_vtime: -1,
            };
            bytes.extend_from_slice(&rec.to_bytes());
        }
        let path = d.path().join("t.oracleGeneral");
        std::fs::write(&path, bytes).unwrap();
        let oracle = Source::File {
            path,
            format: TraceFormat::OracleGeneral,
            opts: ReadOptions::default(),
        };
        let pipe = Pipeline::new(1e-3, 256.0, 1e9, 2e-6).unwrap();
        let sources = [
            (Source::Zipf(z), 1),
            (Source::Zipf(zipf()), 7),
            (csv, 1),
            (oracle, 2),
        ];
        for (src, batch) in sources {
            let spool = spool_rows(&src, batch).unwrap().unwrap();
            let (n, rows) = count(&src).unwrap();
            assert_eq!((spool.accesses, u64::from(spool.rows)), (n, rows));
            assert_eq!(spool.desc, src.describe());
            let spooled = Source::Rows(std::sync::Arc::new(spool));
            for kind in KINDS {
                for cap in [3, rows as usize / 10 + 1, rows as usize / 2] {
                    let what = format!("{} cap {cap} batch {batch} on {}", kind.name(), src.name());
                    match (
                        simulate(&src, batch, kind, cap, Some(&pipe)),
                        simulate(&spooled, batch, kind, cap, Some(&pipe)),
                    ) {
                        (Ok((m0, p0)), Ok((m1, p1))) => {
                            assert_eq!(timeless(m0), timeless(m1), "{what}");
                            assert_eq!(p0.tally.times(&pipe), p1.tally.times(&pipe), "{what}");
                            assert_eq!(p0.warnings, p1.warnings, "{what}");
                            let sized = matches!(src, Source::File { format, .. } if format == TraceFormat::OracleGeneral);
                            assert_eq!(p1.warnings.is_empty(), !sized, "{what}");
                        }
                        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{what}"),
                        (a, b) => panic!("{what}: {:?} vs {:?}", a.err(), b.err()),
                    }
                }
            }
        }
    }

    /// The optimised pass (prefetching remap, huge-page arrays, 4-ary heap) on a trace large
    /// enough to grow the id map through seven doublings, with scattered 64-bit ids, gives the
    /// in-memory simulator's metrics for every streaming policy (oracleGeneral: Belady uses the
    /// declared next uses; batches of 1 and 16).
    #[test]
    fn large_scattered_ids_stream_like_the_dense_trace() {
        let z = ZipfSpec::new(0.7, vec![150_000], 200_000, 21).unwrap();
        let t = DenseTrace::from_stream(z.stream(), 1, false, "z").unwrap();
        assert!(t.n_rows() > 60_000, "{}", t.n_rows());
        let next = t.next_use();
        let mut bytes = Vec::with_capacity(t.len() * 24);
        for (i, a) in t.accesses().enumerate() {
            let rec = Record {
                clock_time: i as u32,
                obj_id: a.id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (a.id << 61),
                obj_size: 1,
                next_access_vtime: if next[i] == u32::MAX {
                    -1
                } else {
                    i64::from(next[i])
                },
            };
            bytes.extend_from_slice(&rec.to_bytes());
        }
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("big.oracleGeneral");
        std::fs::write(&path, bytes).unwrap();
        let src = Source::File {
            path: path.clone(),
            format: TraceFormat::OracleGeneral,
            opts: ReadOptions::default(),
        };
        for batch in [1, 16] {
            let dense = DenseTrace::load(&path, TraceFormat::OracleGeneral, batch).unwrap();
            assert_eq!(dense.n_rows(), t.n_rows());
            for kind in KINDS {
                if matches!(kind, PolicyKind::Lookahead { window } if window != 2) {
                    continue;
                }
                for cap in [100, 20_000] {
                    let (mut m0, _) = super::super::simulate(&dense, kind, cap).unwrap();
                    super::super::with_min_cache_rows(&mut m0, &dense);
                    let (m1, _) = simulate(&src, batch, kind, cap, None).unwrap();
                    let what = format!("{} cap {cap} batch {batch}", kind.name());
                    assert_eq!(timeless(m0), timeless(m1), "{what}");
                }
            }
        }
    }

    /// An oracleGeneral file whose `next_access_vtime`s are wrong (here: all −1, or shifted
    /// for one record) gives Belady's true result: the check catches it and the spool is used.
    #[test]
    fn wrong_declared_next_uses_fall_back_to_the_spool() {
        let z = ZipfSpec::new(1.0, vec![200], 3000, 5).unwrap();
        let t = DenseTrace::from_stream(z.stream(), 1, false, "z").unwrap();
        let next = t.next_use();
        let d = tempfile::tempdir().unwrap();
        let ids: Vec<u64> = t.accesses().map(|a| a.id).collect();
        for (name, edit) in [
            ("none.oracleGeneral", None),
            ("shifted.oracleGeneral", Some(100usize)),
            ("offset.oracleGeneral", Some(usize::MAX)),
        ] {
            let mut bytes = Vec::new();
            for (i, &id) in ids.iter().enumerate() {
                let n = if next[i] == u32::MAX {
                    -1
                } else {
                    i64::from(next[i])
                };
                let declared = match edit {
                    None => -1,
                    Some(usize::MAX) if n >= 0 => n + 10, // a constant offset: still right
                    Some(k) if k == i && n >= 0 => n + 1,
                    _ => n,
                };
                bytes.extend_from_slice(
                    &Record {
                        clock_time: i as u32,
                        obj_id: id,
                        obj_size: 1,
                        next_access_vtime: declared,
                    }
                    .to_bytes(),
                );
            }
            let path = d.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let src = Source::File {
                path: path.clone(),
                format: TraceFormat::OracleGeneral,
                opts: ReadOptions::default(),
            };
            for cap in [5, 20, 60] {
                let (m0, _) = super::super::simulate(&t, PolicyKind::Belady, cap).unwrap();
                let (m1, _) = simulate(&src, 1, PolicyKind::Belady, cap, None).unwrap();
                assert_eq!(m0.hits, m1.hits, "{name} cap {cap}");
                assert_eq!(timeless(m0), timeless(m1), "{name} cap {cap}");
            }
        }
    }

    /// A pass over N accesses of U distinct ids keeps O(U) state: the remap, the batch stamps
    /// and the policy's per-row arrays have U entries (N = 200 000, U ≤ 1000), Belady's heap
    /// stays within 4 × its capacity + 64, and nothing grows with N.
    #[test]
    fn state_is_bounded_by_the_distinct_rows() {
        let z = ZipfSpec::new(0.8, vec![1000], 200_000, 9).unwrap();
        let src = Source::Zipf(z);
        let mut remap = Remap::for_source(&src);
        let mut n = 0u32;
        src.scan(|a, _| {
            n += u32::from(remap.row(a.table, a.id, n).1);
            true
        })
        .unwrap();
        let u = n as usize;
        assert!(u <= 1000 && u > 500, "{u}");
        let mut p = StreamBelady::new(50);
        let mut check = Check::default();
        let spool = spool_next_uses(&src).unwrap();
        assert_eq!(spool.metadata().unwrap().len(), 4 * 200_000);
        let r = pass(
            &src,
            1,
            &mut p,
            None,
            NextUse::Spool(std::io::BufReader::new(&spool)),
        )
        .unwrap();
        assert_eq!(r.tally.accesses, 200_000);
        assert_eq!(r.tally.rows as usize, u);
        assert_eq!(r.tally.seen.len(), u);
        assert_eq!(p.key.len(), u);
        assert!(p.heap_len() <= 4 * 50 + 64, "{}", p.heap_len());
        assert_eq!(p.len(), 50);
        let mut lru = Lru::new(50, 0);
        let r = pass(&src, 1, &mut lru, None, NextUse::None).unwrap();
        assert_eq!(r.tally.seen.len(), u);
        assert_eq!(lru.len(), 50);
        // The declared-next check keeps one i64 per row.
        let k = check.key(0, true, 0, 5);
        assert_eq!((k, check.declared.len()), (6, 1));
    }

    /// `trace-gen`'s streaming writer writes the bytes of the in-memory writer; a trace of two
    /// tables in a one-table format is left to the in-memory writer (which words the error).
    #[test]
    fn streamed_files_equal_the_in_memory_writer() {
        let d = tempfile::tempdir().unwrap();
        for (z, batch) in [
            (ZipfSpec::new(1.1, vec![400], 3000, 4).unwrap(), 1),
            (ZipfSpec::new(1.1, vec![400], 3000, 4).unwrap(), 16),
            (zipf(), 5),
        ] {
            let src = Source::Zipf(z.clone());
            let t = DenseTrace::from_stream(z.stream(), batch, false, "z").unwrap();
            for fmt in [
                TraceFormat::Text,
                TraceFormat::Csv,
                TraceFormat::OracleGeneral,
                TraceFormat::LcsCsv,
            ] {
                let path = d.path().join("out");
                let _ = std::fs::remove_file(&path);
                let w = write_trace(&src, batch, fmt, &path).unwrap();
                match writer::encode(&t, fmt) {
                    Ok(bytes) => {
                        let w = w.unwrap();
                        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{fmt:?}");
                        assert_eq!(
                            (w.accesses, w.rows, w.batches),
                            (t.len() as u64, t.n_rows() as u64, t.n_batches() as u64)
                        );
                    }
                    Err(_) => assert!(w.is_none() && !path.exists(), "{fmt:?}"),
                }
            }
        }
    }

    /// The 4-ary heap pops what std's binary heap pops, through pushes, pops and compactions
    /// (ties included: equal keys, distinct rows).
    #[test]
    fn heap4_pops_like_the_binary_heap() {
        let mut h = Heap4::default();
        let mut b = std::collections::BinaryHeap::new();
        let mut key = vec![0u64; 64];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = (x % 64) as u32;
            let k = if x % 7 == 0 {
                u64::MAX
            } else {
                (x >> 40) % 500
            };
            if x % 3 == 0 {
                assert_eq!(h.pop(), b.pop(), "pop {i}");
            } else {
                key[r as usize] = k;
                h.push((k, r));
                b.push((k, r));
            }
            if i % 997 == 0 {
                h.retain_live(&key);
                b.retain(|&(k, r)| key[r as usize] == k);
                assert_eq!(h.len(), b.len());
            }
        }
        while let Some(e) = b.pop() {
            assert_eq!(h.pop(), Some(e));
        }
        assert_eq!(h.pop(), None);
    }

    /// The batcher's range shortcut starts batches where the division does (sample groups with
    /// several batch sizes, explicit batch numbers, and groups near `u64::MAX`).
    #[test]
    fn batcher_starts_where_the_division_says() {
        let groups: Vec<u64> = (0..200u64)
            .map(|i| i / 3)
            .chain([u64::MAX - 2, u64::MAX - 1, u64::MAX, u64::MAX, 5, 5, 0])
            .collect();
        for (batch, has) in [
            (1, false),
            (2, false),
            (7, false),
            (64, true),
            (u64::MAX, false),
        ] {
            let mut bt = Batcher::new(batch, has);
            let mut cur = None;
            for &g in &groups {
                let b = if has { g } else { g / batch };
                assert_eq!(bt.starts(g), cur != Some(b), "batch {batch} group {g}");
                cur = Some(b);
            }
        }
    }

    fn grown_hits<P: Grow>(mut p: P, rows: &[u32]) -> Vec<bool> {
        let mut seen = 0;
        rows.iter()
            .map(|&r| {
                if r as usize >= seen {
                    seen = r as usize + 1;
                    p.grow(seen);
                }
                p.access(r)
            })
            .collect()
    }

    fn hits(mut p: impl Policy, rows: &[u32]) -> Vec<bool> {
        rows.iter().map(|&r| p.access(r)).collect()
    }

    /// Growing one row at a time, as the stream does, gives the hits of a cache sized for every
    /// row from the start.
    #[test]
    fn lru_fifo_lfu_grow_keeps_their_state() {
        let rows = [0u32, 1, 0, 2, 3, 1, 4, 0, 5, 2, 6, 0, 1, 3, 3, 6, 5];
        let n = 7;
        for cap in 1..=8 {
            assert_eq!(
                grown_hits(Lru::new(cap, 0), &rows),
                hits(Lru::new(cap, n), &rows),
                "lru {cap}"
            );
            assert_eq!(
                grown_hits(Fifo::new(cap, 0), &rows),
                hits(Fifo::new(cap, n), &rows),
                "fifo {cap}"
            );
            assert_eq!(
                grown_hits(Lfu::new(cap, 0), &rows),
                hits(Lfu::new(cap, n), &rows),
                "lfu {cap}"
            );
        }
    }
}

/// What [`write_trace`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Accesses.
    pub accesses: u64,
    /// Distinct rows.
    pub rows: u64,
    /// Batches.
    pub batches: u64,
}

/// Writes `src` as `format` to `path` in one streaming pass (oracleGeneral: two, its next uses
/// from the spool), with the bytes [`super::trace::writer::write`] would write for the loaded
/// trace. `None` (nothing written) for the formats that need the whole trace (Criteo, MovieLens,
/// Parquet) and for a trace of several tables in a one-table format: the caller uses the
/// in-memory writer, which also words that error.
///
/// # Errors
/// Reader and I/O errors; an empty trace.
pub fn write_trace(
    src: &Source,
    batch: u64,
    format: TraceFormat,
    path: &std::path::Path,
) -> Result<Option<Written>> {
    use crate::report::files::AtomicFile;
    if !matches!(
        format,
        TraceFormat::Text | TraceFormat::Csv | TraceFormat::OracleGeneral | TraceFormat::LcsCsv
    ) {
        return Ok(None);
    }
    let spool = if format == TraceFormat::OracleGeneral {
        Some(spool_next_uses(src)?)
    } else {
        None
    };
    let mut next = spool
        .as_ref()
        .map(|f| std::io::BufReader::with_capacity(1 << 20, f));
    let mut out = AtomicFile::create(path)?;
    let name = src.name();
    let mut err: Option<Error> = None;
    let mut several_tables = false;
    let mut remap = Remap::for_source(src);
    let mut batcher = Batcher::new(batch, src.has_batches());
    let (mut n, mut rows, mut b) = (0u64, 0u32, 0u64);
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut out);
        let io = |e: std::io::Error| Error::io(path, e);
        let header = match format {
            TraceFormat::Csv => Some(format!("{}\n", trace::csv::HEADER)),
            TraceFormat::LcsCsv => Some("time,obj_id,obj_size\n".to_string()),
            _ => None,
        };
        if let Some(h) = header {
            w.write_all(h.as_bytes()).map_err(io)?;
        }
        src.scan(|a, _| {
            if a.table != 0 && format != TraceFormat::Csv {
                several_tables = true;
                return false;
            }
            if batcher.starts(a.group) {
                b += 1;
            }
            let g = b - 1;
            let (_, new) = remap.row(a.table, a.id, rows);
            rows += u32::from(new);
            let r = match format {
                TraceFormat::Text => writeln!(w, "{}", a.id),
                TraceFormat::Csv => writeln!(w, "{g},{},{}", a.table, a.id),
                TraceFormat::LcsCsv => writeln!(w, "{g},{},1", a.id),
                _ => {
                    let mut x = [0u8; 4];
                    let nx = match next.as_mut().map(|f| f.read_exact(&mut x)) {
                        Some(Ok(())) => u32::from_le_bytes(x),
                        Some(Err(e)) => {
                            err = Some(Error::parse(&name, None, format!("spool read: {e}")));
                            return false;
                        }
                        None => u32::MAX,
                    };
                    let rec = oracle::Record {
                        clock_time: g as u32,
                        obj_id: a.id,
                        obj_size: 1,
                        next_access_vtime: if nx == u32::MAX { -1 } else { i64::from(nx) },
                    };
                    w.write_all(&rec.to_bytes())
                }
            };
            if let Err(e) = r {
                err = Some(io(e));
                return false;
            }
            n += 1;
            true
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        if several_tables {
            return Ok(None);
        }
        if n == 0 {
            return Err(Error::parse(&name, None, "empty trace: no accesses"));
        }
        w.flush().map_err(io)?;
    }
    out.commit()?;
    Ok(Some(Written {
        accesses: n,
        rows: u64::from(rows),
        batches: b,
    }))
}
