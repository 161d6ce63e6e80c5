//! Inverse what-ifs of speculative decoding (issue 17 item 3), on the closed form
//! ([`super::analytic()`]):
//!
//! - [`min_alpha`]: the smallest i.i.d. acceptance α at which a drafter reaches a target speedup
//!   (decode tokens/s over autoregressive tokens/s). Bisection on α in [0, 1] to an absolute
//!   tolerance: for a fixed γ the expected tokens per round `1 + α + … + α^γ` grow with α and the
//!   round's cost does not depend on α, so the speedup never falls as α grows; with `γ auto` it is
//!   the maximum over γ of such functions, which does not fall either. The α found reaches the
//!   target and α − tolerance (the bracket's lower end, also reported) does not.
//! - [`best_draft`]: the drafter × γ with the most tokens/s whose memory per GPU
//!   ([`Params::memory_bytes`](super::Params::memory_bytes)) fits a budget (default: the GPU's
//!   memory). Exact: every drafter given × every γ in 1..=16 (or the fixed γ) is evaluated; a
//!   point that does not fit is never chosen, and the row names the best one excluded.

use super::{analytic, Gamma, Metrics, Solve, Spec};
use crate::catalog::Catalog;
use crate::check;
use crate::error::{Error, Result};

/// The answer of `--solve min-alpha`.
#[derive(Debug, Clone)]
pub struct AlphaSolved {
    /// The forward (closed-form) evaluation at the α found.
    pub metrics: Metrics,
    /// The target speedup.
    pub target_speedup: f64,
    /// The bracket's lower end: the largest α known to miss the target (the α found minus at
    /// most the tolerance); `None` when α = 0 already reaches it.
    pub lower_alpha: Option<f64>,
    /// The speedup at `lower_alpha` (below the target).
    pub lower_speedup: Option<f64>,
    /// Absolute tolerance on α.
    pub tolerance: f64,
    /// Forward evaluations run.
    pub evaluations: u32,
}

impl AlphaSolved {
    /// The fields `perfcast specdec --solve min-alpha` adds to the forward row: `target_speedup`,
    /// `solve_method`, `solve_lower_alpha`, `solve_lower_speedup`, `solve_tolerance`,
    /// `solve_evaluations`.
    pub fn extra(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut r = serde_json::Map::new();
        r.insert("target_speedup".into(), self.target_speedup.into());
        r.insert(
            "solve_method".into(),
            "bisection on alpha (the closed-form speedup never falls as alpha grows)".into(),
        );
        r.insert("solve_lower_alpha".into(), self.lower_alpha.into());
        r.insert("solve_lower_speedup".into(), self.lower_speedup.into());
        r.insert("solve_tolerance".into(), self.tolerance.into());
        r.insert("solve_evaluations".into(), self.evaluations.into());
        r
    }
}

/// `spec` with i.i.d. acceptance `alpha` (every other acceptance form cleared) and no solve.
fn with_alpha(spec: &Spec, alpha: f64) -> Spec {
    let mut s = spec.clone();
    s.solve = None;
    s.alpha = None;
    s.draft.alpha = Some(alpha);
    s.draft.survival = None;
    s.draft.conditional = None;
    s.draft.acceptance_rate = None;
    s.draft.rate_gamma = None;
    s
}

/// The closed-form metrics of `spec` at i.i.d. acceptance `alpha`.
///
/// # Errors
/// As [`Spec::to_params`].
pub fn at_alpha(spec: &Spec, cat: &Catalog, alpha: f64) -> Result<Metrics> {
    analytic(&with_alpha(spec, alpha).to_params(cat)?)
}

/// The smallest α in [0, 1] at which `spec`'s drafter reaches `target_speedup`, to `tolerance`
/// (absolute, in (0, 0.1]). `spec`'s own acceptance, if any, is ignored.
///
/// # Errors
/// A target ≤ 0 or a tolerance out of range; the spec's errors; a target above the speedup at
/// α = 1 (the message gives that speedup).
pub fn min_alpha(
    spec: &Spec,
    cat: &Catalog,
    target_speedup: f64,
    tolerance: f64,
) -> Result<AlphaSolved> {
    check::positive("--target-speedup", target_speedup)?;
    check::in_closed("--solve-tolerance", tolerance, 1e-9, 0.1)?;
    let top = at_alpha(spec, cat, 1.0)?;
    if top.speedup < target_speedup {
        return Err(Error::range(
            "--target-speedup",
            target_speedup,
            format!(
                "≤ {:.4} for {} (its speedup at alpha = 1, every drafted token accepted)",
                top.speedup, top.draft
            ),
        ));
    }
    let bottom = at_alpha(spec, cat, 0.0)?;
    if bottom.speedup >= target_speedup {
        return Ok(AlphaSolved {
            metrics: bottom,
            target_speedup,
            lower_alpha: None,
            lower_speedup: None,
            tolerance,
            evaluations: 2,
        });
    }
    let (mut lo, mut hi) = ((0.0, bottom), (1.0, top));
    let mut evaluations = 2;
    while hi.0 - lo.0 > tolerance {
        let mid = 0.5 * (lo.0 + hi.0);
        let m = at_alpha(spec, cat, mid)?;
        evaluations += 1;
        if m.speedup >= target_speedup {
            hi = (mid, m);
        } else {
            lo = (mid, m);
        }
    }
    Ok(AlphaSolved {
        metrics: hi.1,
        target_speedup,
        lower_alpha: Some(lo.0),
        lower_speedup: Some(lo.1.speedup),
        tolerance,
        evaluations,
    })
}

/// The answer of `--solve best-draft`.
#[derive(Debug, Clone)]
pub struct DraftSolved {
    /// The forward evaluation of the best fitting drafter × γ.
    pub metrics: Metrics,
    /// The memory budget per GPU, bytes.
    pub budget_bytes: f64,
    /// Points evaluated (drafters × γ).
    pub candidates: usize,
    /// Points that fit the budget.
    pub fitting: usize,
    /// The second-best fitting point (the next-worse answer): `draft γ=g`, and its tokens/s.
    pub runner_up: Option<(String, f64)>,
    /// The best point that does not fit, when it beats the answer: `draft γ=g`, its tokens/s
    /// and its memory per GPU, bytes.
    pub excluded: Option<(String, f64, f64)>,
}

impl DraftSolved {
    /// The fields `perfcast specdec --solve best-draft` adds to the forward row:
    /// `memory_budget_bytes`, `solve_method`, `solve_candidates`, `solve_fitting`,
    /// `solve_runner_up`, `solve_runner_up_tokens_per_s`, `solve_excluded`,
    /// `solve_excluded_tokens_per_s`, `solve_excluded_memory_bytes`, `solve_tolerance` (0: exact).
    pub fn extra(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut r = serde_json::Map::new();
        r.insert("memory_budget_bytes".into(), self.budget_bytes.into());
        r.insert(
            "solve_method".into(),
            "exhaustive over drafts x gamma (exact; points over the budget never chosen)".into(),
        );
        r.insert("solve_candidates".into(), self.candidates.into());
        r.insert("solve_fitting".into(), self.fitting.into());
        r.insert(
            "solve_runner_up".into(),
            self.runner_up.as_ref().map(|x| x.0.clone()).into(),
        );
        r.insert(
            "solve_runner_up_tokens_per_s".into(),
            self.runner_up.as_ref().map(|x| x.1).into(),
        );
        r.insert(
            "solve_excluded".into(),
            self.excluded.as_ref().map(|x| x.0.clone()).into(),
        );
        r.insert(
            "solve_excluded_tokens_per_s".into(),
            self.excluded.as_ref().map(|x| x.1).into(),
        );
        r.insert(
            "solve_excluded_memory_bytes".into(),
            self.excluded.as_ref().map(|x| x.2).into(),
        );
        r.insert("solve_tolerance".into(), 0.0.into());
        r
    }
}

/// Every drafter × γ point of `specs` (one spec per drafter), closed form: γ in
/// 1..=min(16, the acceptance curve's length) for `gamma = auto`, else the fixed γ.
///
/// # Errors
/// The first spec error.
pub fn draft_grid(specs: &[Spec], cat: &Catalog) -> Result<Vec<Metrics>> {
    let mut out = Vec::new();
    for s in specs {
        let mut s = s.clone();
        s.solve = None;
        let p = s.to_params(cat)?;
        let gammas: Vec<u32> = match p.gamma {
            Gamma::Fixed(g) => vec![g],
            Gamma::Auto => (1..=super::AUTO_GAMMA_MAX.min(p.acceptance.max_gamma())).collect(),
        };
        for g in gammas {
            let mut q = p.clone();
            q.gamma = Gamma::Fixed(g);
            out.push(analytic(&q)?);
        }
    }
    Ok(out)
}

/// The drafter × γ of `specs` with the most tokens/s whose memory per GPU is at most
/// `budget_bytes` (default: the GPU's memory).
///
/// # Errors
/// A spec error; given step times or a cost ratio (no memory footprint); a budget ≤ 0; no point
/// fits (the message gives the smallest need).
pub fn best_draft(specs: &[Spec], cat: &Catalog, budget_bytes: Option<f64>) -> Result<DraftSolved> {
    if let Some(b) = budget_bytes {
        check::positive("--memory-budget-gb", b / 1e9)?;
    }
    let grid = draft_grid(specs, cat)?;
    let label = |m: &Metrics| format!("{} gamma={}", m.draft, m.gamma);
    let budget = match budget_bytes {
        Some(b) => b,
        None => {
            let gpu = specs.first().map(|s| s.gpu.as_str()).unwrap_or("h200");
            cat.gpu(gpu)?.memory_bytes
        }
    };
    let mut fit: Vec<&Metrics> = Vec::new();
    let mut unfit: Vec<&Metrics> = Vec::new();
    for m in &grid {
        match m.memory_bytes {
            None => {
                return Err(Error::range(
                    "--solve",
                    "best-draft",
                    "catalog --draft models or --exit-layer (given step times and cost ratios have no memory footprint)",
                ))
            }
            Some(b) if b <= budget => fit.push(m),
            Some(_) => unfit.push(m),
        }
    }
    let by_tps = |a: &&Metrics, b: &&Metrics| b.tokens_per_s.total_cmp(&a.tokens_per_s);
    fit.sort_by(by_tps);
    unfit.sort_by(by_tps);
    let Some(best) = fit.first() else {
        let need = grid
            .iter()
            .filter_map(|m| m.memory_bytes)
            .fold(f64::INFINITY, f64::min);
        return Err(Error::range(
            "--memory-budget-gb",
            budget / 1e9,
            format!(
                "≥ {:.2} (the smallest need per GPU of the drafters given; or a larger --tp)",
                need / 1e9
            ),
        ));
    };
    let excluded = unfit
        .first()
        .filter(|u| u.tokens_per_s > best.tokens_per_s)
        .map(|u| (label(u), u.tokens_per_s, u.memory_bytes.unwrap_or(f64::NAN)));
    Ok(DraftSolved {
        metrics: (*best).clone(),
        budget_bytes: budget,
        candidates: grid.len(),
        fitting: fit.len(),
        runner_up: fit.get(1).map(|m| (label(m), m.tokens_per_s)),
        excluded,
    })
}

/// Whether `solve` is answered here (not by [`Spec::to_params`]).
pub fn is_inverse(solve: Option<Solve>) -> bool {
    matches!(solve, Some(Solve::MinAlpha | Solve::BestDraft))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::specdec::DraftSpec;

    fn spec(draft: &str) -> Spec {
        Spec {
            target: "llama-2-13b".into(),
            batch: 8,
            draft: DraftSpec {
                model: Some(draft.into()),
                alpha: Some(0.7),
                ..DraftSpec::default()
            },
            ..Spec::new()
        }
    }

    /// Solve, then evaluate forward at the answer (reaches the target) and at the bracket's
    /// lower end, α − at most the tolerance (misses it).
    #[test]
    fn min_alpha_reaches_the_target_and_alpha_minus_tolerance_does_not() {
        let cat = Catalog::embedded().unwrap();
        for (draft, target) in [("tinyllama-1.1b", 1.5), ("llama-2-7b", 1.2)] {
            let s = spec(draft);
            let a = min_alpha(&s, &cat, target, 1e-4).unwrap();
            let alpha = a.metrics.alpha.unwrap();
            let lo = a.lower_alpha.unwrap();
            assert!(alpha - lo <= 1e-4 && alpha > lo, "{alpha} {lo}");
            assert!(at_alpha(&s, &cat, alpha).unwrap().speedup >= target);
            assert!(at_alpha(&s, &cat, lo).unwrap().speedup < target);
            assert_eq!(a.metrics, at_alpha(&s, &cat, alpha).unwrap());
        }
        // Above the speedup at α = 1: one error naming the flag and the reachable bound.
        let e = min_alpha(&spec("llama-2-7b"), &cat, 50.0, 1e-4)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--target-speedup") && e.contains("alpha = 1"),
            "{e}"
        );
    }

    /// The best fitting drafter × γ beats every other fitting point of the grid (each evaluated
    /// forward), and a budget that excludes the unconstrained best changes the answer to a
    /// fitting one and names the excluded point.
    #[test]
    fn best_draft_is_the_fastest_fitting_point() {
        let cat = Catalog::embedded().unwrap();
        let specs: Vec<Spec> = ["tinyllama-1.1b", "sheared-llama-1.3b"]
            .iter()
            .zip([0.6, 0.9])
            .map(|(d, a)| {
                let mut s = spec(d);
                s.draft.alpha = Some(a);
                s
            })
            .collect();
        let grid = draft_grid(&specs, &cat).unwrap();
        let free = best_draft(&specs, &cat, None).unwrap();
        assert_eq!(
            free.metrics.draft, "sheared-llama-1.3b",
            "{:?}",
            free.metrics
        );
        let top = grid.iter().map(|m| m.tokens_per_s).fold(0.0, f64::max);
        assert_eq!(free.metrics.tokens_per_s, top);
        // A budget just below the Sheared-LLaMA pair's need.
        let need = free.metrics.memory_bytes.unwrap();
        let b = best_draft(&specs, &cat, Some(need - 1.0)).unwrap();
        assert_eq!(b.metrics.draft, "tinyllama-1.1b");
        assert!(b.metrics.memory_bytes.unwrap() <= need - 1.0);
        for m in &grid {
            if m.memory_bytes.unwrap() <= need - 1.0 {
                assert!(m.tokens_per_s <= b.metrics.tokens_per_s, "{m:?}");
            }
        }
        assert!(b
            .excluded
            .as_ref()
            .unwrap()
            .0
            .starts_with("sheared-llama-1.3b"));
        assert!(b.runner_up.unwrap().1 <= b.metrics.tokens_per_s);
        let e = best_draft(&specs, &cat, Some(1e9)).unwrap_err().to_string();
        assert!(e.contains("--memory-budget-gb"), "{e}");
    }
}
