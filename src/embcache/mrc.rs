//! LRU miss-ratio curves in one pass (Mattson et al. 1970, "Evaluation techniques for storage
//! hierarchies"): LRU is a stack algorithm, so an access hits a cache of `C` rows iff its stack
//! distance (distinct rows since the previous access to the same row, plus one) is ≤ `C`. Stack
//! distances come from a Fenwick tree over positions holding a 1 at each row's latest access
//! (Bennett & Kruskal 1975), O(log n) per access.

use super::trace::DenseTrace;

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

/// Computes the stack-distance histogram of `trace`.
pub fn stack_distances(trace: &DenseTrace) -> StackHistogram {
    let n = trace.len();
    let mut bit = vec![0u32; n + 1];
    let mut last = vec![u32::MAX; trace.n_rows()];
    let mut hist = vec![0u64; trace.n_rows() + 1];
    let mut cold = 0u64;
    let add = |bit: &mut [u32], mut i: usize, v: i32| {
        i += 1;
        while i < bit.len() {
            bit[i] = bit[i].wrapping_add_signed(v);
            i += i & i.wrapping_neg();
        }
    };
    let prefix = |bit: &[u32], mut i: usize| -> u64 {
        // Sum of positions < i.
        let mut s = 0u64;
        while i > 0 {
            s += u64::from(bit[i]);
            i &= i - 1;
        }
        s
    };
    let mut live = 0u64;
    let mut tick = crate::sweep::Ticker::default();
    for (t, &r) in trace.rows.iter().enumerate() {
        tick.add(1);
        let p = last[r as usize];
        if p == u32::MAX {
            cold += 1;
            live += 1;
        } else {
            // Distinct rows touched after p = live markers at positions > p.
            let after = live - prefix(&bit, p as usize + 1);
            hist[after as usize + 1] += 1;
            add(&mut bit, p as usize, -1);
        }
        add(&mut bit, t, 1);
        last[r as usize] = t as u32;
    }
    StackHistogram {
        hist,
        cold,
        accesses: n as u64,
    }
}

impl StackHistogram {
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
