//! Least recently used: an intrusive doubly linked list over dense rows (two `u32` per row), most
//! recent at the front; a miss on a full cache evicts the back.

use super::{Policy, NIL};

/// LRU over `n_rows` dense rows.
#[derive(Debug, Clone)]
pub struct Lru {
    cap: usize,
    len: usize,
    /// `[prev, next]` per row; index `n_rows` is the sentinel (its next = front, prev = back).
    links: Vec<[u32; 2]>,
    head: u32,
    evicted: u64,
}

impl Lru {
    /// An empty cache of `capacity` rows over rows `0..n_rows`.
    pub fn new(capacity: usize, n_rows: usize) -> Self {
        let head = n_rows as u32;
        let mut links = vec![[NIL, NIL]; n_rows + 1];
        links[n_rows] = [head, head];
        Lru {
            cap: capacity,
            len: 0,
            links,
            head,
            evicted: 0,
        }
    }

    #[inline]
    fn unlink(&mut self, r: u32) {
        let [p, n] = self.links[r as usize];
        self.links[p as usize][1] = n;
        self.links[n as usize][0] = p;
    }

    #[inline]
    fn push_front(&mut self, r: u32) {
        let first = self.links[self.head as usize][1];
        self.links[r as usize] = [self.head, first];
        self.links[first as usize][0] = r;
        self.links[self.head as usize][1] = r;
    }

    /// Makes room for rows `0..n_rows` (streaming: rows appear as the trace is read); the state
    /// of the rows already known is kept. Moves the sentinel to the new last index.
    pub fn grow(&mut self, n_rows: usize) {
        let old = self.head as usize;
        if n_rows <= old {
            return;
        }
        let [back, front] = self.links[old];
        crate::embcache::idmap::resize_huge(&mut self.links, n_rows + 1, [NIL, NIL]);
        self.links[old] = [NIL, NIL];
        let head = n_rows as u32;
        if front == old as u32 {
            self.links[n_rows] = [head, head];
        } else {
            self.links[n_rows] = [back, front];
            self.links[front as usize][0] = head;
            self.links[back as usize][1] = head;
        }
        self.head = head;
    }

    /// Starts loading row `r`'s links (a hint for a streaming caller that knows its next rows;
    /// rows not known yet are skipped).
    #[inline]
    pub fn prefetch(&self, r: u32) {
        if let Some(l) = self.links.get(r as usize) {
            crate::embcache::idmap::prefetch(l);
        }
    }

    /// Starts loading the links of row `r`'s list neighbours, which a hit on `r` rewrites (a
    /// hint, meant a few accesses after [`Lru::prefetch`] of `r`, so `r`'s own links are in
    /// cache; if the list changes in between, the hint is merely wasted).
    #[inline]
    pub fn prefetch_neighbours(&self, r: u32) {
        if let Some(&[p, n]) = self.links.get(r as usize) {
            if p != NIL {
                crate::embcache::idmap::prefetch(&self.links[p as usize]);
                crate::embcache::idmap::prefetch(&self.links[n as usize]);
            }
        }
    }

    /// Resident rows from most to least recently used.
    pub fn order(&self) -> Vec<u32> {
        let mut v = Vec::with_capacity(self.len);
        let mut r = self.links[self.head as usize][1];
        while r != self.head {
            v.push(r);
            r = self.links[r as usize][1];
        }
        v
    }
}

impl Policy for Lru {
    fn name(&self) -> &'static str {
        "lru"
    }
    fn capacity(&self) -> usize {
        self.cap
    }
    fn len(&self) -> usize {
        self.len
    }
    fn contains(&self, row: u32) -> bool {
        self.links[row as usize][0] != NIL
    }
    #[inline]
    fn access(&mut self, r: u32) -> bool {
        if self.links[r as usize][0] != NIL {
            if self.links[self.head as usize][1] != r {
                self.unlink(r);
                self.push_front(r);
            }
            return true;
        }
        if self.cap == 0 {
            return false;
        }
        if self.len == self.cap {
            let victim = self.links[self.head as usize][0];
            self.unlink(victim);
            // The next victim's predecessor: the next eviction unlinks the next victim.
            let next_victim = self.links[self.head as usize][0];
            let before = self.links[next_victim as usize][0];
            crate::embcache::idmap::prefetch(&self.links[before as usize]);
            self.links[victim as usize] = [NIL, NIL];
            self.evicted += 1;
            self.len -= 1;
        }
        self.push_front(r);
        self.len += 1;
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
        let mut c = Lru::new(3, 10);
        for (r, hit, order) in [
            (1, false, vec![1]),
            (2, false, vec![2, 1]),
            (3, false, vec![3, 2, 1]),
            (1, true, vec![1, 3, 2]),
            (4, false, vec![4, 1, 3]), // evicts 2, the least recent
            (3, true, vec![3, 4, 1]),
            (5, false, vec![5, 3, 4]), // evicts 1
            (1, false, vec![1, 5, 3]), // evicts 4
        ] {
            assert_eq!(c.access(r), hit, "access {r}");
            assert_eq!(c.order(), order, "after {r}");
        }
        assert_eq!(c.evicted(), 3);
    }
}
