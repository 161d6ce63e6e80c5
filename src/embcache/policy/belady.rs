//! Belady's MIN (Belady 1966) as libCacheSim's `Belady` implements it: on a miss the row is
//! always inserted; when full, the resident row whose next use is farthest in the future (never
//! used again counts as infinitely far) is evicted. Optimal in misses among all policies with
//! the same capacity that keep every missed row (demand paging, and prefetching policies such as
//! lookahead); a policy that may bypass the cache (static top-k) can miss less: with one row and
//! the trace `a x a`, MIN misses 3 times, a cache pinned to `a` twice.
//!
//! A max-heap keyed by next-use position with lazy deletion: an entry `(next, row)` is stale once
//! the row was evicted or accessed again. Rows never used again get distinct keys above every
//! position, so every live key is unique. The heap is compacted when stale entries dominate.

use super::super::trace::DenseTrace;
use super::Policy;
use std::collections::BinaryHeap;

/// Belady/MIN over a trace.
#[derive(Debug, Clone)]
pub struct Belady {
    cap: usize,
    len: usize,
    next: Vec<u32>,
    t: usize,
    /// Key of each row's current heap entry; 0 = not resident.
    key: Vec<u64>,
    heap: BinaryHeap<u64>,
    horizon: u64,
    evicted: u64,
}

impl Belady {
    /// An empty cache of `capacity` rows that will be driven through `trace`.
    pub fn new(capacity: usize, trace: &DenseTrace) -> Self {
        Belady {
            cap: capacity,
            len: 0,
            next: trace.next_use(),
            t: 0,
            key: vec![0; trace.n_rows()],
            heap: BinaryHeap::with_capacity(capacity.min(trace.n_rows()) * 2 + 16),
            horizon: trace.len() as u64 + 1,
            evicted: 0,
        }
    }

    /// `(key << 32) | row` where key = next position + 1, or `horizon + row` when never again.
    #[inline]
    fn entry(&self, next: u32, r: u32) -> u64 {
        let k = if next == u32::MAX {
            self.horizon + u64::from(r)
        } else {
            u64::from(next) + 1
        };
        (k << 32) | u64::from(r)
    }

    fn compact(&mut self) {
        let key = &self.key;
        let v: Vec<u64> = std::mem::take(&mut self.heap)
            .into_vec()
            .into_iter()
            .filter(|&e| key[(e & 0xffff_ffff) as usize] == e)
            .collect();
        self.heap = BinaryHeap::from(v);
    }
}

impl Policy for Belady {
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
        self.key[row as usize] != 0
    }
    #[inline]
    fn access(&mut self, r: u32) -> bool {
        let nx = self.next[self.t];
        self.t += 1;
        let e = self.entry(nx, r);
        let hit = self.key[r as usize] != 0;
        if hit {
            self.key[r as usize] = e;
            self.heap.push(e);
            if self.heap.len() > 4 * self.len + 64 {
                self.compact();
            }
            return true;
        }
        if self.cap == 0 {
            return false;
        }
        if self.len == self.cap {
            while let Some(top) = self.heap.pop() {
                let v = (top & 0xffff_ffff) as usize;
                if self.key[v] == top {
                    self.key[v] = 0;
                    self.len -= 1;
                    self.evicted += 1;
                    break;
                }
            }
        }
        self.key[r as usize] = e;
        self.heap.push(e);
        self.len += 1;
        false
    }
    fn evicted(&self) -> u64 {
        self.evicted
    }
    fn resident(&self) -> Vec<u32> {
        // Every resident row has exactly one live heap entry (its key); the heap holds at most
        // about 4 × len + 64 entries, so this is O(capacity), not O(rows).
        self.heap
            .iter()
            .filter(|&&e| self.key[(e & 0xffff_ffff) as usize] == e)
            .map(|&e| (e & 0xffff_ffff) as u32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_farthest_next_use_is_evicted() {
        // The trace checked against libCacheSim 0.3.5 by hand: hits at positions 3, 5, 6, 8, 9, 12.
        let ids = [1, 2, 3, 1, 4, 1, 2, 5, 1, 2, 3, 4, 5];
        let t = DenseTrace::from_rows(&ids, 1);
        let mut c = Belady::new(3, &t);
        let hits: Vec<usize> = t
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, &r)| c.access(r).then_some(i))
            .collect();
        assert_eq!(hits, vec![3, 5, 6, 8, 9, 12]);
        // At position 4 (row 4 missing; 1 next at 5, 2 at 6, 3 at 10) row 3 must have gone.
        let mut c = Belady::new(3, &t);
        for &r in &t.rows[..5] {
            c.access(r);
        }
        assert!(!c.contains(2) && c.contains(0) && c.contains(1) && c.contains(3));
    }
}
