//! Bagpipe-style lookahead caching (Agarwal et al., "Bagpipe: Accelerating Deep Recommendation
//! Model Training", SOSP 2023): an oracle looks `W` batches ahead.
//!
//! - A row stays cached after a batch only while its next use is within the next `W` batches;
//!   otherwise it is evicted (and written back, since training updated it) after that batch.
//! - While batch `b` trains, the rows of batch `b+1` that are not cached are prefetched, off the
//!   critical path. So the cache must hold, at the start of `b`, the kept rows plus `U(b) ∪ U(b+1)`
//!   (`U` = a batch's unique rows); when that exceeds the capacity, kept rows outside
//!   `U(b) ∪ U(b+1)` are evicted farthest-next-use first (Belady's rule).
//! - Counting: a row of batch `b` that was not cached before `b` is a *prefetch row* (one miss at
//!   its first access in the batch, a fetch that the pipeline overlaps with compute); every other
//!   access is a hit. Write-backs after batch `b` are counted at the start of batch `b+1` (they
//!   overlap with its compute), with any capacity evictions made then.
//!
//! The capacity must be at least the two-batch working set `max_b |U(b) ∪ U(b+1)|`
//! ([`Lookahead::min_feasible_rows`]); the smallest cache that never drops a row with a use inside
//! the window is [`Lookahead::min_cache_rows`] (the peak occupancy with unbounded capacity).

use super::super::trace::DenseTrace;
use super::Policy;
use crate::error::{Error, Result};
use std::collections::BinaryHeap;

/// Key of a row inserted during the current batch (below every heap entry, which is ≥ 2³²).
const RESIDENT: u64 = 1;

/// What the lookahead rule reads of a trace: where batches start and which row is at a
/// position. The in-memory [`Lookahead`] answers from the whole [`DenseTrace`]; the streaming
/// simulator (`stream::lookahead`) from a window of the batches around the one it simulates.
pub(crate) trait Batches {
    /// Number of batches, when known (a stream knows once it has ended).
    fn n_batches(&self) -> Option<usize>;
    /// Start position of batch `b` (`b` = the number of batches: the trace's length). Only
    /// asked for batches from the one under way to `max(W, 2)` ahead.
    fn start(&self, b: usize) -> u64;
    /// The row at position `t`.
    fn row_at(&self, t: u64) -> u32;
}

impl Batches for DenseTrace {
    fn n_batches(&self) -> Option<usize> {
        Some(DenseTrace::n_batches(self))
    }
    #[inline]
    fn start(&self, b: usize) -> u64 {
        self.batch_starts[b] as u64
    }
    #[inline]
    fn row_at(&self, t: u64) -> u32 {
        self.rows[t as usize]
    }
}

/// The lookahead rule's state, whatever the trace is read from (see [`Batches`]): the one state
/// machine of the in-memory [`Lookahead`] and the streaming simulator. Per-row arrays grow as
/// rows appear ([`Core::grow`]).
#[derive(Debug, Clone)]
pub(crate) struct Core {
    cap: usize,
    /// Window, batches.
    pub(crate) window: usize,
    len: usize,
    /// Next use of every row's latest access (`u32::MAX` = none).
    cur_next: Vec<u32>,
    /// 0 = not resident, [`RESIDENT`] = inserted in the batch under way, else its heap entry.
    key: Vec<u64>,
    heap: BinaryHeap<u64>,
    mark: Vec<u32>,
    stamp: u32,
    /// Next batch to start.
    pub(crate) b: usize,
    /// Rows evicted (written back) so far.
    pub(crate) evicted: u64,
    /// Peak occupancy (resident plus reserved prefetch rows).
    pub(crate) peak: usize,
    /// Key base of rows never used again: the trace's length + 1 (above every next use).
    horizon: u64,
}

impl Core {
    /// An empty cache of `cap` rows (`usize::MAX`: unbounded) with a window of `window` batches
    /// over a trace of `len` accesses; no rows yet.
    pub(crate) fn new(cap: usize, window: usize, len: u64) -> Self {
        Core {
            cap,
            window,
            len: 0,
            cur_next: Vec::new(),
            key: Vec::new(),
            heap: BinaryHeap::new(),
            mark: Vec::new(),
            stamp: 0,
            b: 0,
            evicted: 0,
            peak: 0,
            horizon: len + 1,
        }
    }

    /// Room for rows `0..n`.
    pub(crate) fn grow(&mut self, n: usize) {
        if n > self.key.len() {
            self.key.resize(n, 0);
            self.mark.resize(n, 0);
            self.cur_next.resize(n, u32::MAX);
        }
    }

    #[inline]
    fn entry(&self, next: u32, r: u32) -> u64 {
        let k = if next == u32::MAX {
            self.horizon + u64::from(r)
        } else {
            u64::from(next) + 1
        };
        (k << 32) | u64::from(r)
    }

    fn evict(&mut self, r: u32) {
        self.key[r as usize] = 0;
        self.len -= 1;
        self.evicted += 1;
    }

    /// Start of batch `b`: count `U(b)` and `U(b+1)` rows that are not cached, and make room for
    /// them by evicting kept rows outside both batches, farthest next use first.
    fn start_batch(&mut self, w: &impl Batches, b: usize) {
        self.stamp = self.stamp.wrapping_add(1);
        let stamp = self.stamp;
        let mut missing = 0usize;
        let last = (b + 2).min(w.n_batches().unwrap_or(usize::MAX));
        for bb in b..last {
            for t in w.start(bb)..w.start(bb + 1) {
                let r = w.row_at(t);
                if self.mark[r as usize] != stamp {
                    self.mark[r as usize] = stamp;
                    if self.key[r as usize] == 0 {
                        missing += 1;
                    }
                }
            }
        }
        let limit = w.start(last) + 1;
        while self.len + missing > self.cap {
            let Some(top) = self.heap.pop() else { break };
            let v = (top & 0xffff_ffff) as u32;
            if self.key[v as usize] != top {
                continue;
            }
            if (top >> 32) < limit {
                // Every resident row is needed by b or b+1: cannot happen when the capacity is at
                // least min_feasible_rows (checked in `new`).
                self.heap.push(top);
                break;
            }
            self.evict(v);
        }
        self.peak = self.peak.max(self.len + missing);
    }

    /// End of batch `b`: write back the rows of `U(b)` whose next use is beyond `b + W`.
    fn end_batch(&mut self, w: &impl Batches, b: usize) {
        let (s, e) = (w.start(b), w.start(b + 1));
        // Next use beyond batch b + W ⟺ position ≥ the start of batch b + W + 1.
        let far = b + self.window + 1;
        let horizon = if w.n_batches().is_some_and(|n| far > n) {
            u32::MAX
        } else {
            w.start(far) as u32
        };
        self.stamp = self.stamp.wrapping_add(1);
        let stamp = self.stamp;
        for t in s..e {
            let r = w.row_at(t);
            if self.mark[r as usize] == stamp || self.key[r as usize] == 0 {
                continue;
            }
            self.mark[r as usize] = stamp;
            let nx = self.cur_next[r as usize];
            if nx == u32::MAX || nx >= horizon {
                self.evict(r);
            } else if self.cap != usize::MAX {
                // Kept: (re)enter the eviction heap with its next use, final until then.
                let e = self.entry(nx, r);
                self.key[r as usize] = e;
                self.heap.push(e);
            }
        }
        if self.heap.len() > 4 * self.len + 64 {
            let key = &self.key;
            let v: Vec<u64> = std::mem::take(&mut self.heap)
                .into_vec()
                .into_iter()
                .filter(|&x| key[(x & 0xffff_ffff) as usize] == x)
                .collect();
            self.heap = BinaryHeap::from(v);
        }
    }

    /// One access of row `r` whose next use is at position `next` (`u32::MAX`: none); `starts`
    /// when it is the first of its batch (batch `b`, the next to start).
    #[inline]
    pub(crate) fn access(&mut self, w: &impl Batches, r: u32, next: u32, starts: bool) -> bool {
        if starts {
            // Batch `b − 1`'s write-backs happen here, before `b` starts (so one call never
            // inserts and evicts the same row).
            if self.b > 0 {
                self.end_batch(w, self.b - 1);
            }
            self.start_batch(w, self.b);
            self.b += 1;
        }
        self.cur_next[r as usize] = next;
        let hit = self.key[r as usize] != 0;
        if !hit {
            // Resident; its heap key is set when the batch ends (see `end_batch`).
            self.key[r as usize] = RESIDENT;
            self.len += 1;
        }
        hit
    }
}

/// Lookahead cache over a trace.
#[derive(Debug, Clone)]
pub struct Lookahead<'a> {
    trace: &'a DenseTrace,
    next: Vec<u32>,
    t: usize,
    core: Core,
}

/// The checks of [`Lookahead::new`] (shared with the streaming simulator): a window of at least
/// one batch, and a capacity of at least `need()`, the two-batch working set.
///
/// # Errors
/// [`Error::OutOfRange`] naming `window` or `cache`.
pub fn check(capacity: usize, window: usize, need: impl FnOnce() -> usize) -> Result<()> {
    if window == 0 {
        return Err(Error::range("window", 0, "an integer ≥ 1 (batches)"));
    }
    let need = need();
    if capacity < need {
        return Err(Error::range(
            "cache",
            capacity,
            format!("≥ {need} rows for lookahead: the largest two-batch working set |U(b) ∪ U(b+1)| must fit while batch b+1 is prefetched"),
        ));
    }
    Ok(())
}

impl<'a> Lookahead<'a> {
    /// An empty cache of `capacity` rows with a window of `window` batches over `trace`.
    ///
    /// # Errors
    /// `window` of 0; `capacity` below the two-batch working set.
    pub fn new(capacity: usize, trace: &'a DenseTrace, window: usize) -> Result<Self> {
        check(capacity, window, || Self::min_feasible_rows(trace))?;
        Ok(Self::unchecked(capacity, trace, window))
    }

    fn unchecked(capacity: usize, trace: &'a DenseTrace, window: usize) -> Self {
        let mut core = Core::new(capacity, window, trace.len() as u64);
        core.grow(trace.n_rows());
        Lookahead {
            trace,
            next: trace.next_use(),
            t: 0,
            core,
        }
    }

    /// `max_b |U(b) ∪ U(b+1)|`: the smallest capacity the prefetch pipeline can run with.
    pub fn min_feasible_rows(trace: &DenseTrace) -> usize {
        let mut mark = vec![u32::MAX; trace.n_rows()];
        let mut best = 0;
        for b in 0..trace.n_batches() {
            let mut n = 0;
            let end = (b + 2).min(trace.n_batches());
            for bb in b..end {
                for &r in trace.batch(bb) {
                    if mark[r as usize] != b as u32 {
                        mark[r as usize] = b as u32;
                        n += 1;
                    }
                }
            }
            best = best.max(n);
        }
        best
    }

    /// The smallest cache with which a window of `window` batches never drops a row it would keep:
    /// the peak occupancy (resident + prefetched rows) with unbounded capacity.
    pub fn min_cache_rows(trace: &DenseTrace, window: usize) -> usize {
        let mut p = Lookahead::unchecked(usize::MAX, trace, window.max(1));
        for &r in &trace.rows {
            p.access(r);
        }
        p.core.peak
    }

    /// Peak occupancy so far (resident plus reserved prefetch rows).
    pub fn peak(&self) -> usize {
        self.core.peak
    }

    /// The lookahead window, batches.
    pub fn window(&self) -> usize {
        self.core.window
    }
}

impl Policy for Lookahead<'_> {
    fn name(&self) -> &'static str {
        "lookahead"
    }
    fn capacity(&self) -> usize {
        self.core.cap
    }
    fn len(&self) -> usize {
        self.core.len
    }
    fn contains(&self, row: u32) -> bool {
        self.core.key[row as usize] != 0
    }
    fn access(&mut self, r: u32) -> bool {
        let starts = self.t == self.trace.batch_starts[self.core.b];
        let hit = self.core.access(self.trace, r, self.next[self.t], starts);
        self.t += 1;
        hit
    }
    fn evicted(&self) -> u64 {
        self.core.evicted
    }
    fn resident(&self) -> Vec<u32> {
        let c = &self.core;
        if c.cap == usize::MAX {
            // Unbounded (min_cache_rows): kept rows stay out of the heap.
            return (0..c.key.len() as u32)
                .filter(|&r| c.key[r as usize] != 0)
                .collect();
        }
        // O(capacity + batch): a kept row has a live heap entry (its key); a row missed in the
        // batch under way is marked RESIDENT until the batch ends.
        let mut rows: Vec<u32> = c
            .heap
            .iter()
            .filter(|&&e| e != RESIDENT && c.key[(e & 0xffff_ffff) as usize] == e)
            .map(|&e| (e & 0xffff_ffff) as u32)
            .collect();
        if c.b > 0 {
            let mut cur: Vec<u32> = self.trace.rows[self.trace.batch_starts[c.b - 1]..self.t]
                .iter()
                .copied()
                .filter(|&r| c.key[r as usize] == RESIDENT)
                .collect();
            cur.sort_unstable();
            cur.dedup();
            rows.extend(cur);
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_window_keeps_until_last_use() {
        // Batches of 2: [a b] [a c] [d e] [a b]; rows a=0 b=1 c=2 d=3 e=4.
        let t = DenseTrace::from_rows(&[10, 11, 10, 12, 13, 14, 10, 11], 2);
        // W = 1: a (next use batch 1) kept after batch 0; b (next use batch 3) written back.
        let mut c = Lookahead::new(8, &t, 1).unwrap();
        let hits: Vec<bool> = t.rows.iter().map(|&r| c.access(r)).collect();
        assert_eq!(
            hits,
            vec![false, false, true, false, false, false, false, false]
        );
        // W = 2: a's gap from batch 1 to 3 is 2 batches → kept; b's gap is 3 → still refetched.
        let mut c = Lookahead::new(8, &t, 2).unwrap();
        let hits: Vec<bool> = t.rows.iter().map(|&r| c.access(r)).collect();
        assert_eq!(
            hits,
            vec![false, false, true, false, false, false, true, false]
        );
        assert_eq!(Lookahead::min_feasible_rows(&t), 4);
        // Peak with W = 2 at batch 2: kept {a}, U(2) ∪ U(3) = {d, e, a, b} → 4.
        assert_eq!(Lookahead::min_cache_rows(&t, 2), 4);
        let e = Lookahead::new(3, &t, 1).unwrap_err().to_string();
        assert!(e.contains("≥ 4 rows"), "{e}");
    }
}
