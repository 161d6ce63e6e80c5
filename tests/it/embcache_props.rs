//! embcache properties: the policy contract under random traces (invariant-checking wrapper),
//! Belady optimality, LRU inclusion, one-pass MRC = per-size LRU, LRU vs the `lru` crate, and
//! closed forms vs simulation.

use perfcast::embcache::policy::checked::Checked;
use perfcast::embcache::policy::{self, lru::Lru, Policy, PolicyKind};
use perfcast::embcache::trace::{zipf::ZipfSpec, DenseTrace};
use perfcast::embcache::{analytic, mrc, simulate};
use proptest::prelude::*;

fn kinds(window: usize) -> Vec<PolicyKind> {
    vec![
        PolicyKind::Lru,
        PolicyKind::Fifo,
        PolicyKind::Lfu,
        PolicyKind::StaticTopK {
            profile_fraction: 1.0,
        },
        PolicyKind::StaticTopK {
            profile_fraction: 0.3,
        },
        PolicyKind::Belady,
        PolicyKind::Lookahead { window },
    ]
}

/// Misses of `kind` on `t` through the invariant-checking wrapper (None: infeasible lookahead).
fn checked_misses(kind: PolicyKind, cap: usize, t: &DenseTrace) -> Option<u64> {
    let p = policy::build(kind, cap, t).ok()?;
    let mut c = Checked::new(p);
    let hits = t.rows.iter().filter(|&&r| c.access(r)).count() as u64;
    assert!(c.len() <= cap);
    Some(t.len() as u64 - hits)
}

fn trace_strategy() -> impl Strategy<Value = (Vec<u32>, usize)> {
    // Skewed small ids so that hits and evictions both happen.
    (
        prop::collection::vec((0u32..40).prop_map(|x| (x * x) / 40), 1..400),
        1usize..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn contract_belady_optimal_and_counts((rows, batch) in trace_strategy(), cap in 1usize..30, window in 1usize..5) {
        let t = DenseTrace::from_rows(&rows, batch);
        let belady = checked_misses(PolicyKind::Belady, cap, &t).unwrap();
        for k in kinds(window) {
            let Some(m) = checked_misses(k, cap, &t) else {
                prop_assert!(matches!(k, PolicyKind::Lookahead { .. }), "only lookahead may be infeasible");
                continue;
            };
            // MIN is optimal among policies that keep every missed row; static top-k bypasses.
            if !matches!(k, PolicyKind::StaticTopK { .. }) {
                prop_assert!(belady <= m, "belady {} > {} {}", belady, k.name(), m);
            }
            // The simulator counts the same misses, and hits + misses = accesses.
            let (met, bc) = simulate(&t, k, cap).unwrap();
            prop_assert_eq!(met.misses, m);
            prop_assert_eq!(met.hits + met.misses, met.accesses);
            prop_assert_eq!(met.accesses, rows.len() as u64);
            prop_assert!(bc.misses.iter().zip(&bc.unique).all(|(m, u)| m <= u));
        }
    }

    #[test]
    fn larger_lru_never_misses_more_and_mrc_matches((rows, _) in trace_strategy(), cap in 1usize..30) {
        let t = DenseTrace::from_rows(&rows, 1);
        let small = simulate(&t, PolicyKind::Lru, cap).unwrap().0.misses;
        let big = simulate(&t, PolicyKind::Lru, cap + 1).unwrap().0.misses;
        prop_assert!(big <= small);
        let h = mrc::stack_distances(&t);
        prop_assert_eq!(h.misses(cap), small);
        prop_assert_eq!(h.misses(cap + 1), big);
    }

    #[test]
    fn lru_matches_the_lru_crate((rows, _) in trace_strategy(), cap in 1usize..30) {
        let t = DenseTrace::from_rows(&rows, 1);
        let mut ours = Lru::new(cap, t.n_rows());
        let mut oracle = lru::LruCache::new(std::num::NonZeroUsize::new(cap).unwrap());
        for &r in &t.rows {
            let hit = oracle.get(&r).is_some();
            if !hit {
                oracle.put(r, ());
            }
            prop_assert_eq!(ours.access(r), hit);
        }
        let mut a: Vec<u32> = ours.order();
        let mut b: Vec<u32> = oracle.iter().map(|(k, _)| *k).collect();
        a.sort_unstable();
        b.sort_unstable();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn bypassing_can_beat_always_insert_min() {
    // Capacity 1, trace a x a: MIN (always inserting) misses 3 times; static top-1 = {a} twice.
    let t = DenseTrace::from_rows(&[1, 2, 1], 1);
    assert_eq!(simulate(&t, PolicyKind::Belady, 1).unwrap().0.misses, 3);
    assert_eq!(
        simulate(
            &t,
            PolicyKind::StaticTopK {
                profile_fraction: 1.0
            },
            1
        )
        .unwrap()
        .0
        .misses,
        2
    );
}

#[test]
fn mrc_equals_per_size_lru_on_a_zipf_trace() {
    let z = ZipfSpec::new(0.9, vec![3000], 60_000, 5).unwrap();
    let t = DenseTrace::from_stream(z.stream(), 1, false, "zipf").unwrap();
    let h = mrc::stack_distances(&t);
    let sizes = mrc::log_sizes(t.n_rows(), 12);
    for (c, ratio) in h.curve(&sizes) {
        let m = simulate(&t, PolicyKind::Lru, c).unwrap().0.misses;
        assert_eq!(h.misses(c), m, "size {c}");
        assert!((ratio - m as f64 / t.len() as f64).abs() < 1e-15);
    }
}

/// Closed forms vs simulation on generated traces: goal ≤ 0.5 points. Tolerance 0.5 points
/// (0.005 in hit rate): sampling noise is ≈ 0.05 points at 600 k accesses, compulsory misses
/// ≤ C/M ≈ 0.1 points.
#[test]
fn closed_forms_within_half_a_point_of_simulation() {
    for (s, rows, tables, pct) in [
        (1.05, 20_000u64, 1usize, 1.0),
        (0.8, 20_000, 1, 5.0),
        (1.2, 5_000, 3, 2.0),
    ] {
        let z = ZipfSpec::new(s, vec![rows; tables], 600_000, 11).unwrap();
        let t = DenseTrace::from_stream(z.stream(), 1, false, "zipf").unwrap();
        let total = rows * tables as u64;
        let c = (pct / 100.0 * total as f64) as u64;
        let sim_lru = simulate(&t, PolicyKind::Lru, c as usize)
            .unwrap()
            .0
            .hit_rate;
        let (che, _) = analytic::che_lru_hit_rate(&z.tables, s, c).unwrap();
        assert!(
            (che - sim_lru).abs() <= 0.005,
            "LRU s={s} C={c}: Che {che:.4} vs sim {sim_lru:.4}"
        );
        // Static top-k profiled on the first half, measured on the whole trace.
        let sim_top = simulate(
            &t,
            PolicyKind::StaticTopK {
                profile_fraction: 0.5,
            },
            c as usize,
        )
        .unwrap()
        .0
        .hit_rate;
        let top = analytic::topk_hit_rate(&z.tables, s, c).unwrap();
        assert!(
            (top - sim_top).abs() <= 0.005,
            "top-k s={s} C={c}: closed form {top:.4} vs sim {sim_top:.4}"
        );
    }
}
