//! Inverse what-if of layer freezing (issue 17 item 3): the freezing plan — policy, k, cache
//! tier — that meets a deadline on the total fine-tuning time, or that minimizes GPU-hours,
//! from the what-if's forward model ([`super::evaluate`]).
//!
//! The plans are every policy × cache tier the forward model runs: `none`, `fixed:k=K` for
//! K in 1..L (L the model's layers), `freezeout`, and `autofreeze` when a measured
//! gradient-norm trace is given (`grad_norms`; a synthetic trace would make the plan depend on a
//! seeded guess), each with the caches `none`, `gpu`, `ram`, `disk`. A plan whose activation
//! cache does not fit its tier (`cache_fits = false`) is never chosen. Every plan is evaluated,
//! so the answer is exact over that set:
//!
//! - **deadline**: among the plans whose `total_s` is at most the deadline, the one that freezes
//!   the fewest layers by the end of the run (`frozen_layers_final`: freezing trades accuracy
//!   for time, so a planner freezes no more than the deadline needs), the fastest of those on a
//!   tie. The row names the fastest plan freezing fewer layers (which misses the deadline).
//! - **min-gpu-hours**: the plan with the least `total_s` (freeze models one GPU, so GPU-hours
//!   are `total_s / 3600`). The row names the runner-up.

use super::{evaluate, Metrics, Policy, Spec, Tier};
use crate::catalog::Catalog;
use crate::check;
use crate::error::{Error, Result};

/// What the plan is solved for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    /// Total fine-tuning time at most this, seconds, freezing as little as possible.
    DeadlineS(f64),
    /// The fewest GPU-hours.
    MinGpuHours,
}

/// The answer: the chosen plan's forward row and the next-worse plan.
#[derive(Debug, Clone)]
pub struct PlanSolved {
    /// The forward evaluation of the chosen plan.
    pub metrics: Metrics,
    /// What it was solved for.
    pub objective: Objective,
    /// Plans evaluated.
    pub candidates: usize,
    /// Plans that fit their cache and (deadline) meet the deadline.
    pub feasible: usize,
    /// The next-worse plan (`policy cache=tier`) and its `total_s`: for a deadline, the fastest
    /// plan freezing fewer layers (it misses the deadline); for GPU-hours, the runner-up.
    pub next: Option<(String, f64)>,
}

impl PlanSolved {
    /// GPU-hours of the chosen plan (one GPU: `total_s / 3600`).
    pub fn gpu_hours(&self) -> f64 {
        self.metrics.total_s / 3600.0
    }

    /// The fields `perfcast freeze --solve` adds to the forward row: `deadline_s` (deadline
    /// only), `gpu_hours`, `solve_method`, `solve_candidates`, `solve_feasible`, `solve_next`,
    /// `solve_next_total_s`, `solve_tolerance` (0: exact over the plans).
    pub fn extra(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut r = serde_json::Map::new();
        let method = match self.objective {
            Objective::DeadlineS(d) => {
                r.insert("deadline_s".into(), d.into());
                "every policy x k x cache evaluated; the fewest frozen layers meeting the deadline, then the fastest (exact)"
            }
            Objective::MinGpuHours => {
                "every policy x k x cache evaluated; the least total_s on one GPU (exact)"
            }
        };
        r.insert("gpu_hours".into(), self.gpu_hours().into());
        r.insert("solve_method".into(), method.into());
        r.insert("solve_candidates".into(), self.candidates.into());
        r.insert("solve_feasible".into(), self.feasible.into());
        r.insert(
            "solve_next".into(),
            self.next.as_ref().map(|n| n.0.clone()).into(),
        );
        r.insert(
            "solve_next_total_s".into(),
            self.next.as_ref().map(|n| n.1).into(),
        );
        r.insert("solve_tolerance".into(), 0.0.into());
        r
    }
}

/// `spec` with every plan's policy and cache: the candidate specs (see the module doc).
///
/// # Errors
/// The spec's errors (resolving it once to learn the layer count).
pub fn plans(spec: &Spec, cat: &Catalog) -> Result<Vec<Spec>> {
    let layers = spec.resolve(cat)?.profile.len();
    let mut policies = vec![Policy::None];
    for k in 1..layers {
        policies.push(Policy::parse(&format!("fixed:k={k}"))?);
    }
    policies.push(Policy::parse("freezeout")?);
    if spec.grad_norms.is_some() {
        policies.push(Policy::parse("autofreeze")?);
    }
    let mut out = Vec::new();
    for p in policies {
        for tier in [Tier::None, Tier::Gpu, Tier::Ram, Tier::Disk] {
            out.push(Spec {
                policy: p.clone(),
                cache: tier,
                ..spec.clone()
            });
        }
    }
    Ok(out)
}

fn label(m: &Metrics) -> String {
    format!("{} cache={}", m.policy, m.cache.name())
}

/// The plan of `spec` (its model, GPU, run shape and cost source; its own policy and cache are
/// replaced) best for `objective`.
///
/// # Errors
/// A deadline ≤ 0; the spec's errors; no plan meets the deadline (the message gives the fastest
/// plan's time).
pub fn solve(spec: &Spec, cat: &Catalog, objective: Objective) -> Result<PlanSolved> {
    if let Objective::DeadlineS(d) = objective {
        check::positive("--deadline-s", d)?;
    }
    let all = plans(spec, cat)?
        .iter()
        .map(|s| evaluate(&s.resolve(cat)?))
        .collect::<Result<Vec<_>>>()?;
    let fits: Vec<&Metrics> = all.iter().filter(|m| m.cache_fits != Some(false)).collect();
    let by_time = |a: &&Metrics, b: &&Metrics| a.total_s.total_cmp(&b.total_s);
    match objective {
        Objective::MinGpuHours => {
            let mut f = fits.clone();
            f.sort_by(by_time);
            let best = f.first().ok_or_else(|| {
                Error::range(
                    "--solve",
                    "min-gpu-hours",
                    "a model with a plan whose cache fits",
                )
            })?;
            Ok(PlanSolved {
                metrics: (*best).clone(),
                objective,
                candidates: all.len(),
                feasible: f.len(),
                next: f.get(1).map(|m| (label(m), m.total_s)),
            })
        }
        Objective::DeadlineS(d) => {
            let mut ok: Vec<&Metrics> = fits.iter().copied().filter(|m| m.total_s <= d).collect();
            ok.sort_by(|a, b| {
                a.frozen_layers_final
                    .cmp(&b.frozen_layers_final)
                    .then(a.total_s.total_cmp(&b.total_s))
            });
            let Some(best) = ok.first() else {
                let fastest = fits.iter().copied().min_by(by_time);
                return Err(Error::range(
                    "--deadline-s",
                    d,
                    format!(
                        "≥ {:.1} (the fastest plan, {})",
                        fastest.map_or(f64::NAN, |m| m.total_s),
                        fastest.map_or_else(String::new, label)
                    ),
                ));
            };
            let next = fits
                .iter()
                .copied()
                .filter(|m| m.frozen_layers_final < best.frozen_layers_final)
                .min_by(by_time)
                .map(|m| (label(m), m.total_s));
            Ok(PlanSolved {
                metrics: (*best).clone(),
                objective,
                candidates: all.len(),
                feasible: ok.len(),
                next,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bert() -> Spec {
        Spec {
            epochs: 3,
            samples: 100_000,
            batch: 32,
            ..Spec::new("bert-base")
        }
    }

    /// Solve for a deadline halfway between the fastest plan and no freezing, then evaluate
    /// forward: the chosen plan meets it, every fitting plan freezing fewer layers misses it
    /// (the next-worse point), and among plans freezing as many it is the fastest.
    #[test]
    fn deadline_plan_meets_it_and_fewer_frozen_layers_miss_it() {
        let cat = Catalog::embedded().unwrap();
        let s = bert();
        let fast = solve(&s, &cat, Objective::MinGpuHours).unwrap();
        let none = evaluate(&s.resolve(&cat).unwrap()).unwrap().total_s;
        let d = 0.5 * (fast.metrics.total_s + none);
        let a = solve(&s, &cat, Objective::DeadlineS(d)).unwrap();
        assert!(a.metrics.total_s <= d);
        assert!(a.metrics.frozen_layers_final > 0);
        let all: Vec<Metrics> = plans(&s, &cat)
            .unwrap()
            .iter()
            .map(|p| evaluate(&p.resolve(&cat).unwrap()).unwrap())
            .collect();
        for m in all.iter().filter(|m| m.cache_fits != Some(false)) {
            if m.frozen_layers_final < a.metrics.frozen_layers_final {
                assert!(m.total_s > d, "{} meets {d}", label(m));
            }
            if m.frozen_layers_final == a.metrics.frozen_layers_final && m.total_s <= d {
                assert!(m.total_s >= a.metrics.total_s);
            }
            // min-gpu-hours: nothing fitting is faster.
            assert!(m.total_s >= fast.metrics.total_s);
        }
        assert!(a.next.unwrap().1 > d);
        // A deadline below the fastest plan: one error naming the flag and the bound.
        let e = solve(&s, &cat, Objective::DeadlineS(1e-3))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--deadline-s") && e.contains("fastest plan"),
            "{e}"
        );
    }
}
