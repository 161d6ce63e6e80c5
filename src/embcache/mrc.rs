//! LRU miss-ratio curves in one pass (Mattson et al. 1970, "Evaluation techniques for storage
//! hierarchies"): LRU is a stack algorithm, so an access hits a cache of `C` rows iff its stack
//! distance (distinct rows since the previous access to the same row, plus one) is ≤ `C`. Stack
//! distances come from a Fenwick tree over positions holding a 1 at each row's latest access
//! (Bennett & Kruskal 1975), O(log n) per access.
//!
//! [`stack_distances_stream`] reads the trace as it goes and renumbers the live markers (one
//! per distinct row) into a fresh tree whenever its slots run out, so memory is bounded by the
//! distinct rows, not the accesses; [`stack_distances`] feeds a loaded trace's rows to the same
//! tree.

use super::stream::{Remap, Source};
use super::trace::DenseTrace;
use crate::error::{Error, Result};

/// Stack-distance histogram of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct StackHistogram {
    /// `hist[d]` = accesses with stack distance `d` (index 0 unused).
    pub hist: Vec<u64>,
    /// First accesses (infinite distance).
    pub cold: u64,
    /// Accesses.
    pub accesses: u64,
}

/// Computes the stack-distance histogram of `trace`: its rows fed, in order, to the tree of
/// [`stack_distances_stream`], so both give the histogram by one code path.
pub fn stack_distances(trace: &DenseTrace) -> StackHistogram {
    let mut d = Distances::default();
    let mut tick = crate::sweep::Ticker::default();
    for &r in &trace.rows {
        tick.add(1);
        d.access(r);
    }
    d.finish().0
}

/// Adds `v` at position `i` (0-based) of the Fenwick tree `bit` (1-based storage).
#[inline]
fn bit_add(bit: &mut [u32], mut i: usize, v: i32) {
    i += 1;
    while i < bit.len() {
        bit[i] = bit[i].wrapping_add_signed(v);
        i += i & i.wrapping_neg();
    }
}

/// Sum of positions `< i` of the Fenwick tree `bit`.
#[inline]
fn bit_prefix(bit: &[u32], mut i: usize) -> u64 {
    let mut s = 0u64;
    while i > 0 {
        s += u64::from(bit[i]);
        i &= i - 1;
    }
    s
}

/// Smallest number of slots of the streaming tree.
const MIN_SLOTS: usize = 1 << 10;

/// Stack distances of dense rows fed one access at a time, in memory bounded by the distinct
/// rows `U`. The Fenwick tree has `S` slots (`2U + 1024` after the last renumbering); each
/// access takes the next slot, and when none is left the live markers (each row's latest
/// access) are renumbered, in order, into `0..live` of a fresh tree, which keeps every distance
/// (only the order of the markers matters). State: 8 bytes per slot (tree and slot owner), 12
/// per row (latest slot, histogram bin). Renumbering costs O(S) once per at least `U + 1024`
/// accesses.
#[derive(Debug, Clone)]
struct Distances {
    /// Latest slot of every row.
    last: Vec<u32>,
    /// Row owning every slot (`u32::MAX`: none, or a stale marker).
    owner: Vec<u32>,
    bit: Vec<u32>,
    hist: Vec<u64>,
    cold: u64,
    accesses: u64,
    live: u64,
    slot: usize,
    /// Most slots the tree had.
    peak: usize,
}

impl Default for Distances {
    fn default() -> Self {
        Distances {
            last: Vec::new(),
            owner: vec![u32::MAX; MIN_SLOTS],
            bit: vec![0u32; MIN_SLOTS + 1],
            hist: vec![0u64],
            cold: 0,
            accesses: 0,
            live: 0,
            slot: 0,
            peak: MIN_SLOTS,
        }
    }
}

impl Distances {
    /// Distinct rows so far.
    fn rows(&self) -> usize {
        self.last.len()
    }

    /// One access of dense row `r` (rows numbered by first appearance: a new row is at most
    /// one past the largest so far).
    #[inline]
    fn access(&mut self, r: u32) {
        while self.last.len() <= r as usize {
            self.last.push(u32::MAX);
            self.hist.push(0);
        }
        if self.slot == self.owner.len() {
            self.renumber();
        }
        let p = self.last[r as usize];
        if p == u32::MAX {
            self.cold += 1;
            self.live += 1;
        } else {
            // Distinct rows touched after p = live markers at slots > p.
            let after = self.live - bit_prefix(&self.bit, p as usize + 1);
            self.hist[after as usize + 1] += 1;
            bit_add(&mut self.bit, p as usize, -1);
            self.owner[p as usize] = u32::MAX;
        }
        bit_add(&mut self.bit, self.slot, 1);
        self.owner[self.slot] = r;
        self.last[r as usize] = self.slot as u32;
        self.slot += 1;
        self.accesses += 1;
    }

    /// Out of slots: renumbers the live markers, in slot order, into a fresh tree.
    fn renumber(&mut self) {
        let slots = (2 * self.last.len()).max(MIN_SLOTS) + MIN_SLOTS;
        let mut fresh = vec![u32::MAX; slots];
        let mut k = 0usize;
        for (s, &o) in self.owner.iter().enumerate() {
            if o != u32::MAX && self.last[o as usize] == s as u32 {
                self.last[o as usize] = k as u32;
                fresh[k] = o;
                k += 1;
            }
        }
        self.owner = fresh;
        self.peak = self.peak.max(slots);
        // A tree with a 1 at each of 0..k, built in O(slots).
        let bit = &mut self.bit;
        *bit = vec![0u32; slots + 1];
        for b in &mut bit[1..=k] {
            *b = 1;
        }
        for i in 1..=slots {
            let j = i + (i & i.wrapping_neg());
            if j <= slots {
                bit[j] = bit[j].wrapping_add(bit[i]);
            }
        }
        self.slot = k;
    }

    /// The histogram, and the most slots the tree had.
    fn finish(self) -> (StackHistogram, usize) {
        (
            StackHistogram {
                hist: self.hist,
                cold: self.cold,
                accesses: self.accesses,
            },
            self.peak,
        )
    }
}

/// [`stack_distances`] of a trace read as it goes ([`Source::scan`]; ids remapped to dense rows
/// by first appearance, as [`DenseTrace`] numbers them): the same histogram, with memory
/// bounded by the distinct rows `U`: 8 bytes per slot of its Fenwick tree, `2U + 1024` slots at
/// most, and 12 per row, plus the id remap. Each access takes the next slot; when none is left,
/// the live markers (each row's latest access) are renumbered, in order, into a fresh tree, which
/// keeps every distance (only the order of the markers matters).
///
/// # Errors
/// Reader errors; an empty trace; more than 2^32 − 2 distinct ids.
pub fn stack_distances_stream(src: &Source) -> Result<StackHistogram> {
    stream_with_slots(src).map(|(h, _)| h)
}

/// [`stack_distances_stream`] and the most slots its tree had.
fn stream_with_slots(src: &Source) -> Result<(StackHistogram, usize)> {
    let mut remap = Remap::for_source(src);
    let mut d = Distances::default();
    let mut err = None;
    let mut tick = crate::sweep::Ticker::default();
    src.scan(|a, _| {
        tick.add(1);
        let n = d.rows();
        if n >= u32::MAX as usize - 1 {
            err = Some(Error::parse(
                src.describe(),
                None,
                "more than 2^32 − 2 distinct ids",
            ));
            return false;
        }
        let (r, _) = remap.row(a.table, a.id, n as u32);
        d.access(r);
        true
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    if d.accesses == 0 {
        return Err(Error::parse(
            src.describe(),
            None,
            "empty trace: no accesses",
        ));
    }
    Ok(d.finish())
}

impl StackHistogram {
    /// Distinct rows of the trace (every row has a histogram bin).
    pub fn unique_rows(&self) -> usize {
        self.hist.len() - 1
    }

    /// LRU misses with a cache of `c` rows.
    pub fn misses(&self, c: usize) -> u64 {
        let hits: u64 = self
            .hist
            .iter()
            .take(c.saturating_add(1).min(self.hist.len()))
            .sum();
        self.accesses - hits
    }

    /// `(size, miss ratio)` for every size.
    pub fn curve(&self, sizes: &[usize]) -> Vec<(usize, f64)> {
        let mut cum = Vec::with_capacity(self.hist.len());
        let mut s = 0u64;
        for &h in &self.hist {
            s += h;
            cum.push(s);
        }
        sizes
            .iter()
            .map(|&c| {
                let hits = cum[c.min(cum.len() - 1)];
                (c, (self.accesses - hits) as f64 / self.accesses as f64)
            })
            .collect()
    }
}

/// `k` cache sizes spaced geometrically from 1 to `n_rows`.
pub fn log_sizes(n_rows: usize, k: usize) -> Vec<usize> {
    let k = k.max(2);
    let mut v: Vec<usize> = (0..k)
        .map(|i| ((n_rows as f64).powf(i as f64 / (k - 1) as f64)).round() as usize)
        .map(|x| x.max(1))
        .collect();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streaming pass gives the in-memory histogram exactly, on generated traces long enough
    /// to renumber the tree many times (few distinct rows, many accesses) and on ones with more
    /// distinct rows than the first tree has slots; on files too.
    #[test]
    fn streaming_histogram_equals_the_in_memory_one() {
        use super::super::trace::{writer, zipf::ZipfSpec, ReadOptions, TraceFormat};
        for (s, tables, n, seed) in [
            (1.1, vec![50], 20_000, 1),
            (0.6, vec![3000, 400], 30_000, 2),
            (0.9, vec![200_000], 50_000, 3),
        ] {
            let z = ZipfSpec::new(s, tables, n, seed).unwrap();
            let t = DenseTrace::from_stream(z.stream(), 1, false, "z").unwrap();
            let h = stack_distances(&t);
            assert_eq!(stack_distances_stream(&Source::Zipf(z.clone())).unwrap(), h);
            assert_eq!(h.unique_rows(), t.n_rows());
            if t.keys.iter().any(|k| k.0 != 0) {
                continue; // oracleGeneral holds one table
            }
            let d = tempfile::tempdir().unwrap();
            let path = d.path().join("t.oracleGeneral");
            writer::write(&t, TraceFormat::OracleGeneral, &path).unwrap();
            let src = Source::File {
                path,
                format: TraceFormat::OracleGeneral,
                opts: ReadOptions::default(),
            };
            assert_eq!(stack_distances_stream(&src).unwrap(), h);
        }
    }

    /// Memory is bounded by the distinct rows, not the accesses: 400 000 accesses over at most
    /// 5 000 rows never need a tree of more than 2 × rows + 2048 slots.
    #[test]
    fn streaming_tree_is_bounded_by_the_distinct_rows() {
        use super::super::trace::zipf::ZipfSpec;
        let z = ZipfSpec::new(0.8, vec![5000], 400_000, 4).unwrap();
        let (h, slots) = stream_with_slots(&Source::Zipf(z)).unwrap();
        assert_eq!(h.accesses, 400_000);
        assert!(
            slots <= 2 * h.unique_rows() + 2 * MIN_SLOTS,
            "{slots} slots for {} rows",
            h.unique_rows()
        );
    }

    #[test]
    fn streaming_rejects_an_empty_trace() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("e.txt");
        std::fs::write(&path, "").unwrap();
        let src = Source::File {
            path,
            format: super::super::trace::TraceFormat::Text,
            opts: Default::default(),
        };
        let e = stack_distances_stream(&src).unwrap_err().to_string();
        assert!(e.contains("empty trace"), "{e}");
    }

    /// The tree's histogram equals a naive count (distance = distinct rows strictly between an
    /// access and its row's previous access, plus one) on a trace that renumbers the tree a few
    /// times (6 000 accesses over at most 300 rows, 1 024 slots at first).
    #[test]
    fn distances_equal_a_naive_count() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let ids: Vec<u32> = (0..6000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x % 300) * (x >> 54) / 1024) as u32
            })
            .collect();
        let t = DenseTrace::from_rows(&ids, 1);
        let mut want = vec![0u64; t.n_rows() + 1];
        let mut cold = 0;
        for (i, &r) in t.rows.iter().enumerate() {
            match t.rows[..i].iter().rposition(|&q| q == r) {
                None => cold += 1,
                Some(p) => {
                    let mut between: Vec<u32> = t.rows[p + 1..i].to_vec();
                    between.sort_unstable();
                    between.dedup();
                    want[between.len() + 1] += 1;
                }
            }
        }
        let h = stack_distances(&t);
        assert_eq!((h.hist, h.cold, h.accesses), (want, cold, 6000));
    }

    #[test]
    fn hand_worked_distances() {
        // a b c a b b d a: distances ∞ ∞ ∞ 3 3 1 ∞ 3 (the last a sees b and d since its previous use).
        let t = DenseTrace::from_rows(&[1, 2, 3, 1, 2, 2, 4, 1], 1);
        let h = stack_distances(&t);
        assert_eq!(h.cold, 4);
        assert_eq!(h.hist[1], 1);
        assert_eq!(h.hist[3], 3);
        assert_eq!(h.hist[4], 0);
        assert_eq!(h.misses(2), 7);
        assert_eq!(h.misses(3), 4);
        assert_eq!(h.misses(4), 4);
    }
}
