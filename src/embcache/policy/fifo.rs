//! First in, first out: a ring buffer of the resident rows in insertion order; hits do not
//! reorder; a miss on a full cache evicts the oldest insertion.

use super::Policy;

/// FIFO over `n_rows` dense rows.
#[derive(Debug, Clone)]
pub struct Fifo {
    cap: usize,
    ring: Vec<u32>,
    head: usize,
    len: usize,
    resident: Vec<bool>,
    evicted: u64,
}

impl Fifo {
    /// An empty cache of `capacity` rows over rows `0..n_rows`.
    pub fn new(capacity: usize, n_rows: usize) -> Self {
        Fifo {
            cap: capacity,
            ring: vec![0; capacity.min(n_rows).max(1)],
            head: 0,
            len: 0,
            resident: vec![false; n_rows],
            evicted: 0,
        }
    }

    /// Starts loading row `r`'s resident flag (a hint; rows not known yet are skipped).
    #[inline]
    pub fn prefetch(&self, r: u32) {
        if let Some(x) = self.resident.get(r as usize) {
            crate::embcache::idmap::prefetch(x);
        }
    }

    /// Makes room for rows `0..n_rows` (streaming: rows appear as the trace is read); the state
    /// of the rows already known is kept. The ring grows only while it is smaller than the
    /// capacity, which means every known row is resident and nothing was evicted yet (so its
    /// contents start at index 0).
    pub fn grow(&mut self, n_rows: usize) {
        if n_rows <= self.resident.len() {
            return;
        }
        crate::embcache::idmap::resize_huge(&mut self.resident, n_rows, false);
        let want = self.cap.min(n_rows).max(1);
        if want > self.ring.len() {
            debug_assert!(self.head == 0 || self.len < self.ring.len());
            self.ring.resize(want, 0);
        }
    }

    /// Resident rows from oldest to newest insertion.
    pub fn order(&self) -> Vec<u32> {
        let n = self.ring.len();
        (0..self.len)
            .map(|i| self.ring[(self.head + i) % n])
            .collect()
    }
}

impl Policy for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }
    fn capacity(&self) -> usize {
        self.cap
    }
    fn len(&self) -> usize {
        self.len
    }
    fn contains(&self, row: u32) -> bool {
        self.resident[row as usize]
    }
    #[inline]
    fn access(&mut self, r: u32) -> bool {
        if self.resident[r as usize] {
            return true;
        }
        if self.cap == 0 {
            return false;
        }
        let n = self.ring.len();
        if self.len == n {
            // Full (the ring holds min(capacity, n_rows) rows; with capacity ≥ n_rows this
            // branch is never taken).
            let victim = self.ring[self.head];
            self.resident[victim as usize] = false;
            self.evicted += 1;
            self.ring[self.head] = r;
            self.head = if self.head + 1 == n { 0 } else { self.head + 1 };
        } else {
            let tail = self.head + self.len;
            self.ring[if tail >= n { tail - n } else { tail }] = r;
            self.len += 1;
        }
        self.resident[r as usize] = true;
        false
    }
    fn evicted(&self) -> u64 {
        self.evicted
    }
    fn resident(&self) -> Vec<u32> {
        self.order()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_eviction_order() {
        let mut c = Fifo::new(3, 10);
        for (r, hit, order) in [
            (1, false, vec![1]),
            (2, false, vec![1, 2]),
            (3, false, vec![1, 2, 3]),
            (1, true, vec![1, 2, 3]),  // a hit does not reorder
            (4, false, vec![2, 3, 4]), // evicts 1 although it was just used
            (1, false, vec![3, 4, 1]), // evicts 2
            (3, true, vec![3, 4, 1]),
            (5, false, vec![4, 1, 5]), // evicts 3, the oldest insertion
        ] {
            assert_eq!(c.access(r), hit, "access {r}");
            assert_eq!(c.order(), order, "after {r}");
        }
        assert_eq!(c.evicted(), 3);
    }
}
