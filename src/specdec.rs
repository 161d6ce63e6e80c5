//! Speculative decoding: analytic throughput model and Monte-Carlo simulation.
//!
//! A speculation step drafts γ tokens (γ draft forwards of one token each) and verifies them in
//! one target forward over γ + 1 positions; it emits E = 1 + Σ_{i≤γ} S(i) tokens per sequence on
//! average (Leviathan et al. 2023; Chen et al. 2023). Step time is
//! `γ · t_draft(b, 1, c) + t_verify(b, γ + 1, c)` (plus, for a separate draft model, the extra
//! cost of its first forward carrying two tokens: `t_draft(b, 2, c) − t_draft(b, 1, c)`);
//! autoregressive decoding costs
//! `t_target(b, 1, c)` per token. Costs come from the roofline [`latency`] model, from raw
//! per-step times, or from Leviathan's cost ratio.
//!
//! Drafters: a separate draft model, LayerSkip-style early exit (Elhoushi et al. 2024: the draft
//! is the target's first E layers plus its LM head, and verification reuses the drafted
//! prefix's KV, so only layers E..L run over the γ + 1 positions and layers 0..E over the last
//! drafted token), or a raw cost.

pub mod acceptance;
pub mod analytic;
pub mod calib;
pub mod latency;
pub mod request;
pub mod sim;
pub mod solve;
pub mod spec;
pub mod study;

pub use acceptance::{alpha_from_acceptance_rate, Acceptance};
pub use analytic::{analytic, best_gamma, rank};
pub use latency::{Chai, ForwardModel, HwRates, Shape, TpLink};
pub use request::{request_metrics, Request, RequestMetrics};
pub use sim::{simulate, SimConfig};
pub use spec::{evaluate, DraftSpec, GammaSpec, Method, Point, Solve, Spec, MAX_TP};

use crate::check;
use crate::error::{Error, Result};
use serde::Serialize;

/// Largest lookahead the tool accepts.
pub const MAX_GAMMA: u32 = 64;
/// Largest lookahead `--gamma auto` searches.
pub const AUTO_GAMMA_MAX: u32 = 16;

/// How the cost of drafting and verifying is obtained.
// Built once per point and never moved in a hot loop: boxing the models would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum CostModel {
    /// Leviathan et al.'s setting: a draft forward costs `cost_ratio × target_step_s`, and
    /// verification costs one target step regardless of γ.
    Raw {
        /// One target forward (autoregressive step), seconds.
        target_step_s: f64,
        /// One draft forward, seconds.
        draft_step_s: f64,
    },
    /// A separate draft model on the same GPU; both through the roofline model.
    DraftModel {
        /// Target latency model.
        target: ForwardModel,
        /// Draft latency model.
        draft: ForwardModel,
    },
    /// LayerSkip self-speculation: draft = the target's first `exit_layer` layers + LM head.
    EarlyExit {
        /// Target latency model.
        target: ForwardModel,
        /// Exit layer E, 1 ≤ E < L.
        exit_layer: u32,
    },
}

/// Times of one speculation step, seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTimes {
    /// One draft forward of one token per sequence.
    pub draft_step_s: f64,
    /// One verification forward over γ + 1 positions.
    pub verify_step_s: f64,
    /// One autoregressive target forward (the baseline's time per token per sequence).
    pub baseline_step_s: f64,
    /// Fixed extra time per speculation round, seconds: with a separate draft model, the
    /// round's first draft forward carries two tokens, the last verified token and the target's
    /// correction (or bonus) token, since a fully accepted round never fed its last drafted token
    /// to the draft (the validation harness always feeds both). 0 for LayerSkip (the draft shares
    /// the target's cache) and raw costs.
    pub round_extra_s: f64,
}

impl StepTimes {
    /// One speculation round: `γ · draft_step_s + verify_step_s + round_extra_s`, seconds.
    pub fn round_s(&self, gamma: u32) -> f64 {
        f64::from(gamma) * self.draft_step_s + self.verify_step_s + self.round_extra_s
    }
}

impl CostModel {
    /// Raw costs from Leviathan's cost ratio c: draft forward = c × target, verification = 1 target step.
    ///
    /// # Errors
    /// Non-positive step time or a ratio outside [0, 10].
    pub fn from_cost_ratio(cost_ratio: f64, target_step_s: f64) -> Result<Self> {
        check::in_closed("cost_ratio", cost_ratio, 0.0, 10.0)?;
        check::positive("target_step_s", target_step_s)?;
        Ok(CostModel::Raw {
            target_step_s,
            draft_step_s: cost_ratio * target_step_s,
        })
    }

    /// Early-exit drafter with `exit_layer` validated against the target's depth.
    ///
    /// # Errors
    /// `exit_layer` outside [1, L − 1].
    pub fn early_exit(target: ForwardModel, exit_layer: u32) -> Result<Self> {
        let l = target.arch.layers;
        if exit_layer == 0 || exit_layer >= l {
            return Err(Error::range(
                "exit_layer",
                exit_layer,
                format!(
                    "an integer in [1, {}] ({} has {l} layers)",
                    l - 1,
                    target.arch.name
                ),
            ));
        }
        Ok(CostModel::EarlyExit { target, exit_layer })
    }

    /// Step times at batch `b`, lookahead `gamma`, mean context `ctx`.
    pub fn step_times(&self, b: f64, gamma: u32, ctx: f64) -> StepTimes {
        let one = Shape {
            batch: b,
            new_tokens: 1.0,
            context_tokens: ctx,
        };
        let verify_shape = Shape {
            batch: b,
            new_tokens: f64::from(gamma) + 1.0,
            context_tokens: ctx,
        };
        match self {
            CostModel::Raw {
                target_step_s,
                draft_step_s,
            } => StepTimes {
                draft_step_s: *draft_step_s,
                verify_step_s: *target_step_s,
                baseline_step_s: *target_step_s,
                round_extra_s: 0.0,
            },
            CostModel::DraftModel { target, draft } => {
                let draft_step_s = draft.forward_s(one);
                let catch_up = Shape {
                    new_tokens: 2.0,
                    ..one
                };
                StepTimes {
                    draft_step_s,
                    verify_step_s: target.forward_s(verify_shape),
                    baseline_step_s: target.forward_s(one),
                    round_extra_s: draft.forward_s(catch_up) - draft_step_s,
                }
            }
            CostModel::EarlyExit { target, exit_layer } => {
                let l = target.arch.layers;
                let draft = target.layers_s(one, 0, *exit_layer)
                    + target.head_s(one)
                    + target.hw.step_overhead_s;
                let verify = target.layers_s(one, 0, *exit_layer)
                    + target.layers_s(verify_shape, *exit_layer, l)
                    + target.head_s(verify_shape)
                    + target.hw.step_overhead_s;
                StepTimes {
                    draft_step_s: draft,
                    verify_step_s: verify,
                    round_extra_s: 0.0,
                    baseline_step_s: target.forward_s(one),
                }
            }
        }
    }

    /// Prefill of a `prompt_tokens`-token prompt in each of `b` sequences, seconds: one forward
    /// of `b` sequences × `prompt_tokens` new tokens at context 0 through the same latency model
    /// as the decode steps ([`ForwardModel::forward_s`]; at prompt lengths of hundreds of tokens
    /// its linear terms are compute-bound). Returns (target, draft): a separate draft model keeps
    /// its own KV cache, so it prefills the prompt too; a LayerSkip draft shares the target's
    /// cache (0). Both 0 for an empty prompt; None for raw costs (no latency model).
    pub fn prefill_s(&self, b: f64, prompt_tokens: f64) -> Option<(f64, f64)> {
        if prompt_tokens <= 0.0 {
            return match self {
                CostModel::Raw { .. } => None,
                _ => Some((0.0, 0.0)),
            };
        }
        let prompt = Shape {
            batch: b,
            new_tokens: prompt_tokens,
            context_tokens: 0.0,
        };
        match self {
            CostModel::Raw { .. } => None,
            CostModel::DraftModel { target, draft } => {
                Some((target.forward_s(prompt), draft.forward_s(prompt)))
            }
            CostModel::EarlyExit { target, .. } => Some((target.forward_s(prompt), 0.0)),
        }
    }

    /// Tensor-parallel degree of the target (1 for raw costs).
    pub fn tp(&self) -> u32 {
        match self {
            CostModel::Raw { .. } => 1,
            CostModel::DraftModel { target, .. } | CostModel::EarlyExit { target, .. } => target.tp,
        }
    }

    /// Device memory needed by target and draft at `batch` sequences of `max_context` tokens
    /// (None for raw costs).
    pub fn memory_bytes(&self, batch: f64, max_context: f64) -> Option<f64> {
        match self {
            CostModel::Raw { .. } => None,
            CostModel::DraftModel { target, draft } => Some(
                target.memory_bytes(batch, max_context) + draft.memory_bytes(batch, max_context),
            ),
            CostModel::EarlyExit { target, .. } => Some(target.memory_bytes(batch, max_context)),
        }
    }
}

/// Where a point's costs come from, for output labels: the GPU (hardware terms), the software
/// stack (stack terms, [`crate::catalog::stack`]) and how the latency model used them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Platform {
    /// Catalog GPU name (empty when not known).
    pub gpu: String,
    /// Stack label: `harness`, `datasheet`, `file:<path>`, or `none` when the step times were
    /// given and no latency model ran.
    pub stack: String,
    /// `calibrated` (the stack was measured on this GPU), `calibrated on <gpu>` (measured on
    /// another GPU, applied to this one's hardware terms), `uncalibrated catalog defaults`, or
    /// `given step times`.
    pub latency_model: String,
}

impl Platform {
    /// The label of points whose step times were given directly (no latency model).
    pub fn given(gpu: &str) -> Self {
        Platform {
            gpu: gpu.to_string(),
            stack: "none".into(),
            latency_model: "given step times".into(),
        }
    }

    /// The label of points whose costs come from the roofline on `gpu` with `stack`.
    pub fn of(gpu: &str, stack: &crate::catalog::Stack) -> Self {
        let latency_model = match &stack.measured_on {
            None => "uncalibrated catalog defaults".to_string(),
            Some(g) if g == gpu => "calibrated".to_string(),
            Some(g) => format!("calibrated on {g}"),
        };
        Platform {
            gpu: gpu.to_string(),
            stack: stack.name.clone(),
            latency_model,
        }
    }
}

/// Lookahead: a fixed γ or the best γ in 1..=[`AUTO_GAMMA_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gamma {
    /// This γ.
    Fixed(u32),
    /// Search for the γ with the highest tokens/s.
    Auto,
}

/// One speculative-decoding what-if.
#[derive(Debug, Clone)]
pub struct Params {
    /// Label of the drafter for output (`llama-2-7b`, `layerskip:E=16`, `raw`).
    pub draft_name: String,
    /// Label of the target.
    pub target_name: String,
    /// Acceptance model.
    pub acceptance: Acceptance,
    /// Lookahead.
    pub gamma: Gamma,
    /// Sequences decoded together.
    pub batch: u32,
    /// Mean tokens in each sequence's KV cache while decoding.
    pub context_tokens: f64,
    /// Costs.
    pub cost: CostModel,
    /// Device memory of one GPU, bytes (to flag configurations that do not fit).
    pub gpu_memory_bytes: Option<f64>,
    /// GPU, stack and latency model, for output labels.
    pub platform: Platform,
}

impl Params {
    /// Validates the numeric fields.
    ///
    /// # Errors
    /// γ outside [1, 64] or beyond the acceptance curve, batch outside [1, 65536], negative or
    /// NaN context.
    pub fn validate(&self) -> Result<()> {
        if let Gamma::Fixed(g) = self.gamma {
            check::int_in("gamma", i64::from(g), 1, i64::from(MAX_GAMMA))?;
            self.acceptance.check_gamma(g)?;
        }
        check::int_in("batch", i64::from(self.batch), 1, 65536)?;
        check::non_negative("context_tokens", self.context_tokens)?;
        Ok(())
    }

    /// Device memory one GPU needs, bytes: the target's weights and KV cache split over its
    /// tensor-parallel group plus an unsplit draft model's, for `batch` sequences at twice the
    /// mean context (the longest sequence of a batch decoding from 0 to 2·c). None for raw costs.
    pub fn memory_bytes(&self) -> Option<f64> {
        self.cost
            .memory_bytes(f64::from(self.batch), 2.0 * self.context_tokens)
    }

    /// Whether [`Params::memory_bytes`] fits one GPU's memory; None when either is unknown.
    pub fn fits_memory(&self) -> Option<bool> {
        self.memory_bytes()
            .zip(self.gpu_memory_bytes)
            .map(|(m, g)| m <= g)
    }
}

/// The result of one prediction (analytic or simulated). Field names are the JSON contract of
/// `perfcast specdec` (DESIGN.md §5).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metrics {
    /// Target label.
    pub target: String,
    /// Drafter label.
    pub draft: String,
    /// `analytic` or `sim`.
    pub method: &'static str,
    /// Lookahead γ used.
    pub gamma: u32,
    /// i.i.d. acceptance α, when the acceptance model is i.i.d.
    pub alpha: Option<f64>,
    /// Marginal acceptance rate (accepted/drafted) at this γ: what an engine would report.
    pub acceptance_rate: f64,
    /// Sequences per batch.
    pub batch: u32,
    /// Tensor-parallel degree of the target (1 for raw costs).
    pub tp: u32,
    /// Mean context tokens.
    pub context_tokens: f64,
    /// Tokens emitted per sequence per speculation step (expected, or measured in simulation).
    pub expected_tokens_per_step: f64,
    /// One draft forward, seconds.
    pub draft_step_s: f64,
    /// One verification forward, seconds.
    pub verify_step_s: f64,
    /// One speculation step: γ · draft_step_s + verify_step_s + the round's fixed extra
    /// ([`StepTimes::round_extra_s`]), seconds.
    pub step_s: f64,
    /// Tokens per second over the whole batch.
    pub tokens_per_s: f64,
    /// Autoregressive tokens per second over the whole batch.
    pub baseline_tokens_per_s: f64,
    /// tokens_per_s / baseline_tokens_per_s.
    pub speedup: f64,
    /// Device memory one GPU needs (target weights and KV cache at 2 × context split over the
    /// tensor-parallel group, plus an unsplit draft's), bytes; None for raw costs
    /// ([`Params::memory_bytes`]).
    pub memory_bytes: Option<f64>,
    /// Whether `memory_bytes` fits the GPU; None when unknown.
    pub fits_memory: Option<bool>,
    /// Median per-token latency (simulation only), seconds.
    pub p50_token_latency_s: Option<f64>,
    /// 90th-percentile per-token latency (simulation only), seconds.
    pub p90_token_latency_s: Option<f64>,
    /// 99th-percentile per-token latency (simulation only), seconds.
    pub p99_token_latency_s: Option<f64>,
    /// Seed of the simulation's random draws.
    pub seed: Option<u64>,
    /// Catalog GPU (hardware terms: peaks, bandwidths, memory).
    pub gpu: String,
    /// Software stack whose terms the latency model used (`harness`, `datasheet`,
    /// `file:<path>`; `none` for given step times): see [`crate::catalog::stack`].
    pub stack: String,
    /// How the costs were obtained: `calibrated` (stack measured on this GPU), `calibrated on
    /// <gpu>` (stack measured on another GPU), `uncalibrated catalog defaults`, or `given step
    /// times`.
    pub latency_model: String,
}

/// Orders rankings: points that fit in GPU memory (or whose memory is unknown) before points
/// that do not, each group by tokens/s, highest first. A point that does not fit is never
/// ranked above one that does.
pub fn rank_order(a: &Metrics, b: &Metrics) -> std::cmp::Ordering {
    let fits = |m: &Metrics| m.fits_memory != Some(false);
    fits(b)
        .cmp(&fits(a))
        .then(b.tokens_per_s.total_cmp(&a.tokens_per_s))
}
