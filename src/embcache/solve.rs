//! The inverse what-if: the smallest cache (rows, and bytes at the row size) whose hit rate per
//! access reaches a target, per policy.
//!
//! - **LRU, simulated**: exact. LRU is a stack algorithm (Mattson et al. 1970), so its hits at
//!   every size come from one pass of stack distances ([`super::mrc`]); the answer is the
//!   smallest `C` with `Σ_{d≤C} hist[d] / accesses ≥ target`, and the row printed is a forward
//!   simulation at that size.
//! - **Every other policy, and the closed forms**: bisection on forward evaluations between a size
//!   that misses the target (0 rows, or lookahead's smallest runnable cache − 1) and the distinct
//!   rows of the trace (every row cached: only first touches miss). It stops when the bracket is
//!   at most `max(1, ⌊tolerance · upper⌋)` rows wide, so the size found reaches the target and a
//!   size `tolerance` (relative) smaller does not; with tolerance 0 that is one row. For stack
//!   algorithms (Belady/MIN, static top-k, LRU's closed form) the hit rate never falls as the
//!   cache grows, so that size is the smallest to the tolerance; FIFO, LFU and lookahead are not
//!   stack algorithms (FIFO shows Belady's anomaly), so a smaller size might also reach the target
//!   there, and the row says so.

use super::mrc;
use super::policy::PolicyKind;
pub use super::spec::Solve;
use super::spec::{
    analytic_row, sim_row, stream_row, Basis, Failed, Method, Params, Row, Sizes, SourceSpec,
};
use super::stream;
use super::trace::DenseTrace;
use crate::error::{Error, Result};

/// One policy's answer: the forward row at the smallest size found, and how it was found.
#[derive(Debug, Clone)]
pub struct Solved {
    /// The forward evaluation at the size found (its `cache_rows`, `cache_bytes`, hit rate…).
    pub row: Row,
    /// The target hit rate.
    pub target_hit_rate: f64,
    /// How the size was found (exact, or bisection and what it assumes).
    pub method: String,
    /// The largest size known to miss the target, rows (0: none smaller was tried).
    pub lower_rows: u64,
    /// Relative tolerance of the bracket (0 for exact LRU).
    pub tolerance: f64,
    /// Forward evaluations run to find it (not counting the one-pass curve of exact LRU).
    pub evaluations: u32,
}

impl Solved {
    /// The row as `perfcast embcache --solve-hit-rate` prints it: the forward row's fields, then
    /// `target_hit_rate`, `solve_method`, `solve_lower_rows`, `solve_tolerance`,
    /// `solve_evaluations`.
    pub fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut r = self.row.record();
        r.insert("target_hit_rate".into(), self.target_hit_rate.into());
        r.insert("solve_method".into(), self.method.clone().into());
        r.insert("solve_lower_rows".into(), self.lower_rows.into());
        r.insert("solve_tolerance".into(), self.tolerance.into());
        r.insert("solve_evaluations".into(), self.evaluations.into());
        r
    }
}

/// The smallest LRU cache, rows, whose hit rate per access on `trace` reaches `target`, from the
/// one-pass stack-distance histogram; `None` when even every distinct row cached misses it.
pub fn smallest_lru_rows(hist: &mrc::StackHistogram, target: f64) -> Option<usize> {
    let mut hits = 0u64;
    for (c, &h) in hist.hist.iter().enumerate().skip(1) {
        hits += h;
        if hits as f64 / hist.accesses as f64 >= target {
            return Some(c);
        }
    }
    None
}

/// Bisection between `lo` (misses the target, or cannot run) and `hi` (reaches it): returns
/// `(lo, hi, evaluations)` with `hi − lo ≤ max(1, ⌊tolerance · hi⌋)`. `hit(c)` is the hit rate at
/// `c` rows, `None` when the policy cannot run there (counted as missing).
///
/// # Errors
/// The first error of `hit`.
pub fn bisect(
    mut lo: usize,
    mut hi: usize,
    target: f64,
    tolerance: f64,
    mut hit: impl FnMut(usize) -> Result<Option<f64>>,
) -> Result<(usize, usize, u32)> {
    let mut evals = 0u32;
    while hi - lo > ((tolerance * hi as f64).floor() as usize).max(1) {
        let mid = lo + (hi - lo) / 2;
        evals += 1;
        if hit(mid)?.is_some_and(|h| h >= target) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok((lo, hi, evals))
}

/// Whether `kind`'s hit rate never falls as its cache grows (a stack algorithm).
fn is_stack(kind: PolicyKind) -> bool {
    matches!(
        kind,
        PolicyKind::Lru | PolicyKind::Belady | PolicyKind::StaticTopK { .. }
    )
}

fn bisection_method(kind: PolicyKind, what: &str) -> String {
    if is_stack(kind) {
        format!("bisection on {what} (a stack policy: hit rate never falls as the cache grows, so this is the smallest size to the tolerance)")
    } else {
        format!("bisection on {what} (assumes the hit rate grows with the cache; {} is not a stack policy, so a smaller size may also reach the target)", kind.name())
    }
}

fn unreachable(kind: PolicyKind, target: f64, best: f64, rows: usize, what: &str) -> Error {
    Error::range(
        "--solve-hit-rate",
        target,
        format!(
            "≤ {best:.6} for {}: its hit rate with {rows} rows ({what})",
            kind.name()
        ),
    )
}

/// Solves every policy of `p` for `solve` with `method`, each on its own: a target a policy
/// cannot reach even with every distinct row cached is a [`Failed`] entry in its place.
/// `seed` seeds the Zipf generator (a trace file ignores it).
///
/// # Errors
/// A missing or unreadable source (`analytic` needs a Zipf source); a policy without a closed
/// form under `analytic`.
pub fn solve_each(
    p: &Params,
    solve: Solve,
    method: Method,
    seed: u64,
) -> Result<Vec<std::result::Result<Solved, Failed>>> {
    let source = SourceSpec {
        seed,
        ..p.source.clone()
    };
    let target = solve.target_hit_rate;
    let mut out = Vec::with_capacity(p.kinds.len());
    match method {
        Method::Sim if p.kinds.iter().all(|&k| stream::streams(k)) => {
            // Streaming (memory bounded by the distinct rows): one pass for the trace's size
            // (or the LRU stack distances, which give it), then a pass per simulation.
            let (src, z) = source.stream_source()?;
            let sizes = Sizes {
                row_bytes: p.row_bytes,
                table_rows: source.declared_table_rows()?,
            };
            let gen_seed = z.as_ref().map(|z| z.seed);
            let hist = if p.kinds.contains(&PolicyKind::Lru) {
                Some(mrc::stack_distances_stream(&src)?)
            } else {
                None
            };
            let (accesses, n) = match &hist {
                Some(h) => (h.accesses, h.unique_rows()),
                None => {
                    let (a, n) = stream::count(&src)?;
                    (a, n as usize)
                }
            };
            // Lookahead's working set and peak occupancy, computed once for every bisection
            // step.
            let memo = stream::Memo::default();
            for &k in &p.kinds {
                let run = |c: usize| {
                    let pipe = p.pipe.as_ref();
                    stream_row(&src, source.batch, k, c, gen_seed, pipe, sizes, &memo)
                };
                let min_feasible = match k {
                    PolicyKind::Lookahead { .. } => {
                        Some(memo.min_feasible_rows(&src, source.batch)?)
                    }
                    _ => None,
                };
                let on = SimOn {
                    n,
                    accesses,
                    min_feasible,
                    run: &run,
                };
                out.push(solve_on(k, p, solve, hist.as_ref(), on)?);
            }
        }
        Method::Sim => {
            let (trace, z) = source.load()?;
            let sizes = Sizes {
                row_bytes: p.row_bytes,
                table_rows: source.declared_table_rows()?,
            };
            let gen_seed = z.as_ref().map(|z| z.seed);
            let hist = p
                .kinds
                .contains(&PolicyKind::Lru)
                .then(|| mrc::stack_distances(&trace));
            for &k in &p.kinds {
                out.push(solve_sim(
                    &trace,
                    k,
                    p,
                    solve,
                    gen_seed,
                    sizes,
                    hist.as_ref(),
                )?);
            }
        }
        Method::Analytic => {
            let z = source.zipf_spec()?.ok_or_else(|| {
                Error::range(
                    "--method analytic",
                    "without --zipf",
                    "a Zipf source: --zipf S --rows N (or --profile) --accesses M",
                )
            })?;
            let total = usize::try_from(z.tables.iter().sum::<u64>()).unwrap_or(usize::MAX);
            let basis = Basis::Tables {
                accesses: z.accesses,
            };
            for &k in &p.kinds {
                let row = |c: usize| -> Result<Row> {
                    analytic_row(k, &z.tables, z.s, c, basis, p.row_bytes)?.ok_or_else(|| {
                        Error::range(
                            "--policy",
                            k.name(),
                            "lru or static-topk with --method analytic",
                        )
                    })
                };
                let top = row(total)?;
                if top.metrics.hit_rate < target {
                    out.push(Err(Failed::new(
                        k,
                        method,
                        total,
                        p.row_bytes,
                        (total as u64, z.accesses),
                        unreachable(
                            k,
                            target,
                            top.metrics.hit_rate,
                            total,
                            "every row of the tables cached",
                        ),
                    )));
                    continue;
                }
                let (lo, hi, evals) = bisect(0, total, target, solve.tolerance, |c| {
                    Ok(Some(row(c)?.metrics.hit_rate))
                })?;
                out.push(Ok(Solved {
                    row: row(hi)?,
                    target_hit_rate: target,
                    method: bisection_method(k, "the closed form"),
                    lower_rows: lo as u64,
                    tolerance: solve.tolerance,
                    evaluations: evals + 2,
                }));
            }
        }
    }
    Ok(out)
}

fn solve_sim(
    trace: &DenseTrace,
    kind: PolicyKind,
    p: &Params,
    solve: Solve,
    seed: Option<u64>,
    sizes: Sizes,
    hist: Option<&mrc::StackHistogram>,
) -> Result<std::result::Result<Solved, Failed>> {
    let run = |c: usize| sim_row(trace, kind, c, seed, p.pipe.as_ref(), sizes);
    let on = SimOn {
        n: trace.n_rows(),
        accesses: trace.len() as u64,
        // Lookahead cannot run below its two-batch working set: the bracket starts there.
        min_feasible: matches!(kind, PolicyKind::Lookahead { .. })
            .then(|| super::policy::lookahead::Lookahead::min_feasible_rows(trace)),
        run: &run,
    };
    solve_on(kind, p, solve, hist, on)
}

/// What a simulated solve runs on: the trace's distinct rows and accesses, lookahead's
/// smallest feasible cache, and the simulation at a cache size (in memory or streaming).
struct SimOn<'a> {
    n: usize,
    accesses: u64,
    min_feasible: Option<usize>,
    run: &'a dyn Fn(usize) -> Result<Row>,
}

fn solve_on(
    kind: PolicyKind,
    p: &Params,
    solve: Solve,
    hist: Option<&mrc::StackHistogram>,
    on: SimOn<'_>,
) -> Result<std::result::Result<Solved, Failed>> {
    let target = solve.target_hit_rate;
    let (n, run) = (on.n, on.run);
    let failed = |rows: usize, error: Error| {
        Failed::new(
            kind,
            Method::Sim,
            rows,
            p.row_bytes,
            (n as u64, on.accesses),
            error,
        )
    };
    let everything = "every distinct row of the trace cached: the other misses are first touches";
    if let (PolicyKind::Lru, Some(h)) = (kind, hist) {
        return Ok(match smallest_lru_rows(h, target) {
            Some(c) => Ok(Solved {
                row: run(c)?,
                target_hit_rate: target,
                method: "exact: one-pass LRU stack distances (Mattson et al. 1970)".into(),
                lower_rows: c as u64 - 1,
                tolerance: 0.0,
                evaluations: 1,
            }),
            None => {
                let best = (h.accesses - h.misses(n)) as f64 / h.accesses as f64;
                Err(failed(n, unreachable(kind, target, best, n, everything)))
            }
        });
    }
    let (lo, hi) = match on.min_feasible {
        Some(min) => {
            let min = min.max(1);
            (min - 1, n.max(min))
        }
        None => (0, n),
    };
    let top = run(hi)?;
    if top.metrics.hit_rate < target {
        let what = match kind {
            // Lookahead keeps a row only while its window uses it again: more room changes nothing.
            PolicyKind::Lookahead { .. } => {
                "as much as its window ever keeps: a larger cache changes nothing"
            }
            _ => everything,
        };
        let e = unreachable(kind, target, top.metrics.hit_rate, hi, what);
        return Ok(Err(failed(hi, e)));
    }
    let (lo, hi, evals) = bisect(lo, hi, target, solve.tolerance, |c| {
        Ok(run(c).ok().map(|r| r.metrics.hit_rate))
    })?;
    Ok(Ok(Solved {
        row: run(hi)?,
        target_hit_rate: target,
        method: bisection_method(kind, "simulations"),
        lower_rows: lo as u64,
        tolerance: solve.tolerance,
        evaluations: evals + 2,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embcache::simulate;

    #[test]
    fn exact_lru_is_the_first_size_that_reaches() {
        // a b c a b b d a: hits at 1 row: 1 (b b); at 3 rows: 4.
        let t = DenseTrace::from_rows(&[1, 2, 3, 1, 2, 2, 4, 1], 1);
        let h = mrc::stack_distances(&t);
        assert_eq!(smallest_lru_rows(&h, 1.0 / 8.0), Some(1));
        assert_eq!(smallest_lru_rows(&h, 2.0 / 8.0), Some(3));
        assert_eq!(smallest_lru_rows(&h, 4.0 / 8.0), Some(3));
        assert_eq!(smallest_lru_rows(&h, 5.0 / 8.0), None);
        for (target, c) in [(0.125, 1), (0.5, 3)] {
            let (m, _) = simulate(&t, PolicyKind::Lru, c).unwrap();
            assert!(m.hit_rate >= target);
            if c > 1 {
                let (m, _) = simulate(&t, PolicyKind::Lru, c - 1).unwrap();
                assert!(m.hit_rate < target);
            }
        }
    }

    /// Solving while streaming (every policy streams) gives what the in-memory path gives for
    /// the same trace: sizes, rows (but the wall-clock fields), brackets and evaluations, and
    /// the same failures; batches of 1 and 6, reachable and unreachable targets.
    #[test]
    fn streaming_solve_equals_the_in_memory_one() {
        let cat = crate::catalog::Catalog::embedded().unwrap();
        let timeless = |mut r: Row| {
            r.metrics.sim_s = None;
            r.metrics.sim_requests_per_s = None;
            r
        };
        for (batch, target) in [(1, 0.3), (6, 0.55), (1, 0.99)] {
            let spec: crate::embcache::spec::Spec = toml::from_str(&format!(
                "zipf = 0.9\nrows = 400\naccesses = 6000\nbatch = {batch}\ncompute_s = 1e-3\n\
                 policy = 'lru,fifo,lfu,belady,static-topk,lookahead'\nwindow = 2\n\
                 solve_hit_rate = {target}\nsolve_tolerance = 0.05\n"
            ))
            .unwrap();
            let p = spec.resolve(&cat).unwrap();
            let solve = p.solve.unwrap();
            let streamed = solve_each(&p, solve, Method::Sim, 7).unwrap();
            let source = SourceSpec {
                seed: 7,
                ..p.source.clone()
            };
            let (trace, z) = source.load().unwrap();
            let sizes = Sizes {
                row_bytes: p.row_bytes,
                table_rows: source.declared_table_rows().unwrap(),
            };
            let hist = mrc::stack_distances(&trace);
            assert_eq!(streamed.len(), p.kinds.len());
            for (&k, s) in p.kinds.iter().zip(streamed) {
                let m = solve_sim(
                    &trace,
                    k,
                    &p,
                    solve,
                    z.as_ref().map(|z| z.seed),
                    sizes,
                    Some(&hist),
                )
                .unwrap();
                let what = format!("{} batch {batch} target {target}", k.name());
                match (s, m) {
                    (Ok(s), Ok(m)) => {
                        assert_eq!(timeless(s.row), timeless(m.row), "{what}");
                        assert_eq!(
                            (s.method, s.lower_rows, s.evaluations, s.tolerance),
                            (m.method, m.lower_rows, m.evaluations, m.tolerance),
                            "{what}"
                        );
                    }
                    (Err(s), Err(m)) => {
                        assert_eq!(s.error.to_string(), m.error.to_string(), "{what}");
                        assert_eq!(
                            (s.cache_rows, s.unique_ids, s.accesses),
                            (m.cache_rows, m.unique_ids, m.accesses),
                            "{what}"
                        );
                    }
                    (s, m) => panic!(
                        "{what}: streamed {:?} vs in memory {:?}",
                        s.is_ok(),
                        m.is_ok()
                    ),
                }
            }
        }
    }

    #[test]
    fn bisection_brackets_to_the_tolerance() {
        // A step at 37: exact with tolerance 0, within 10% of the upper end otherwise.
        let step = |c: usize| Ok(Some(if c >= 37 { 0.9 } else { 0.1 }));
        let (lo, hi, _) = bisect(0, 1000, 0.5, 0.0, step).unwrap();
        assert_eq!((lo, hi), (36, 37));
        let (lo, hi, _) = bisect(0, 1000, 0.5, 0.1, step).unwrap();
        assert!(
            lo < 37 && hi >= 37 && hi - lo <= (0.1 * hi as f64) as usize,
            "{lo} {hi}"
        );
        // Sizes where the policy cannot run count as missing.
        let (lo, hi, _) = bisect(0, 100, 0.5, 0.0, |c| Ok((c >= 10).then_some(1.0))).unwrap();
        assert_eq!((lo, hi), (9, 10));
        assert!(Solve::new(0.0, 0.0).is_err() && Solve::new(0.5, 1.0).is_err());
    }
}
