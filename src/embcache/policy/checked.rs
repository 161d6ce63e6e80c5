//! An invariant-checking wrapper (used in tests): after every access it asserts the [`Policy`]
//! contract of the module docs against an independent record of what the policy reports.

use super::Policy;

/// Wraps a policy and panics on the first broken invariant (tests only).
pub struct Checked<P: Policy> {
    inner: P,
    accesses: u64,
    /// Per row, the last access whose `resident()` listed it (duplicate check).
    stamp: Vec<u64>,
}

impl<P: Policy> Checked<P> {
    /// Wraps `inner`.
    pub fn new(inner: P) -> Self {
        Checked {
            inner,
            accesses: 0,
            stamp: Vec::new(),
        }
    }

    /// The wrapped policy.
    pub fn into_inner(self) -> P {
        self.inner
    }
}

impl<P: Policy> Policy for Checked<P> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn contains(&self, row: u32) -> bool {
        self.inner.contains(row)
    }
    fn access(&mut self, row: u32) -> bool {
        let was = self.inner.contains(row);
        let (len0, ev0) = (self.inner.len(), self.inner.evicted());
        let hit = self.inner.access(row);
        self.accesses += 1;
        let (len1, ev1) = (self.inner.len(), self.inner.evicted());
        let name = self.inner.name();
        let at = self.accesses;
        assert_eq!(
            hit, was,
            "{name}: access #{at} of row {row}: hit = {hit} but contains() said {was}"
        );
        assert!(
            len1 <= self.inner.capacity(),
            "{name}: access #{at}: occupancy {len1} > capacity {}",
            self.inner.capacity()
        );
        assert!(ev1 >= ev0, "{name}: eviction counter went down");
        let inserted = usize::from(!was && self.inner.contains(row));
        assert_eq!(
            len0 + inserted,
            len1 + (ev1 - ev0) as usize,
            "{name}: access #{at}: len {len0} → {len1} with {inserted} inserted and {} evicted",
            ev1 - ev0
        );
        if self.inner.always_inserts() && self.inner.capacity() > 0 {
            assert!(
                self.inner.contains(row),
                "{name}: access #{at}: row {row} not resident after its access"
            );
        }
        if hit {
            assert_eq!(
                len0,
                len1 + (ev1 - ev0) as usize,
                "{name}: a hit changed occupancy beyond evictions"
            );
        }
        let res = self.inner.resident();
        assert_eq!(
            res.len(),
            len1,
            "{name}: resident() lists {} rows, len() = {len1}",
            res.len()
        );
        assert!(
            res.iter().all(|&r| self.inner.contains(r)),
            "{name}: resident() lists a row contains() denies"
        );
        // Distinct rows: stamp each listed row with this access's number (O(capacity), no sort).
        for &r in &res {
            let i = r as usize;
            if i >= self.stamp.len() {
                self.stamp.resize(i + 1, 0);
            }
            assert_ne!(
                self.stamp[i], at,
                "{name}: access #{at}: resident() lists row {r} twice"
            );
            self.stamp[i] = at;
        }
        hit
    }
    fn evicted(&self) -> u64 {
        self.inner.evicted()
    }
    fn resident(&self) -> Vec<u32> {
        self.inner.resident()
    }
    fn always_inserts(&self) -> bool {
        self.inner.always_inserts()
    }
}
