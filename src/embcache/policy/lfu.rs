//! Least frequently used in O(1) per access (Shah, Mitra & Matani 2010, "An O(1) algorithm for
//! implementing the LFU cache eviction scheme"): a list of frequency nodes in increasing count,
//! each holding an intrusive list of its rows.
//!
//! Counts are of accesses while resident (a row re-enters at count 1 after an eviction, as in
//! libCacheSim's LFU). **Tie-breaking:** among the rows with the smallest count, the one that
//! reached that count first is evicted (FIFO within a count, which is LRU among equal counts).

use super::{Policy, NIL};

#[derive(Debug, Clone, Copy)]
struct FreqNode {
    freq: u64,
    head: u32,
    tail: u32,
    prev: u32,
    next: u32,
}

/// LFU over `n_rows` dense rows.
#[derive(Debug, Clone)]
pub struct Lfu {
    cap: usize,
    len: usize,
    nodes: Vec<FreqNode>,
    free: Vec<u32>,
    first: u32,
    /// Frequency node of each row (NIL when not resident).
    node_of: Vec<u32>,
    /// `[prev, next]` within the row's frequency node.
    links: Vec<[u32; 2]>,
    evicted: u64,
}

impl Lfu {
    /// An empty cache of `capacity` rows over rows `0..n_rows`.
    pub fn new(capacity: usize, n_rows: usize) -> Self {
        Lfu {
            cap: capacity,
            len: 0,
            nodes: Vec::new(),
            free: Vec::new(),
            first: NIL,
            node_of: vec![NIL; n_rows],
            links: vec![[NIL, NIL]; n_rows],
            evicted: 0,
        }
    }

    /// Starts loading row `r`'s node and links (a hint; rows not known yet are skipped).
    #[inline]
    pub fn prefetch(&self, r: u32) {
        if let (Some(n), Some(l)) = (self.node_of.get(r as usize), self.links.get(r as usize)) {
            crate::embcache::idmap::prefetch(n);
            crate::embcache::idmap::prefetch(l);
        }
    }

    fn new_node(&mut self, freq: u64, prev: u32, next: u32) -> u32 {
        let n = FreqNode {
            freq,
            head: NIL,
            tail: NIL,
            prev,
            next,
        };
        let i = if let Some(i) = self.free.pop() {
            self.nodes[i as usize] = n;
            i
        } else {
            self.nodes.push(n);
            (self.nodes.len() - 1) as u32
        };
        if prev == NIL {
            self.first = i;
        } else {
            self.nodes[prev as usize].next = i;
        }
        if next != NIL {
            self.nodes[next as usize].prev = i;
        }
        i
    }

    fn drop_node_if_empty(&mut self, i: u32) {
        let n = self.nodes[i as usize];
        if n.head != NIL {
            return;
        }
        if n.prev == NIL {
            self.first = n.next;
        } else {
            self.nodes[n.prev as usize].next = n.next;
        }
        if n.next != NIL {
            self.nodes[n.next as usize].prev = n.prev;
        }
        self.free.push(i);
    }

    fn push_row(&mut self, node: u32, r: u32) {
        let tail = self.nodes[node as usize].tail;
        self.links[r as usize] = [tail, NIL];
        if tail == NIL {
            self.nodes[node as usize].head = r;
        } else {
            self.links[tail as usize][1] = r;
        }
        self.nodes[node as usize].tail = r;
        self.node_of[r as usize] = node;
    }

    fn remove_row(&mut self, r: u32) {
        let node = self.node_of[r as usize];
        let [p, n] = self.links[r as usize];
        if p == NIL {
            self.nodes[node as usize].head = n;
        } else {
            self.links[p as usize][1] = n;
        }
        if n == NIL {
            self.nodes[node as usize].tail = p;
        } else {
            self.links[n as usize][0] = p;
        }
        self.node_of[r as usize] = NIL;
    }

    /// Makes room for rows `0..n_rows` (streaming: rows appear as the trace is read); the state
    /// of the rows already known is kept.
    pub fn grow(&mut self, n_rows: usize) {
        if n_rows > self.node_of.len() {
            crate::embcache::idmap::resize_huge(&mut self.node_of, n_rows, NIL);
            crate::embcache::idmap::resize_huge(&mut self.links, n_rows, [NIL, NIL]);
        }
    }

    /// Access count of a resident row.
    pub fn count(&self, r: u32) -> Option<u64> {
        let n = self.node_of[r as usize];
        (n != NIL).then(|| self.nodes[n as usize].freq)
    }

    /// Resident rows in eviction order (next victim first).
    pub fn order(&self) -> Vec<u32> {
        let mut v = Vec::with_capacity(self.len);
        let mut n = self.first;
        while n != NIL {
            let mut r = self.nodes[n as usize].head;
            while r != NIL {
                v.push(r);
                r = self.links[r as usize][1];
            }
            n = self.nodes[n as usize].next;
        }
        v
    }
}

impl Policy for Lfu {
    fn name(&self) -> &'static str {
        "lfu"
    }
    fn capacity(&self) -> usize {
        self.cap
    }
    fn len(&self) -> usize {
        self.len
    }
    fn contains(&self, row: u32) -> bool {
        self.node_of[row as usize] != NIL
    }
    fn access(&mut self, r: u32) -> bool {
        let node = self.node_of[r as usize];
        if node != NIL {
            let f = self.nodes[node as usize].freq;
            let next = self.nodes[node as usize].next;
            let target = if next != NIL && self.nodes[next as usize].freq == f + 1 {
                next
            } else {
                self.new_node(f + 1, node, next)
            };
            self.remove_row(r);
            self.push_row(target, r);
            self.drop_node_if_empty(node);
            return true;
        }
        if self.cap == 0 {
            return false;
        }
        if self.len == self.cap {
            let first = self.first;
            let victim = self.nodes[first as usize].head;
            self.remove_row(victim);
            self.drop_node_if_empty(first);
            self.evicted += 1;
            self.len -= 1;
        }
        let first = self.first;
        let target = if first != NIL && self.nodes[first as usize].freq == 1 {
            first
        } else {
            self.new_node(1, NIL, first)
        };
        self.push_row(target, r);
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
        let mut c = Lfu::new(3, 10);
        for (r, hit, order) in [
            (1, false, vec![1]),
            (1, true, vec![1]),
            (2, false, vec![2, 1]),
            (3, false, vec![2, 3, 1]),
            (3, true, vec![2, 1, 3]),  // 1 reached count 2 before 3 did
            (4, false, vec![4, 1, 3]), // evicts 2, the only count-1 row
            (5, false, vec![5, 1, 3]), // evicts 4 (count 1)
            (5, true, vec![1, 3, 5]),
            (6, false, vec![6, 3, 5]), // all count 2: evicts 1, first to reach it
        ] {
            assert_eq!(c.access(r), hit, "access {r}");
            assert_eq!(c.order(), order, "after {r}");
        }
        assert_eq!(c.count(5), Some(2));
        assert_eq!(c.evicted(), 3);
    }
}
