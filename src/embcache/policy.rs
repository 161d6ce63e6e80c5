//! Cache policies behind one trait, one file each (the foyer layout): LRU, FIFO, LFU, static
//! top-k, Belady/MIN and Bagpipe-style lookahead.
//!
//! # The [`Policy`] contract
//! - Rows are dense indices `< n_rows` (see [`super::trace::DenseTrace`]); the cache starts empty.
//! - [`Policy::access`] is called once per trace access, in trace order, and returns whether the
//!   row was resident *before* the call (a hit). Offline policies (Belady, lookahead, static top-k)
//!   are built from the same trace and rely on that order.
//! - After every call `len() ≤ capacity()`, `len()` equals the number of rows `contains` reports
//!   (and [`Policy::resident`] lists), and `evicted()` counts every row that left the cache.
//! - A policy whose [`Policy::always_inserts`] is true leaves the accessed row resident after
//!   every call (demand paging: LRU, FIFO, LFU, Belady as libCacheSim implements it, lookahead);
//!   static top-k only admits its hot rows.
//!
//! [`checked::Checked`] wraps any policy and asserts this contract after every call (tests).

pub mod belady;
pub mod checked;
pub mod fifo;
pub mod lfu;
pub mod lookahead;
pub mod lru;
pub mod topk;

use super::trace::DenseTrace;
use crate::error::{Error, Result};

/// Marker for "no row" in the intrusive lists.
pub const NIL: u32 = u32::MAX;

/// One cache replacement policy over dense row ids. See the module docs for the contract.
pub trait Policy {
    /// Policy name as the CLI spells it.
    fn name(&self) -> &'static str;
    /// Capacity, rows.
    fn capacity(&self) -> usize;
    /// Resident rows now.
    fn len(&self) -> usize;
    /// Whether no row is resident.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether `row` is resident.
    fn contains(&self, row: u32) -> bool;
    /// Serves one access; returns true on a hit.
    fn access(&mut self, row: u32) -> bool;
    /// Rows evicted so far.
    fn evicted(&self) -> u64;
    /// Every resident row (any order; for invariant checks, O(capacity)).
    fn resident(&self) -> Vec<u32>;
    /// Whether a miss always leaves the accessed row resident.
    fn always_inserts(&self) -> bool {
        true
    }
}

/// Which policy to run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PolicyKind {
    /// Least recently used.
    Lru,
    /// First in, first out.
    Fifo,
    /// Least frequently used (ties: the row that reached its count first).
    Lfu,
    /// Static top-k: the `C` rows most accessed in the first `profile_fraction` of the trace.
    StaticTopK {
        /// Fraction of the trace (from its start) used to pick the hot rows, in (0, 1].
        profile_fraction: f64,
    },
    /// Belady/MIN: evict the row whose next use is farthest (libCacheSim `Belady`).
    Belady,
    /// Bagpipe lookahead over `window` batches.
    Lookahead {
        /// Lookahead window W, batches (≥ 1).
        window: usize,
    },
}

impl PolicyKind {
    /// Names accepted by `--policy`.
    pub const NAMES: &'static [&'static str] =
        &["lru", "fifo", "lfu", "static-topk", "belady", "lookahead"];

    /// Parses a name; `window` and `profile_fraction` fill the lookahead and static top-k knobs.
    ///
    /// # Errors
    /// [`Error::UnknownName`] (with a suggestion) for other names; a window of 0; a fraction
    /// outside (0, 1].
    pub fn parse(name: &str, window: usize, profile_fraction: f64) -> Result<Self> {
        let k = match name.to_ascii_lowercase().as_str() {
            "lru" => PolicyKind::Lru,
            "fifo" => PolicyKind::Fifo,
            "lfu" => PolicyKind::Lfu,
            "static-topk" | "topk" | "static" => {
                if !(profile_fraction > 0.0 && profile_fraction <= 1.0) {
                    return Err(Error::range(
                        "profile_fraction",
                        profile_fraction,
                        "in (0, 1] (the trace prefix that picks the hot rows)",
                    ));
                }
                PolicyKind::StaticTopK { profile_fraction }
            }
            "belady" | "min" | "opt" => PolicyKind::Belady,
            "lookahead" | "bagpipe" => {
                if window == 0 || window > 1 << 20 {
                    return Err(Error::range(
                        "window",
                        window,
                        "an integer in [1, 1048576] batches",
                    ));
                }
                PolicyKind::Lookahead { window }
            }
            _ => return Err(Error::unknown("policy", name, Self::NAMES.iter().copied())),
        };
        Ok(k)
    }

    /// Canonical name.
    pub fn name(&self) -> &'static str {
        match self {
            PolicyKind::Lru => "lru",
            PolicyKind::Fifo => "fifo",
            PolicyKind::Lfu => "lfu",
            PolicyKind::StaticTopK { .. } => "static-topk",
            PolicyKind::Belady => "belady",
            PolicyKind::Lookahead { .. } => "lookahead",
        }
    }
}

/// Builds a boxed policy of `capacity` rows for `trace` (tests and tools; the simulator uses
/// monomorphized policies).
///
/// # Errors
/// Lookahead capacities below the two-batch working set.
pub fn build<'a>(
    kind: PolicyKind,
    capacity: usize,
    trace: &'a DenseTrace,
) -> Result<Box<dyn Policy + 'a>> {
    let n = trace.n_rows();
    Ok(match kind {
        PolicyKind::Lru => Box::new(lru::Lru::new(capacity, n)),
        PolicyKind::Fifo => Box::new(fifo::Fifo::new(capacity, n)),
        PolicyKind::Lfu => Box::new(lfu::Lfu::new(capacity, n)),
        PolicyKind::StaticTopK { profile_fraction } => {
            Box::new(topk::StaticTopK::new(capacity, trace, profile_fraction))
        }
        PolicyKind::Belady => Box::new(belady::Belady::new(capacity, trace)),
        PolicyKind::Lookahead { window } => {
            Box::new(lookahead::Lookahead::new(capacity, trace, window)?)
        }
    })
}

impl<P: Policy + ?Sized> Policy for Box<P> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn capacity(&self) -> usize {
        (**self).capacity()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
    fn contains(&self, row: u32) -> bool {
        (**self).contains(row)
    }
    fn access(&mut self, row: u32) -> bool {
        (**self).access(row)
    }
    fn evicted(&self) -> u64 {
        (**self).evicted()
    }
    fn resident(&self) -> Vec<u32> {
        (**self).resident()
    }
    fn always_inserts(&self) -> bool {
        (**self).always_inserts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `resident()` (O(capacity) for belady, lookahead and static top-k, from their heaps and
    /// hot lists) lists exactly the rows `contains()` accepts, each once, after every access of
    /// seeded skewed traces with batches of 1 to 4 and several capacities.
    #[test]
    fn resident_lists_exactly_the_contained_rows() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for batch in 1..=4 {
            let rows: Vec<u32> = (0..600)
                .map(|_| {
                    x = x
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let v = ((x >> 33) % 50) as u32;
                    v * v / 50
                })
                .collect();
            let t = DenseTrace::from_rows(&rows, batch);
            let kinds = [
                PolicyKind::Lru,
                PolicyKind::Fifo,
                PolicyKind::Lfu,
                PolicyKind::StaticTopK {
                    profile_fraction: 0.5,
                },
                PolicyKind::Belady,
                PolicyKind::Lookahead { window: 2 },
            ];
            for cap in [1, 3, 8, 20, t.n_rows() + 1] {
                for k in kinds {
                    let Ok(mut p) = build(k, cap, &t) else {
                        assert!(matches!(k, PolicyKind::Lookahead { .. }));
                        continue;
                    };
                    for (i, &r) in t.rows.iter().enumerate() {
                        p.access(r);
                        let mut res = p.resident();
                        res.sort_unstable();
                        let all: Vec<u32> =
                            (0..t.n_rows() as u32).filter(|&q| p.contains(q)).collect();
                        assert_eq!(res, all, "{} cap {cap} batch {batch} access {i}", k.name());
                    }
                }
            }
        }
    }
}
