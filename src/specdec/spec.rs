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
    SimConfig,
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
fn default_gamma() -> GammaSpec {
    GammaSpec::Word("auto".into())
}

/// One specdec what-if as a user writes it (a scenario grid point; the CLI builds one per
/// `--draft`). Keys follow the CLI flags except where a scenario needs structure: the drafter
/// and its acceptance form one `draft` table, `context_tokens` is `--context`, `sim_steps` is
/// `--steps`; `--method` and `--seed` are the arguments of [`evaluate`].
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
    /// Tensor-parallel degree of the target (the draft model runs replicated, unsplit, on each GPU).
    #[serde(default = "default_tp")]
    pub tp: u32,
    /// Raw target forward time, seconds (overrides the roofline).
    pub target_step_s: Option<f64>,
    /// Methods to evaluate in a scenario: `analytic`, `sim` (default analytic).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Simulated speculation steps.
    pub sim_steps: Option<u64>,
    /// Tokens per simulated request.
    pub gen_tokens: Option<u32>,
}

impl Spec {
    /// A spec with every default (target llama-3.1-8b on h200, γ auto, batch 1, context 1024).
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
            target_step_s: None,
            methods: Vec::new(),
            sim_steps: None,
            gen_tokens: None,
        }
    }

    /// Builds validated [`Params`] using the catalog (and its calibration, when present).
    ///
    /// # Errors
    /// Unknown names, conflicting or missing drafter/acceptance fields, out-of-range numbers.
    pub fn to_params(&self, cat: &Catalog) -> Result<Params> {
        let d = &self.draft;
        let acceptance = self.acceptance()?;
        check::in_closed(
            "context_tokens",
            self.context_tokens,
            0.0,
            check::MAX_CONTEXT_TOKENS,
        )?;
        let gpu = cat.gpu(&self.gpu)?;
        // Each architecture at its own calibrated parameters when it has a refit.
        let lat = cat.latency(&gpu.name)?;
        let target_arch = cat.llm(&self.target)?.clone();
        let hw = HwRates::bf16(gpu, lat.for_model(&target_arch));
        let chai = self
            .chai_clusters
            .clone()
            .map(|c| Chai::new(c, &target_arch))
            .transpose()?;
        let target = ForwardModel::new(target_arch, hw, chai)?
            .with_tp(self.tp, super::TpLink::of_gpu(gpu))?;
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
                        HwRates::bf16(gpu, lat.for_model(&draft_arch)),
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
        let p = Params {
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

    /// Validates the spec against `cat` (and its calibration, when present) and builds what
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
