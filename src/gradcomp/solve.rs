//! Inverse what-if of data-parallel training (issue 17 item 3): the fewest workers reaching a
//! target throughput, per compressor. (The other gradcomp inverse, the break-even node bandwidth,
//! is [`Plan::break_even_gbps`](super::Plan::break_even_gbps), `--break-even`.)
//!
//! Throughput is **samples/s over all ranks** (`workers × per-GPU batch / step_s`; steps/s falls
//! as ranks are added, so it is not the quantity a planner grows). Workers come in whole nodes
//! of `gpus_per_node` (the cluster model's constraint), from the spec's `workers` up to a cap.
//! The scan evaluates every count in order and stops at the first that reaches the target, so
//! the answer is exact on that grid: samples/s need not grow with the workers (collectives
//! lengthen, and the collective calibration applies to one node only), and a scan does not
//! assume it does. The row gives the forward evaluation at the answer and at the next count
//! below it on the grid (which misses).

use super::spec::{evaluate, Row, Spec};
use super::Predictor;
use crate::catalog::Catalog;
use crate::check;
use crate::error::{Error, Result};

/// Largest worker count `--solve min-workers` tries by default.
pub const MAX_WORKERS: i64 = 4096;

/// The answer of `--solve min-workers` for one compressor.
#[derive(Debug, Clone)]
pub struct WorkersSolved {
    /// The forward evaluation at the worker count found (its `workers`, `samples_per_s`, …).
    pub row: Row,
    /// The target, samples/s over all ranks.
    pub target_samples_per_s: f64,
    /// The workers the scan started from (the spec's `workers`).
    pub start_workers: u32,
    /// The next count below the answer on the grid (one node fewer), when the scan tried it.
    pub lower_workers: Option<u32>,
    /// Its samples/s (below the target).
    pub lower_samples_per_s: Option<f64>,
    /// Forward evaluations run.
    pub evaluations: u32,
}

impl WorkersSolved {
    /// The row as `perfcast gradcomp --solve min-workers` prints it: the forward row's fields,
    /// then `target_samples_per_s`, `solve_method`, `solve_added_workers`,
    /// `solve_lower_workers`, `solve_lower_samples_per_s`, `solve_tolerance` (0: exact on the
    /// grid of whole nodes), `solve_evaluations`.
    pub fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut r = self.row.record();
        r.insert(
            "target_samples_per_s".into(),
            self.target_samples_per_s.into(),
        );
        r.insert(
            "solve_method".into(),
            "scan over whole nodes from --workers (exact on that grid; no monotonicity assumed)"
                .into(),
        );
        r.insert(
            "solve_added_workers".into(),
            (i64::from(self.row.metrics.workers) - i64::from(self.start_workers)).into(),
        );
        r.insert("solve_lower_workers".into(), self.lower_workers.into());
        r.insert(
            "solve_lower_samples_per_s".into(),
            self.lower_samples_per_s.into(),
        );
        r.insert("solve_tolerance".into(), 0.0.into());
        r.insert("solve_evaluations".into(), self.evaluations.into());
        r
    }
}

/// The fewest workers (multiples of `spec.gpus_per_node`, from `spec.workers` up to
/// `max_workers`) at which `spec`'s method reaches `target_samples_per_s` with `predictor`.
///
/// # Errors
/// A target ≤ 0; `max_workers` below `spec.workers`; the spec's errors; no count up to
/// `max_workers` reaches the target (the message gives the best samples/s seen and where).
pub fn min_workers(
    spec: &Spec,
    cat: &Catalog,
    predictor: Predictor,
    target_samples_per_s: f64,
    max_workers: i64,
) -> Result<WorkersSolved> {
    check::positive("--target-samples-per-s", target_samples_per_s)?;
    let k = spec.gpus_per_node.max(1);
    check::int_in("--max-workers", max_workers, spec.workers.max(1), 1 << 20)?;
    let mut s = spec.clone();
    s.break_even = false;
    let mut prev: Option<(u32, f64)> = None;
    let mut best = (0u32, 0.0f64);
    let mut evaluations = 0;
    let mut w = spec.workers;
    while w <= max_workers {
        s.workers = w;
        let row = evaluate(&s.resolve(cat)?, predictor, 0)?;
        evaluations += 1;
        let sps = row.metrics.samples_per_s;
        if sps >= target_samples_per_s {
            return Ok(WorkersSolved {
                row,
                target_samples_per_s,
                start_workers: spec.workers as u32,
                lower_workers: prev.map(|p| p.0),
                lower_samples_per_s: prev.map(|p| p.1),
                evaluations,
            });
        }
        if sps > best.1 {
            best = (row.metrics.workers, sps);
        }
        prev = Some((row.metrics.workers, sps));
        w += k;
    }
    Err(Error::range(
        "--target-samples-per-s",
        target_samples_per_s,
        format!(
            "≤ {:.1} for {} (the most any worker count in [{}, {max_workers}] reaches, at {}; raise --max-workers)",
            best.1, spec.method, spec.workers, best.0
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bert(method: &str) -> Spec {
        Spec {
            method: method.into(),
            workers: 16,
            algo: "hierarchical".into(),
            ..Spec::new("bert-base", 25.0)
        }
    }

    /// Solve, then evaluate forward at the answer (reaches the target) and one node fewer
    /// (misses it), per compressor, from two nodes (16 workers) on 25 Gb/s: PowerSGD needs far
    /// fewer than fp16. (One node of 8 would reach it with fp16 over NVLink alone, 36 000
    /// samples/s against 6 650 at 16: samples/s does not grow with the workers, so the scan
    /// starts at --workers and assumes nothing.)
    #[test]
    fn min_workers_reaches_the_target_and_one_node_fewer_does_not() {
        let cat = Catalog::embedded().unwrap();
        let target = 60_000.0;
        let mut answers = Vec::new();
        for method in ["fp16", "powersgd:rank=4"] {
            let s = bert(method);
            let a = min_workers(&s, &cat, Predictor::Sim, target, 512).unwrap();
            let w = a.row.metrics.workers;
            let fwd = |w: u32| {
                let mut t = s.clone();
                t.workers = i64::from(w);
                evaluate(&t.resolve(&cat).unwrap(), Predictor::Sim, 0)
                    .unwrap()
                    .metrics
                    .samples_per_s
            };
            assert!(fwd(w) >= target, "{method} at {w}");
            assert_eq!(a.lower_workers, Some(w - 8));
            assert!(fwd(w - 8) < target, "{method} at {}", w - 8);
            // Exact on the grid: no smaller count reaches it.
            for v in (16..w).step_by(8) {
                assert!(fwd(v) < target, "{method} at {v}");
            }
            answers.push(w);
        }
        assert!(answers[1] < answers[0], "{answers:?}");
        let e = min_workers(&bert("fp16"), &cat, Predictor::Sim, 1e9, 64)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--target-samples-per-s") && e.contains("--max-workers"),
            "{e}"
        );
    }
}
