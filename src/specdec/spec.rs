//! The front door of specdec: [`Spec`] → [`Spec::resolve`] → [`Point`] → [`evaluate`] →
//! [`Metrics`]. `perfcast specdec` and the scenario study both go through it.
//!
//! ```
//! use perfcast::specdec::{evaluate, DraftSpec, GammaSpec, Method, Spec};
//! use perfcast::Catalog;
//!
//! // Leviathan et al.'s setting: α = 0.7, γ = 3, a draft forward costs 0.1 target forwards.
//! let spec = Spec {
//!     draft: DraftSpec {
//!         alpha: Some(0.7),
//!         cost_ratio: Some(0.1),
//!         ..DraftSpec::default()
//!     },
//!     gamma: GammaSpec::Fixed(3),
//!     ..Spec::new()
//! };
//! let m = evaluate(&spec.resolve(&Catalog::embedded()?)?, Method::Analytic, 0)?;
//! assert!((m.speedup - 1.948462).abs() < 1e-6);
//! # Ok::<(), perfcast::Error>(())
//! ```

use super::{
    analytic, simulate, Acceptance, Chai, CostModel, ForwardModel, Gamma, HwRates, Metrics, Params,
    Platform, SimConfig,
};
use crate::catalog::Catalog;
use crate::check;
use crate::error::{Error, Result};
use serde::Deserialize;

/// How a point is predicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// Closed form.
    Analytic,
    /// Seeded Monte-Carlo simulation (adds per-token latency percentiles).
    Sim,
}

impl std::str::FromStr for Method {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "analytic" => Ok(Method::Analytic),
            "sim" => Ok(Method::Sim),
            other => Err(Error::range("--method", other, "analytic or sim")),
        }
    }
}

/// A validated specdec what-if: the model parameters and the simulation settings.
#[derive(Debug, Clone)]
pub struct Point {
    /// Latency, acceptance and lookahead.
    pub params: Params,
    /// Simulated speculation steps (default: [`SimConfig`]'s).
    pub sim_steps: Option<u64>,
    /// Tokens per simulated request (default: [`SimConfig`]'s).
    pub gen_tokens: Option<u32>,
}

/// Simulation settings: steps and tokens per request (defaults: [`SimConfig`]'s), seed.
fn sim_config(sim_steps: Option<u64>, gen_tokens: Option<u32>, seed: u64) -> Result<SimConfig> {
    let d = SimConfig::default();
    let steps = check::int_in(
        "sim_steps",
        sim_steps.unwrap_or(d.steps) as i64,
        1,
        100_000_000,
    )? as u64;
    let gen = check::int_in(
        "gen_tokens",
        i64::from(gen_tokens.unwrap_or(d.gen_tokens)),
        1,
        1_000_000,
    )? as u32;
    Ok(SimConfig {
        steps,
        gen_tokens: gen,
        seed,
    })
}

/// Predicts one point: the closed form, or the simulation seeded with `seed`.
///
/// # Errors
/// Out-of-range simulation settings; model errors of [`analytic()`] or [`simulate`].
pub fn evaluate(p: &Point, method: Method, seed: u64) -> Result<Metrics> {
    match method {
        Method::Analytic => analytic(&p.params),
        Method::Sim => simulate(&p.params, sim_config(p.sim_steps, p.gen_tokens, seed)?),
    }
}

/// γ as written by a user: a number or `"auto"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum GammaSpec {
    /// A fixed γ.
    Fixed(i64),
    /// `"auto"`.
    Word(String),
}

impl GammaSpec {
    /// Converts to a validated [`Gamma`].
    ///
    /// # Errors
    /// Not in [1, 64] and not `auto`.
    pub fn resolve(&self) -> Result<Gamma> {
        match self {
            GammaSpec::Fixed(g) => {
                Ok(Gamma::Fixed(
                    check::int_in("gamma", *g, 1, i64::from(super::MAX_GAMMA))? as u32,
                ))
            }
            GammaSpec::Word(w) if w.eq_ignore_ascii_case("auto") => Ok(Gamma::Auto),
            GammaSpec::Word(w) => Err(Error::range("gamma", w, "an integer in [1, 64] or 'auto'")),
        }
    }
}

/// A drafter and its acceptance: one of `model`, `exit_layer`, `cost_ratio`, or `draft_step_s`;
/// acceptance as one of `alpha`, `survival`, `conditional`, or `acceptance_rate` (+ `rate_gamma`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DraftSpec {
    /// Draft model from the catalog.
    pub model: Option<String>,
    /// LayerSkip exit layer of the target.
    pub exit_layer: Option<u32>,
    /// Leviathan's cost ratio (draft forward / target forward).
    pub cost_ratio: Option<f64>,
    /// Raw draft forward time, seconds.
    pub draft_step_s: Option<f64>,
    /// i.i.d. acceptance α.
    pub alpha: Option<f64>,
    /// Survival curve S(1..).
    pub survival: Option<Vec<f64>>,
    /// Conditional per-position acceptance rates.
    pub conditional: Option<Vec<f64>>,
    /// An engine's marginal acceptance rate (accepted/drafted), converted to α.
    pub acceptance_rate: Option<f64>,
    /// γ at which `acceptance_rate` was measured.
    pub rate_gamma: Option<u32>,
    /// Label for output (default: derived).
    pub label: Option<String>,
}

fn default_gpu() -> String {
    "h200".into()
}
fn default_target() -> String {
    "llama-3.1-8b".into()
}
fn default_batch() -> u32 {
    1
}
fn default_ctx() -> f64 {
    1024.0
}
fn default_tp() -> u32 {
    1
}
fn default_stack() -> String {
    crate::catalog::DEFAULT_STACK.into()
}

/// What [`Spec::resolve`] solves for instead of taking it as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Solve {
    /// The smallest tensor-parallel degree ≥ `tp` at which target (weights and KV cache, split
    /// over the group) plus draft fit one GPU's memory at the point's batch and context.
    MinTp,
    /// The smallest i.i.d. α reaching a target speedup ([`super::solve::min_alpha`]; the CLI's
    /// `--target-speedup`).
    MinAlpha,
    /// The drafter × γ with the most tokens/s under a memory budget
    /// ([`super::solve::best_draft`]; the CLI's `--memory-budget-gb`).
    BestDraft,
}

/// Largest tensor-parallel degree `--solve min-tp` tries (the most [`ForwardModel::with_tp`]
/// accepts).
pub const MAX_TP: u32 = 64;
fn default_gamma() -> GammaSpec {
    GammaSpec::Word("auto".into())
}

/// One specdec what-if as a user writes it (a scenario grid point; the CLI builds one per
/// `--draft`). Keys are the CLI flags (`--context-tokens` = `context_tokens`) except where a
/// scenario needs structure: the drafter and its acceptance form one `draft` table. `method` is
/// the argument of [`evaluate`] (a scenario may list several); the seed is the scenario's.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Target model.
    #[serde(default = "default_target")]
    pub target: String,
    /// GPU.
    #[serde(default = "default_gpu")]
    pub gpu: String,
    /// Drafter and acceptance.
    #[serde(default)]
    pub draft: DraftSpec,
    /// i.i.d. α applying when the drafter gives no acceptance.
    pub alpha: Option<f64>,
    /// Lookahead.
    #[serde(default = "default_gamma")]
    pub gamma: GammaSpec,
    /// Sequences per batch.
    #[serde(default = "default_batch")]
    pub batch: u32,
    /// Mean context tokens.
    #[serde(default = "default_ctx")]
    pub context_tokens: f64,
    /// CHAI clusters (one, or one per target layer).
    pub chai_clusters: Option<Vec<u32>>,
    /// Tensor-parallel degree of the target (the draft model runs replicated, unsplit, on each GPU);
    /// with `solve = "min-tp"`, the smallest degree tried.
    #[serde(default = "default_tp")]
    pub tp: u32,
    /// Software stack of the latency model: `harness` (default), `datasheet` or a stack file
    /// ([`crate::catalog::stack`]). The same stack on every GPU compares GPUs on one footing.
    #[serde(default = "default_stack")]
    pub stack: String,
    /// Solve for a parameter instead of taking it as given (`min-tp`; `min-alpha` and
    /// `best-draft` are answered by [`super::solve`]).
    pub solve: Option<Solve>,
    /// Raw target forward time, seconds (overrides the roofline).
    pub target_step_s: Option<f64>,
    /// Methods to evaluate: `analytic`, `sim`, or a list of both (default analytic; the older
    /// scenario key `methods` is accepted).
    #[serde(
        default,
        alias = "methods",
        deserialize_with = "crate::scenario::de_one_or_many"
    )]
    pub method: Vec<String>,
    /// Simulated speculation steps.
    pub sim_steps: Option<u64>,
    /// Tokens per simulated request.
    pub gen_tokens: Option<u32>,
}

impl Spec {
    /// A spec with every default (target llama-3.1-8b on h200 with the harness stack, γ auto,
    /// batch 1, context 1024, tp 1).
    pub fn new() -> Self {
        Spec {
            target: default_target(),
            gpu: default_gpu(),
            draft: DraftSpec::default(),
            alpha: None,
            gamma: default_gamma(),
            batch: 1,
            context_tokens: default_ctx(),
            chai_clusters: None,
            tp: 1,
            stack: default_stack(),
            solve: None,
            target_step_s: None,
            method: Vec::new(),
            sim_steps: None,
            gen_tokens: None,
        }
    }

    /// Builds validated [`Params`] using the catalog and the spec's stack; with
    /// `solve = "min-tp"`, at the smallest tensor-parallel degree that fits ([`Spec::min_tp`]).
    ///
    /// # Errors
    /// Unknown names, conflicting or missing drafter/acceptance fields, out-of-range numbers;
    /// for `min-tp`, no degree up to [`MAX_TP`] fits, or the costs have no memory footprint.
    pub fn to_params(&self, cat: &Catalog) -> Result<Params> {
        match self.solve {
            None => self.params_at_tp(cat, self.tp),
            Some(Solve::MinTp) => self.min_tp(cat).map(|(p, _)| p),
            Some(s @ (Solve::MinAlpha | Solve::BestDraft)) => Err(Error::range(
                "solve",
                format!("{s:?}"),
                "min-tp in a point (min-alpha and best-draft are inverse what-ifs of `perfcast specdec --solve`, specdec::solve)",
            )),
        }
    }

    /// The smallest tensor-parallel degree in [`tp`, [`MAX_TP`]] that the target's heads allow
    /// and at which the point fits one GPU's memory ([`Params::fits_memory`]), with its params.
    /// Memory per GPU never grows with the degree (weights split `tp` ways, the KV cache
    /// min(tp, KV heads) ways, the draft unsplit), so the first fit is the smallest.
    ///
    /// # Errors
    /// As [`Spec::to_params`] at `tp`; given step times or a cost ratio (no memory footprint);
    /// nothing fits up to [`MAX_TP`] (the message gives the need at the largest degree tried).
    pub fn min_tp(&self, cat: &Catalog) -> Result<(Params, u32)> {
        check::int_in("tp", i64::from(self.tp), 1, i64::from(MAX_TP))?;
        let arch = cat.llm(&self.target)?;
        let mut last = None;
        for tp in self.tp..=MAX_TP {
            if !super::latency::tp_divides(arch, tp) {
                continue;
            }
            let p = self.params_at_tp(cat, tp)?;
            match p.fits_memory() {
                Some(true) => return Ok((p, tp)),
                Some(false) => last = Some((tp, p.memory_bytes().unwrap_or(f64::NAN), p.gpu_memory_bytes.unwrap_or(f64::NAN))),
                None => {
                    return Err(Error::range(
                        "solve",
                        "min-tp",
                        "a target from the roofline with a catalog draft model or exit_layer (given step times and cost ratios have no memory footprint)",
                    ))
                }
            }
        }
        let (tp, need, have) = last.unwrap_or((self.tp, f64::NAN, f64::NAN));
        Err(Error::range(
            "solve",
            format!("min-tp (at tp = {tp} one GPU needs {:.1} GB of {:.1} GB)", need / 1e9, have / 1e9),
            format!("a point that fits at some tp in [{}, {MAX_TP}] (fewer sequences, a shorter context or a smaller draft)", self.tp),
        ))
    }

    fn params_at_tp(&self, cat: &Catalog, tp: u32) -> Result<Params> {
        let d = &self.draft;
        let acceptance = self.acceptance()?;
        check::in_closed(
            "context_tokens",
            self.context_tokens,
            0.0,
            check::MAX_CONTEXT_TOKENS,
        )?;
        let gpu = cat.gpu(&self.gpu)?;
        // Hardware terms from the GPU, stack terms from the stack; each architecture at its own
        // refit when the stack has one.
        let stack = cat.stack(&self.stack, &gpu.name)?;
        let target_arch = cat.llm(&self.target)?.clone();
        let hw = HwRates::bf16(gpu, &stack.terms(&target_arch, gpu));
        let chai = self
            .chai_clusters
            .clone()
            .map(|c| Chai::new(c, &target_arch))
            .transpose()?;
        let target =
            ForwardModel::new(target_arch, hw, chai)?.with_tp(tp, super::TpLink::of_gpu(gpu))?;
        let kinds = [
            d.model.is_some(),
            d.exit_layer.is_some(),
            d.cost_ratio.is_some(),
            d.draft_step_s.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(Error::range(
                "draft",
                format!(
                    "{} drafter fields given",
                    kinds.iter().filter(|k| **k).count()
                ),
                "exactly one of model, exit_layer, cost_ratio, draft_step_s",
            ));
        }
        let baseline_s = |t: &ForwardModel| -> f64 {
            t.forward_s(super::Shape {
                batch: f64::from(self.batch),
                new_tokens: 1.0,
                context_tokens: self.context_tokens,
            })
        };
        let (cost, draft_name) = if let Some(m) = &d.model {
            let draft_arch = cat.llm(m)?.clone();
            if self.target_step_s.is_some() {
                return Err(Error::range(
                    "target_step_s",
                    "given",
                    "absent when the draft is a catalog model (both use the roofline)",
                ));
            }
            (
                CostModel::DraftModel {
                    target,
                    draft: ForwardModel::new(
                        draft_arch.clone(),
                        HwRates::bf16(gpu, &stack.terms(&draft_arch, gpu)),
                        None,
                    )?,
                },
                m.clone(),
            )
        } else if let Some(e) = d.exit_layer {
            if self.target_step_s.is_some() {
                return Err(Error::range(
                    "target_step_s",
                    "given",
                    "absent with exit_layer (LayerSkip costs come from the roofline)",
                ));
            }
            (
                CostModel::early_exit(target, e)?,
                format!("layerskip:E={e}"),
            )
        } else if let Some(c) = d.cost_ratio {
            let t = match self.target_step_s {
                Some(t) => check::positive("target_step_s", t)?,
                None => baseline_s(&target),
            };
            (CostModel::from_cost_ratio(c, t)?, format!("cost-ratio:{c}"))
        } else {
            let ds = check::positive("draft_step_s", d.draft_step_s.unwrap_or(f64::NAN))?;
            let t = match self.target_step_s {
                Some(t) => check::positive("target_step_s", t)?,
                None => baseline_s(&target),
            };
            (
                CostModel::Raw {
                    target_step_s: t,
                    draft_step_s: ds,
                },
                "raw".to_string(),
            )
        };
        // Given step times on both sides: no latency model ran.
        let given = matches!(cost, CostModel::Raw { .. }) && self.target_step_s.is_some();
        let p = Params {
            platform: if given {
                Platform::given(&gpu.name)
            } else {
                Platform::of(&gpu.name, &stack)
            },
            draft_name: d.label.clone().unwrap_or(draft_name),
            target_name: self.target.clone(),
            acceptance,
            gamma: self.gamma.resolve()?,
            batch: self.batch,
            context_tokens: self.context_tokens,
            cost,
            gpu_memory_bytes: Some(gpu.memory_bytes),
        };
        p.validate()?;
        Ok(p)
    }

    fn acceptance(&self) -> Result<Acceptance> {
        let d = &self.draft;
        let given = [
            d.alpha.is_some(),
            d.survival.is_some(),
            d.conditional.is_some(),
            d.acceptance_rate.is_some(),
        ];
        if d.acceptance_rate.is_none() {
            if let Some(g) = d.rate_gamma {
                return Err(Error::range(
                    "rate_gamma (--rate-gamma)",
                    g,
                    "given only with acceptance_rate (--acceptance-rate; it would be ignored)",
                ));
            }
        }
        match given.iter().filter(|g| **g).count() {
            0 => match self.alpha {
                Some(a) => Acceptance::iid(a),
                None => Err(Error::range(
                    "alpha",
                    "missing",
                    "given: one of alpha, survival, conditional, acceptance_rate",
                )),
            },
            1 => {
                if let Some(a) = d.alpha {
                    Acceptance::iid(a)
                } else if let Some(s) = &d.survival {
                    Acceptance::survival(s.clone())
                } else if let Some(r) = &d.conditional {
                    Acceptance::conditional(r.clone())
                } else {
                    let g = d.rate_gamma.ok_or_else(|| {
                        Error::range(
                            "rate_gamma",
                            "missing",
                            "the γ at which acceptance_rate was measured, in [1, 64]",
                        )
                    })?;
                    Acceptance::iid(super::alpha_from_acceptance_rate(
                        d.acceptance_rate.unwrap_or(f64::NAN),
                        g,
                    )?)
                }
            }
            n => Err(Error::range(
                "acceptance",
                format!("{n} forms given"),
                "exactly one of alpha, survival, conditional, acceptance_rate",
            )),
        }
    }

    /// Validates the spec against `cat` (its GPU and software stack) and builds what
    /// [`evaluate`] needs.
    ///
    /// # Errors
    /// See [`Spec::to_params`] and [`Spec::sim_config`].
    pub fn resolve(&self, cat: &Catalog) -> Result<Point> {
        let params = self.to_params(cat)?;
        Ok(Point {
            params,
            sim_steps: self.sim_steps,
            gen_tokens: self.gen_tokens,
        })
    }

    /// Simulation settings of this point.
    ///
    /// # Errors
    /// `sim_steps` or `gen_tokens` of 0 or too large.
    pub fn sim_config(&self, seed: u64) -> Result<SimConfig> {
        sim_config(self.sim_steps, self.gen_tokens, seed)
    }
}

impl Default for Spec {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::specdec::{ForwardModel, Shape, TpLink};

    /// Llama-3.1-70B over two GPUs at batch 16, context 1024, with a Llama-3.2-1B draft.
    fn llama70b(gpu: &str, stack: &str) -> Spec {
        Spec {
            target: "llama-3.1-70b".into(),
            gpu: gpu.into(),
            stack: stack.into(),
            tp: 2,
            batch: 16,
            draft: DraftSpec {
                model: Some("llama-3.2-1b".into()),
                alpha: Some(0.8),
                ..DraftSpec::default()
            },
            ..Spec::new()
        }
    }

    fn run(s: &Spec, cat: &Catalog) -> Metrics {
        evaluate(&s.resolve(cat).unwrap(), Method::Analytic, 0).unwrap()
    }

    #[test]
    fn by_default_h200_decodes_faster_than_h100_by_about_the_bandwidth_ratio() {
        // Same stack on both GPUs (the default, harness): a bandwidth-bound decode (70B weights,
        // 70 GB per GPU streamed per step) speeds up by the HBM ratio 4.8/3.35 = 1.433 on its
        // streaming terms; the fixed per-layer costs, equal on both, pull the ratio below that.
        // Tolerance: within 15% below the bandwidth ratio, never above it (FLOP peaks are equal).
        let cat = Catalog::embedded().unwrap();
        let bw_ratio = 4.8 / 3.35;
        for stack in ["harness", "datasheet"] {
            let (a, b) = (
                run(&llama70b("h200", stack), &cat),
                run(&llama70b("h100", stack), &cat),
            );
            assert_eq!((a.stack.as_str(), b.stack.as_str()), (stack, stack));
            let r = a.baseline_tokens_per_s / b.baseline_tokens_per_s;
            assert!(
                r > 0.85 * bw_ratio && r <= bw_ratio * (1.0 + 1e-12),
                "{stack}: decode h200/h100 = {r}, bandwidth ratio {bw_ratio}"
            );
            assert!(a.tokens_per_s > b.tokens_per_s, "{stack}");
        }
        let d = llama70b("h100", "harness");
        assert_eq!(Spec::new().stack, "harness");
        assert_eq!(
            d.resolve(&cat).unwrap().params.platform.latency_model,
            "calibrated on h200"
        );
    }

    #[test]
    fn the_stack_picks_the_terms_and_the_gpu_the_hardware() {
        // datasheet on h100 = the catalog's [gpu.latency] of h100; harness on h100 = h200's
        // calibrated terms (stream bandwidth scaled by 3.35/4.8) on h100's peaks. Checked
        // against forward models built by hand (tolerance 1e-12 relative: same arithmetic).
        let cat = Catalog::embedded().unwrap();
        let h100 = cat.gpu("h100").unwrap();
        let arch = cat.llm("llama-3.1-70b").unwrap().clone();
        let base = |terms: &crate::catalog::LatencyDefaults| {
            ForwardModel::new(arch.clone(), HwRates::bf16(h100, terms), None)
                .unwrap()
                .with_tp(2, TpLink::of_gpu(h100))
                .unwrap()
                .forward_s(Shape {
                    batch: 16.0,
                    new_tokens: 1.0,
                    context_tokens: 1024.0,
                })
        };
        let mut harness = *cat.latency("h200").unwrap().for_model(&arch);
        harness.attn_stream_bw_bytes_per_s =
            harness.attn_stream_bw_bytes_per_s.map(|b| b * 3.35 / 4.8);
        for (stack, terms) in [("datasheet", h100.latency), ("harness", harness)] {
            let m = run(&llama70b("h100", stack), &cat);
            let want = 16.0 / base(&terms);
            assert!(
                (m.baseline_tokens_per_s - want).abs() <= 1e-12 * want,
                "{stack}: {} vs {want}",
                m.baseline_tokens_per_s
            );
        }
        // The harness stack is slower than the datasheet guesses (43 µs per layer of fixed cost
        // against 12 µs, unfused element-wise kernels): the stack changes the answer.
        let (h, d) = (
            run(&llama70b("h100", "harness"), &cat),
            run(&llama70b("h100", "datasheet"), &cat),
        );
        assert!(h.baseline_tokens_per_s < 0.9 * d.baseline_tokens_per_s);
        assert_eq!(d.latency_model, "uncalibrated catalog defaults");
        // On h200 the harness stack is the GPU's own calibration, as before stacks existed.
        assert_eq!(
            run(&llama70b("h200", "harness"), &cat).latency_model,
            "calibrated"
        );
    }

    #[test]
    fn min_tp_is_the_smallest_degree_a_forward_evaluation_finds_fitting() {
        // Llama-3.1-70B on 80 GB H100s at batch 16, context 4096 (KV for 8192 tokens per
        // sequence) with a Llama-3.2-1B draft: check the solve against evaluating every degree.
        let cat = Catalog::embedded().unwrap();
        let mut s = llama70b("h100", "harness");
        s.context_tokens = 4096.0;
        s.tp = 1;
        s.solve = Some(Solve::MinTp);
        let (p, tp) = s.min_tp(&cat).unwrap();
        assert_eq!(p.cost.tp(), tp);
        let arch = cat.llm("llama-3.1-70b").unwrap();
        let fits_at = |t: u32| {
            let f = Spec {
                tp: t,
                solve: None,
                ..s.clone()
            };
            analytic(&f.to_params(&cat).unwrap()).unwrap()
        };
        for t in (1..tp).filter(|&t| crate::specdec::latency::tp_divides(arch, t)) {
            assert_eq!(fits_at(t).fits_memory, Some(false), "tp {t}");
        }
        let at = fits_at(tp);
        assert_eq!(at.fits_memory, Some(true));
        assert_eq!(
            tp, 4,
            "70.5 GB of weights + 21.5 GB of KV per GPU at tp 2 do not fit 80 GB"
        );
        // The solved point is the forward evaluation at that degree.
        assert_eq!(
            evaluate(&s.resolve(&cat).unwrap(), Method::Analytic, 0).unwrap(),
            at
        );
        // The search starts at `tp`, and fails with the need when nothing fits.
        s.tp = 8;
        assert_eq!(s.min_tp(&cat).unwrap().1, 8);
        s.batch = 4096;
        s.context_tokens = 100_000.0;
        let e = s.min_tp(&cat).unwrap_err().to_string();
        assert!(e.contains("solve") && e.contains("at tp = 64"), "{e}");
        // No memory footprint for given step times.
        let raw = Spec {
            draft: DraftSpec {
                cost_ratio: Some(0.1),
                alpha: Some(0.8),
                ..DraftSpec::default()
            },
            solve: Some(Solve::MinTp),
            ..Spec::new()
        };
        assert!(raw
            .resolve(&cat)
            .unwrap_err()
            .to_string()
            .contains("min-tp"));
    }
}
