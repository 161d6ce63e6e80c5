//! Static top-k: the `C` rows with the most accesses in a profiling prefix of the trace (the whole
//! trace with fraction 1) are the hot set; only they are admitted, loaded on first touch (so the
//! `C` compulsory misses count like every other policy's), and never evicted. Other rows always
//! miss. Ties in the profile go to the row seen first. Under Zipf with a perfect profile the hit
//! rate tends to `Σ_{i≤C} p_i` ([`crate::embcache::analytic::topk_hit_rate`]).

use super::super::trace::DenseTrace;
use super::Policy;

/// Static top-k over a trace.
#[derive(Debug, Clone)]
pub struct StaticTopK {
    cap: usize,
    hot: Vec<bool>,
    /// The hot rows (at most the capacity), for [`Policy::resident`].
    hot_list: Vec<u32>,
    resident: Vec<bool>,
    len: usize,
    hot_rows: usize,
}

impl StaticTopK {
    /// Picks the hot rows from the first `profile_fraction` of `trace` (clamped to (0, 1]).
    pub fn new(capacity: usize, trace: &DenseTrace, profile_fraction: f64) -> Self {
        let prefix = ((trace.len() as f64 * profile_fraction.clamp(0.0, 1.0)).ceil() as usize)
            .clamp(1, trace.len().max(1));
        Self::from_counts(capacity, &trace.counts(prefix), trace.n_rows())
    }

    /// The hot set of a profile: `counts[r]` accesses of dense row `r` (numbered by first
    /// appearance) in the profiling prefix; rows with a count, ranked by it, ties to the row seen
    /// first, the first `capacity` kept. `n_rows` rows are tracked ([`StaticTopK::grow`] adds
    /// more: rows first seen after the prefix are never hot). Shared by the in-memory trace and
    /// the streaming pass (`stream::profile_top_k`).
    pub fn from_counts<C: Copy + Ord + Default>(
        capacity: usize,
        counts: &[C],
        n_rows: usize,
    ) -> Self {
        let zero = C::default();
        let mut order: Vec<u32> = (0..counts.len() as u32)
            .filter(|&r| counts[r as usize] > zero)
            .collect();
        order.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
        let hot_rows = capacity.min(order.len());
        order.truncate(hot_rows);
        let mut hot = vec![false; n_rows.max(counts.len())];
        for &r in &order {
            hot[r as usize] = true;
        }
        StaticTopK {
            cap: capacity,
            resident: vec![false; hot.len()],
            hot,
            hot_list: order,
            len: 0,
            hot_rows,
        }
    }

    /// Starts loading row `r`'s residency flag (a hint for the streaming pass: no effect on any
    /// result).
    #[inline]
    pub(crate) fn prefetch(&self, r: u32) {
        if let Some(x) = self.resident.get(r as usize) {
            super::super::idmap::prefetch(x);
        }
    }

    /// Tracks rows up to `n` (a streaming pass meets rows as it goes); new rows are cold.
    pub fn grow(&mut self, n: usize) {
        if n > self.hot.len() {
            self.hot.resize(n, false);
            self.resident.resize(n, false);
        }
    }

    /// Number of hot rows (≤ capacity).
    pub fn hot_rows(&self) -> usize {
        self.hot_rows
    }

    /// Whether `row` is in the hot set.
    pub fn is_hot(&self, row: u32) -> bool {
        self.hot[row as usize]
    }
}

impl Policy for StaticTopK {
    fn name(&self) -> &'static str {
        "static-topk"
    }
    fn capacity(&self) -> usize {
        self.cap
    }
    fn len(&self) -> usize {
        self.len
    }
    fn contains(&self, row: u32) -> bool {
        self.resident.get(row as usize).copied().unwrap_or(false)
    }
    #[inline]
    fn access(&mut self, r: u32) -> bool {
        if self.resident[r as usize] {
            return true;
        }
        if self.hot[r as usize] {
            self.resident[r as usize] = true;
            self.len += 1;
        }
        false
    }
    fn evicted(&self) -> u64 {
        0
    }
    fn resident(&self) -> Vec<u32> {
        // Only hot rows are ever admitted: O(capacity), not O(rows).
        self.hot_list
            .iter()
            .copied()
            .filter(|&r| self.resident[r as usize])
            .collect()
    }
    fn always_inserts(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_set_from_prefix() {
        // Prefix (first half): 7 ×3, 8 ×2, 9 ×1 → with C = 2 the hot set is {7, 8}.
        let t = DenseTrace::from_rows(&[7, 8, 7, 9, 8, 7, 9, 9, 9, 9, 9, 9], 4);
        let mut c = StaticTopK::new(2, &t, 0.5);
        assert_eq!(c.hot_rows(), 2);
        let hits: Vec<bool> = t.rows.iter().map(|&r| c.access(r)).collect();
        assert_eq!(
            hits,
            vec![false, false, true, false, true, true, false, false, false, false, false, false]
        );
        // Whole-trace profile: 9 (7 accesses) and 7 (3) are hot; 8 (2) is not.
        let c = StaticTopK::new(2, &t, 1.0);
        assert!(c.is_hot(2) && c.is_hot(0) && !c.is_hot(1));
    }
}
