//! `perfcast specdec`: one speculative-decoding what-if, or a ranking of drafts.

use super::{Globals, Outcome};
use clap::Args;
use perfcast::report::{print_records, Rows};
use perfcast::specdec::solve;
use perfcast::specdec::{
    evaluate, rank_order, request_metrics, DraftSpec, GammaSpec, Method, Request, Solve, Spec,
};
use perfcast::{Error, Result};

/// Arguments of `specdec`.
#[derive(Debug, Args)]
pub struct SpecdecArgs {
    /// Target model (catalog name).
    #[arg(long, default_value = "llama-3.1-8b")]
    pub target: String,
    /// GPU (catalog name): the hardware terms (bf16 peak, HBM and NVLink bandwidth, memory).
    #[arg(long, default_value = "h200")]
    pub gpu: String,
    /// Software stack: the latency model's kernel efficiencies and fixed overheads, applied to
    /// the GPU's hardware terms. `harness` = the perfcast-gpu validation harness as calibrated
    /// (on the GPU itself when it has a calibration, else on the h200; its measured error applies
    /// to the h200 only); `datasheet` = the catalog's assumed defaults; or a TOML file in the
    /// calibration format (models/calibration/README.md). Every GPU gets the same stack, so GPUs
    /// are compared on one footing; the output's `stack` and `latency_model` say which was used.
    #[arg(long, default_value = "harness")]
    pub stack: String,
    /// Solve instead of taking as given. `min-tp`: the smallest tensor-parallel degree (≥ --tp,
    /// dividing the target's heads) at which target weights + KV cache (split over the group) +
    /// the unsplit draft fit one GPU's memory at --batch and twice --context; the output's `tp`
    /// is the answer. Needs a catalog --draft or --exit-layer. `min-alpha`: the smallest i.i.d.
    /// α reaching --target-speedup, per drafter (bisection to --solve-tolerance; any given
    /// acceptance is ignored). `best-draft`: the --draft × γ (1..=16, or the fixed --gamma) with
    /// the most tokens/s whose memory per GPU fits --memory-budget-gb (exhaustive, exact).
    #[arg(long, value_enum)]
    pub solve: Option<Solve>,
    /// Target decode speedup of `--solve min-alpha` (tokens/s over autoregressive tokens/s).
    #[arg(long, value_name = "SPEEDUP")]
    pub target_speedup: Option<f64>,
    /// Absolute tolerance on α of `--solve min-alpha`, in [1e-9, 0.1].
    #[arg(long, default_value_t = 1e-4)]
    pub solve_tolerance: f64,
    /// Memory budget per GPU of `--solve best-draft`, GB (10^9 bytes; default: the GPU's memory).
    #[arg(long, value_name = "GB")]
    pub memory_budget_gb: Option<f64>,
    /// Draft model(s), comma separated; several give a ranking: configurations that fit in GPU
    /// memory first, each group sorted by tokens/s.
    #[arg(long, value_delimiter = ',')]
    pub draft: Vec<String>,
    /// LayerSkip self-speculation: exit after this many target layers.
    #[arg(long)]
    pub exit_layer: Option<u32>,
    /// Leviathan's cost ratio c: draft forward = c × target forward; verification = one target forward.
    #[arg(long)]
    pub cost_ratio: Option<f64>,
    /// Raw draft forward time, seconds.
    #[arg(long)]
    pub draft_step_s: Option<f64>,
    /// Raw target forward time, seconds (with --cost-ratio or --draft-step-s).
    #[arg(long)]
    pub target_step_s: Option<f64>,
    /// i.i.d. acceptance α; one value, or one per draft.
    #[arg(long, value_delimiter = ',')]
    pub alpha: Vec<f64>,
    /// Survival curve S(1),S(2),...: P(at least i drafted tokens accepted).
    #[arg(long, value_delimiter = ',')]
    pub survival: Vec<f64>,
    /// Conditional per-position acceptance rates r(1),r(2),...
    #[arg(long, value_delimiter = ',')]
    pub conditional: Vec<f64>,
    /// An engine's marginal acceptance rate (accepted/drafted), converted to α (needs --rate-gamma).
    #[arg(long)]
    pub acceptance_rate: Option<f64>,
    /// γ at which --acceptance-rate was measured.
    #[arg(long)]
    pub rate_gamma: Option<u32>,
    /// Lookahead γ (1..=64) or `auto` (best in 1..=16).
    #[arg(long, default_value = "auto")]
    pub gamma: String,
    /// Sequences per batch.
    #[arg(long, default_value_t = 1)]
    pub batch: u32,
    /// Mean context tokens while decoding, in [0, 10^8].
    #[arg(long, visible_alias = "context", default_value_t = 1024.0)]
    pub context_tokens: f64,
    /// CHAI clusters per layer: one count, or one per target layer (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub chai_clusters: Vec<u32>,
    /// Tensor-parallel degree of the target (GPUs it is split over; the draft runs unsplit).
    #[arg(long, default_value_t = 1)]
    pub tp: u32,
    /// analytic (closed form) or sim (Monte-Carlo).
    #[arg(long, value_enum, default_value_t = Method::Analytic)]
    pub method: Method,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Simulated speculation steps (with --method sim).
    #[arg(long, visible_alias = "steps")]
    pub sim_steps: Option<u64>,
    /// Tokens per simulated request.
    #[arg(long)]
    pub gen_tokens: Option<u32>,
    /// Prompt tokens per sequence of one request, in [0, 10^8]: adds request-level metrics
    /// (prefill_s, ttft_s, request_s, baseline_request_s, request_speedup) including the
    /// prompt's prefill, which speculation does not speed up. Needs --output-tokens.
    #[arg(long)]
    pub prompt_tokens: Option<u64>,
    /// Generated tokens per sequence of one request, in [1, 10^8] (with --prompt-tokens).
    #[arg(long)]
    pub output_tokens: Option<u64>,
    /// Given prefill time of the prompt over the batch, seconds (with --prompt-tokens, for raw
    /// step costs only: --cost-ratio or --draft-step-s; otherwise the latency model computes it).
    #[arg(long)]
    pub prefill_s: Option<f64>,
}

fn gamma_spec(s: &str) -> GammaSpec {
    match s.parse::<i64>() {
        Ok(n) => GammaSpec::Fixed(n),
        Err(_) => GammaSpec::Word(s.to_string()),
    }
}

impl SpecdecArgs {
    /// One point spec per draft (one when no `--draft` list).
    fn specs(&self) -> Result<Vec<Spec>> {
        let acceptance = |alpha: Option<f64>| DraftSpec {
            alpha,
            survival: (!self.survival.is_empty()).then(|| self.survival.clone()),
            conditional: (!self.conditional.is_empty()).then(|| self.conditional.clone()),
            acceptance_rate: self.acceptance_rate,
            rate_gamma: self.rate_gamma,
            ..DraftSpec::default()
        };
        let base = Spec {
            target: self.target.clone(),
            gpu: self.gpu.clone(),
            gamma: gamma_spec(&self.gamma),
            batch: self.batch,
            context_tokens: self.context_tokens,
            chai_clusters: (!self.chai_clusters.is_empty()).then(|| self.chai_clusters.clone()),
            tp: self.tp,
            stack: self.stack.clone(),
            solve: self.solve,
            target_step_s: self.target_step_s,
            sim_steps: self.sim_steps,
            gen_tokens: self.gen_tokens,
            ..Spec::new()
        };
        if self.draft.is_empty() {
            if self.alpha.len() > 1 {
                return Err(Error::range(
                    "--alpha",
                    format!("{} values", self.alpha.len()),
                    "one value unless several --draft models are given",
                ));
            }
            let mut d = acceptance(self.alpha.first().copied());
            d.exit_layer = self.exit_layer;
            d.cost_ratio = self.cost_ratio;
            d.draft_step_s = self.draft_step_s;
            if d.exit_layer.is_none() && d.cost_ratio.is_none() && d.draft_step_s.is_none() {
                return Err(Error::range(
                    "--draft",
                    "missing",
                    "given: one of --draft, --exit-layer, --cost-ratio, --draft-step-s",
                ));
            }
            return Ok(vec![Spec { draft: d, ..base }]);
        }
        if self.exit_layer.is_some() || self.cost_ratio.is_some() || self.draft_step_s.is_some() {
            return Err(Error::range(
                "--draft",
                self.draft.join(","),
                "not combined with --exit-layer, --cost-ratio or --draft-step-s",
            ));
        }
        if self.alpha.len() > 1 && self.alpha.len() != self.draft.len() {
            return Err(Error::range(
                "--alpha",
                format!("{} values", self.alpha.len()),
                format!("1 value or one per draft ({})", self.draft.len()),
            ));
        }
        Ok(self
            .draft
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let alpha = self.alpha.get(i).or(self.alpha.first()).copied();
                let mut d = acceptance(alpha);
                d.model = Some(m.clone());
                Spec {
                    draft: d,
                    ..base.clone()
                }
            })
            .collect())
    }
}

/// Runs `specdec`: clap → one [`Spec`] per draft → [`evaluate`] → print (several drafts: a
/// ranking, fitting configurations first, then by tokens/s).
///
/// # Errors
/// Any validation error of the flags (one line naming the field and the allowed range).
pub fn exec(a: SpecdecArgs, g: &Globals) -> Result<Outcome> {
    // The simulation settings mean nothing to the closed form: refuse them rather than ignore.
    if a.method == Method::Analytic {
        let sim_only = [
            ("--sim-steps", a.sim_steps.map(|v| v.to_string())),
            ("--gen-tokens", a.gen_tokens.map(|v| v.to_string())),
        ];
        for (flag, v) in sim_only {
            if let Some(v) = v {
                return Err(Error::range(
                    flag,
                    v,
                    "given only with --method sim (the closed form does not simulate)",
                ));
            }
        }
    }
    let specs = a.specs()?;
    if solve::is_inverse(a.solve) {
        return inverse(&a, &specs, g);
    }
    for (flag, given) in [
        ("--target-speedup", a.target_speedup.is_some()),
        ("--memory-budget-gb", a.memory_budget_gb.is_some()),
    ] {
        if given {
            return Err(Error::range(
                flag,
                "given",
                "only with --solve min-alpha (--target-speedup) or best-draft (--memory-budget-gb)",
            ));
        }
    }
    let points = specs
        .iter()
        .map(|s| s.resolve(&g.catalog))
        .collect::<Result<Vec<_>>>()?;
    let request = match (a.prompt_tokens, a.output_tokens) {
        (Some(prompt_tokens), Some(output_tokens)) => Some(Request {
            prompt_tokens,
            output_tokens,
            prefill_s: a.prefill_s,
        }),
        (None, None) if a.prefill_s.is_none() => None,
        (None, None) => {
            return Err(Error::range(
                "--prefill-s",
                perfcast::check::show(a.prefill_s.unwrap_or(f64::NAN)),
                "given only with --prompt-tokens and --output-tokens",
            ))
        }
        (Some(_), None) => {
            return Err(Error::range(
                "--output-tokens",
                "missing",
                "given with --prompt-tokens (both or neither)",
            ))
        }
        (None, Some(_)) => {
            return Err(Error::range(
                "--prompt-tokens",
                "missing",
                "given with --output-tokens (both or neither)",
            ))
        }
    };
    // Each point's decode metrics and, with --prompt-tokens, its request metrics.
    let mut pairs = points
        .iter()
        .map(|p| {
            let m = evaluate(p, a.method, a.seed)?;
            let r = request
                .map(|r| request_metrics(&p.params, &m, &r))
                .transpose()?;
            Ok((m, r))
        })
        .collect::<Result<Vec<_>>>()?;
    pairs.sort_by(|x, y| rank_order(&x.0, &y.0));
    let metrics: Vec<_> = pairs.iter().map(|(m, _)| m.clone()).collect();
    let mut rows = Rows::from_serialize(&metrics);
    for (row, (_, r)) in rows.records.iter_mut().zip(&pairs) {
        if let Some(serde_json::Value::Object(extra)) =
            r.as_ref().and_then(|r| serde_json::to_value(r).ok())
        {
            row.extend(extra);
        }
    }
    perfcast::specdec::calib::annotate_specdec(&mut rows, &g.catalog);
    Ok(Outcome::ok(print_records(
        &rows,
        g.format,
        metrics.len() > 1,
    )))
}

/// `--solve min-alpha` (one row per drafter) or `--solve best-draft` (one row): the forward row at
/// the answer plus the solve's fields ([`solve::AlphaSolved::extra`], [`solve::DraftSolved::extra`]).
fn inverse(a: &SpecdecArgs, specs: &[Spec], g: &Globals) -> Result<Outcome> {
    if a.method != Method::Analytic {
        return Err(Error::range(
            "--method",
            "sim",
            "analytic with --solve min-alpha or best-draft (they solve the closed form)",
        ));
    }
    let mut rows;
    if a.solve == Some(Solve::MinAlpha) {
        let target = a.target_speedup.ok_or_else(|| {
            Error::range(
                "--target-speedup",
                "missing",
                "given with --solve min-alpha (a speedup > 0)",
            )
        })?;
        let solved = specs
            .iter()
            .map(|s| solve::min_alpha(s, &g.catalog, target, a.solve_tolerance))
            .collect::<Result<Vec<_>>>()?;
        let metrics: Vec<_> = solved.iter().map(|s| s.metrics.clone()).collect();
        rows = Rows::from_serialize(&metrics);
        for (r, s) in rows.records.iter_mut().zip(&solved) {
            r.extend(s.extra());
        }
    } else {
        let budget = a.memory_budget_gb.map(|gb| gb * 1e9);
        let s = solve::best_draft(specs, &g.catalog, budget)?;
        rows = Rows::from_serialize(std::slice::from_ref(&s.metrics));
        rows.records[0].extend(s.extra());
    }
    perfcast::specdec::calib::annotate_specdec(&mut rows, &g.catalog);
    let many = rows.records.len() > 1;
    Ok(Outcome::ok(print_records(&rows, g.format, many)))
}
