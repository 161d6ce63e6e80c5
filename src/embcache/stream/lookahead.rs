//! Lookahead ([`crate::embcache::policy::lookahead`]) on a trace read as it goes, holding only
//! its window: the accesses of the batches from the one being simulated to `W + 1` batches ahead
//! (the farthest batch start the rule looks at), with each access's next use read from the
//! same temporary spool Belady uses (4 bytes per access on disk, not in memory). State per
//! distinct row: 16 bytes (heap key, batch mark, next use of its latest access) plus the id
//! remap and the tally; the heap holds at most about 4 entries per resident row.
//!
//! The state machine is the in-memory
//! [`Lookahead`](crate::embcache::policy::lookahead::Lookahead)'s own
//! ([`Core`](crate::embcache::policy::lookahead::Core)), so the counts are equal: the window
//! answers the same questions as the loaded trace ([`Batches`]: a batch's start, the row at a
//! position), and it is filled far enough ahead before each batch is simulated.

use super::{spool_next_uses, Batcher, Pass, Remap, Source, Tally};
use crate::embcache::pipeline::Pipeline;
use crate::embcache::policy::lookahead::{Batches, Core};
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::io::Read;
use std::time::Instant;

/// The accesses of the batches `first..` (rows and next uses, positions from `base`) and the
/// starts of the batches seen so far; at the end of the trace its length closes the last batch.
#[derive(Debug, Default)]
struct Window {
    rows: VecDeque<u32>,
    next: VecDeque<u32>,
    base: u64,
    /// Start positions of batches `first..` (and, at the end, the trace's length).
    starts: VecDeque<u64>,
    first: usize,
    eof: bool,
}

impl Window {
    /// Start of batch `b` (the trace's length for `b` = the number of batches), `None` past
    /// the end (only asked once the window reaches that far).
    fn start(&self, b: usize) -> Option<u64> {
        self.starts.get(b - self.first).copied()
    }

    /// Batches whose start has been read (at the end: every batch, plus the closing length).
    fn known(&self) -> usize {
        self.first + self.starts.len()
    }

    /// Number of batches, once the trace has ended.
    fn n_batches(&self) -> Option<usize> {
        self.eof.then(|| self.known() - 1)
    }

    /// Positions `s..e` of batch `b` (it must be complete).
    fn range(&self, b: usize) -> (u64, u64) {
        (
            self.start(b).expect("batch in window"),
            self.start(b + 1).expect("complete batch"),
        )
    }

    fn row_at(&self, t: u64) -> u32 {
        self.rows[(t - self.base) as usize]
    }

    fn next_at(&self, t: u64) -> u32 {
        self.next[(t - self.base) as usize]
    }

    /// Drops the batches before `b`.
    fn drop_before(&mut self, b: usize) {
        while self.first < b && self.starts.len() > 1 {
            let (s, e) = (self.starts[0], self.starts[1]);
            for _ in s..e {
                self.rows.pop_front();
                self.next.pop_front();
            }
            self.base = e;
            self.starts.pop_front();
            self.first += 1;
        }
    }
}

impl Batches for Window {
    fn n_batches(&self) -> Option<usize> {
        Window::n_batches(self)
    }
    #[inline]
    fn start(&self, b: usize) -> u64 {
        Window::start(self, b).expect("batch in window")
    }
    #[inline]
    fn row_at(&self, t: u64) -> u32 {
        Window::row_at(self, t)
    }
}

/// The largest two-batch working set `max_b |U(b) ∪ U(b+1)|` of `src` (one pass; as
/// [`crate::embcache::policy::lookahead::Lookahead::min_feasible_rows`]).
///
/// # Errors
/// Reader errors.
pub fn min_feasible_rows(src: &Source, batch: u64) -> Result<usize> {
    let mut remap = Remap::for_source(src);
    let mut batcher = Batcher::new(batch, src.has_batches());
    let mut rows = 0u32;
    let (mut prev, mut cur): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
    let mut mark: Vec<u32> = Vec::new();
    let mut stamp = 0u32;
    let mut best = 0usize;
    let mut union = |a: &[u32], b: &[u32], mark: &mut Vec<u32>| {
        stamp = stamp.wrapping_add(1);
        let mut n = 0;
        for &r in a.iter().chain(b) {
            if mark[r as usize] != stamp {
                mark[r as usize] = stamp;
                n += 1;
            }
        }
        n
    };
    src.scan(|a, _| {
        if batcher.starts(a.group) && !cur.is_empty() {
            if !prev.is_empty() {
                best = best.max(union(&prev, &cur, &mut mark));
            }
            prev = std::mem::take(&mut cur);
        }
        let (r, new) = remap.row(a.table, a.id, rows);
        if new {
            rows += 1;
            mark.push(0);
        }
        cur.push(r);
        true
    })?;
    if !prev.is_empty() {
        best = best.max(union(&prev, &cur, &mut mark));
    }
    // The last batch alone (b = n − 1).
    best = best.max(union(&cur, &[], &mut mark));
    Ok(best)
}

/// Simulates lookahead with window `window` and `cap` rows (`usize::MAX`: unbounded, for the
/// peak occupancy) on `src` in one streaming pass (after the spool of next uses); the pass and
/// the peak occupancy with prefetch. The capacity is not checked here (see
/// [`min_feasible_rows`]).
///
/// # Errors
/// Reader and spool errors; an empty trace.
pub fn run(
    src: &Source,
    batch: u64,
    cap: usize,
    window: usize,
    pipe: Option<&Pipeline>,
) -> Result<(Pass, usize)> {
    run_counted(src, batch, cap, window, pipe).map(|(p, peak, _)| (p, peak))
}

/// [`run`], and the most accesses the window held at once.
fn run_counted(
    src: &Source,
    batch: u64,
    cap: usize,
    window: usize,
    pipe: Option<&Pipeline>,
) -> Result<(Pass, usize, usize)> {
    let start = Instant::now();
    let name = src.describe();
    let io = |e: std::io::Error| Error::parse(&name, None, format!("temporary spool file: {e}"));
    let spool = spool_next_uses(src)?;
    let n = spool.metadata().map_err(io)?.len() / 4;
    let mut spool = std::io::BufReader::with_capacity(1 << 20, &spool);
    let mut st = Core::new(cap, window, n);
    let mut w = Window::default();
    let mut remap = Remap::for_source(src);
    let mut batcher = Batcher::new(batch, src.has_batches());
    let mut tally = Tally {
        lookahead: true,
        ..Tally::default()
    };
    let (mut rows, mut t, mut done, mut held) = (0u32, 0u64, 0u64, 0usize);
    let mut err = None;
    if cap == 0 {
        return Err(Error::range("cache", 0, "≥ 1 row"));
    }
    // Simulates batch `b` once the window holds what its first access looks at: batches up to
    // b + 1 complete, and the start of batch b + W (end of batch b − 1's window).
    let step = |w: &mut Window, st: &mut Core, tally: &mut Tally, done: &mut u64| -> Result<()> {
        loop {
            let b = st.b;
            if w.start(b).is_none() || (w.eof && w.n_batches() == Some(b)) {
                return Ok(());
            }
            let need = (b + st.window).max(b + 2);
            if !w.eof && w.known() <= need {
                return Ok(());
            }
            let (s, e) = w.range(b);
            for pos in s..e {
                if pos == s {
                    tally.end_batch(st.evicted, pipe);
                    tally.start_batch(st.evicted)?;
                }
                let r = w.row_at(pos);
                if r >= tally.rows {
                    tally.rows = r + 1;
                    super::idmap::resize_huge(&mut tally.seen, tally.rows as usize, 0);
                }
                let hit = st.access(&*w, r, w.next_at(pos), pos == s);
                tally.count(r, hit);
                *done += 1;
            }
            // Batch b − 1 was last looked at by this batch's first access.
            w.drop_before(b);
        }
    };
    let warnings = src.scan(|a, _| {
        if batcher.starts(a.group) {
            w.starts.push_back(t);
        }
        let (r, new) = remap.row(a.table, a.id, rows);
        if new {
            rows += 1;
            st.grow(rows as usize);
        }
        let mut b = [0u8; 4];
        if let Err(e) = spool.read_exact(&mut b) {
            err = Some(io(e));
            return false;
        }
        w.rows.push_back(r);
        w.next.push_back(u32::from_le_bytes(b));
        held = held.max(w.rows.len());
        t += 1;
        if let Err(e) = step(&mut w, &mut st, &mut tally, &mut done) {
            err = Some(e);
            return false;
        }
        true
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    w.starts.push_back(t);
    w.eof = true;
    step(&mut w, &mut st, &mut tally, &mut done)?;
    tally.end_batch(st.evicted, pipe);
    if tally.accesses == 0 {
        return Err(Error::parse(&name, None, "empty trace: no accesses"));
    }
    debug_assert_eq!(done, t);
    Ok((
        Pass {
            tally,
            warnings,
            sim_s: start.elapsed().as_secs_f64(),
        },
        st.peak,
        held,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embcache::policy::lookahead::Lookahead;
    use crate::embcache::trace::{zipf::ZipfSpec, DenseTrace};

    /// The feasibility pass and the window: the two-batch working set equals the in-memory one,
    /// and the window never holds more than the batches from the one before the batch being
    /// simulated to `max(W, 2)` batches past it, plus the access just read (fixed-size batches
    /// of a generated trace: at most (max(W, 2) + 2) × batch + 1 accesses), however long the
    /// trace.
    #[test]
    fn the_window_is_bounded_and_the_working_set_matches() {
        let z = ZipfSpec::new(0.9, vec![2000], 30_000, 5).unwrap();
        let src = Source::Zipf(z.clone());
        for batch in [1u64, 3, 16] {
            let t = DenseTrace::from_stream(z.stream(), batch, false, "z").unwrap();
            assert_eq!(
                min_feasible_rows(&src, batch).unwrap(),
                Lookahead::min_feasible_rows(&t),
                "batch {batch}"
            );
            for window in [1usize, 2, 6] {
                let (p, peak, held) = run_counted(&src, batch, usize::MAX, window, None).unwrap();
                assert_eq!(p.tally.accesses, 30_000);
                assert_eq!(
                    peak,
                    Lookahead::min_cache_rows(&t, window),
                    "batch {batch} W {window}"
                );
                let bound = (window.max(2) + 2) * batch as usize + 1;
                assert!(
                    held <= bound,
                    "held {held} > {bound} (batch {batch}, W {window})"
                );
            }
        }
    }
}
