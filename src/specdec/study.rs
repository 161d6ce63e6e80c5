//! The specdec point specification (shared by the CLI and scenarios) and the scenario study.

use super::{
    analytic, simulate, Acceptance, Chai, CostModel, ForwardModel, Gamma, HwRates, Metrics, Params,
    SimConfig,
};
use crate::catalog::Catalog;
use crate::check;
use crate::error::{Error, Result};
use crate::report::{LinePlot, Rows, Series};
use crate::scenario::{RunContext, Study, StudyReport, StudySpec};
use crate::sweep::{par_map, point_seed, Progress};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

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

/// One point as a user writes it (CLI flags or a scenario grid point).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PointSpec {
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

impl PointSpec {
    /// A spec with every default (target llama-3.1-8b on h200, γ auto, batch 1, context 1024).
    pub fn new() -> Self {
        PointSpec {
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
        check::non_negative("context_tokens", self.context_tokens)?;
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

    /// Simulation settings of this point.
    ///
    /// # Errors
    /// `sim_steps` or `gen_tokens` of 0 or too large.
    pub fn sim_config(&self, seed: u64) -> Result<SimConfig> {
        let d = SimConfig::default();
        let steps = check::int_in(
            "sim_steps",
            self.sim_steps.unwrap_or(d.steps) as i64,
            1,
            100_000_000,
        )? as u64;
        let gen = check::int_in(
            "gen_tokens",
            i64::from(self.gen_tokens.unwrap_or(d.gen_tokens)),
            1,
            1_000_000,
        )? as u32;
        Ok(SimConfig {
            steps,
            gen_tokens: gen,
            seed,
        })
    }
}

impl Default for PointSpec {
    fn default() -> Self {
        Self::new()
    }
}

/// A scenario study of speculative decoding.
pub struct SpecdecStudy {
    spec: StudySpec,
    points: Vec<(PointSpec, Params, toml::Table)>,
    /// Which latency parameters each GPU of the study uses (calibrated or catalog defaults).
    latency_note: String,
}

impl SpecdecStudy {
    /// Builds and validates every grid point.
    ///
    /// # Errors
    /// The first invalid point, naming the study.
    pub fn new(spec: StudySpec, cat: &Catalog) -> Result<Self> {
        let mut points = Vec::with_capacity(spec.len());
        for pt in spec.grid() {
            let ps: PointSpec = spec.point(&pt)?;
            for m in &ps.methods {
                if m != "analytic" && m != "sim" {
                    return Err(Error::range(
                        format!("study '{}'.methods", spec.name),
                        m,
                        "analytic or sim",
                    ));
                }
            }
            let params = ps.to_params(cat).map_err(|e| {
                Error::parse(&spec.path, None, format!("study '{}': {e}", spec.name))
            })?;
            points.push((ps, params, pt));
        }
        let mut gpus: Vec<&str> = points.iter().map(|p| p.0.gpu.as_str()).collect();
        gpus.sort_unstable();
        gpus.dedup();
        let latency_note = gpus
            .iter()
            .map(|g| {
                if cat.is_calibrated(g) {
                    format!("{g}: calibrated (models/calibration/{g}.toml, fitted to the perfcast-gpu harness's forward latencies: it describes that software stack)")
                } else {
                    format!("{g}: uncalibrated catalog defaults (datasheet peaks × assumed efficiencies)")
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        Ok(SpecdecStudy {
            spec,
            points,
            latency_note,
        })
    }
}

impl Study for SpecdecStudy {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn technique(&self) -> &'static str {
        "specdec"
    }
    fn points(&self) -> usize {
        self.points.len()
    }

    fn run(&self, ctx: &RunContext) -> Result<StudyReport> {
        let progress = Progress::new(self.points.len() as u64, &self.spec.name, ctx.progress);
        let results: Vec<Vec<(Metrics, String)>> =
            par_map(&self.points, &progress, |i, (ps, p, _)| {
                let mut out = Vec::new();
                let methods: Vec<&str> = if ps.methods.is_empty() {
                    vec!["analytic"]
                } else {
                    ps.methods.iter().map(String::as_str).collect()
                };
                for m in methods {
                    let r = match m {
                        "sim" => simulate(p, ps.sim_config(point_seed(ctx.seed, i as u64))?)?,
                        _ => analytic(p)?,
                    };
                    out.push((r, ps.gpu.clone()));
                }
                Ok(out)
            })?;
        progress.finish();
        let flat: Vec<(Metrics, String)> = results.into_iter().flatten().collect();
        let mut rows = Rows::default();
        for (m, gpu) in &flat {
            let mut r = serde_json::Map::new();
            r.insert("study".into(), self.spec.name.clone().into());
            r.insert("gpu".into(), gpu.clone().into());
            if let Ok(serde_json::Value::Object(o)) = serde_json::to_value(m) {
                r.extend(o);
            }
            rows.records.push(r);
        }
        Ok(StudyReport {
            plots: self.plots(&flat),
            summary_md: self.summary(&flat),
            rows,
        })
    }
}

impl SpecdecStudy {
    /// x axis: the first swept numeric axis among gamma, batch, context_tokens (else gamma).
    fn x_axis(&self) -> &'static str {
        let swept = self.spec.swept();
        ["gamma", "batch", "context_tokens"]
            .into_iter()
            .find(|a| swept.contains(a))
            .unwrap_or("gamma")
    }

    fn plots(&self, flat: &[(Metrics, String)]) -> Vec<LinePlot> {
        let x_axis = self.x_axis();
        let xval = |m: &Metrics| match x_axis {
            "batch" => f64::from(m.batch),
            "context_tokens" => m.context_tokens,
            _ => f64::from(m.gamma),
        };
        let swept = self.spec.swept();
        let has_analytic = flat.iter().any(|(m, _)| m.method == "analytic");
        let label = |m: &Metrics, gpu: &str| {
            let mut parts = vec![];
            if swept.contains(&"target") {
                parts.push(m.target.clone());
            }
            if swept.contains(&"gpu") {
                parts.push(gpu.to_string());
            }
            parts.push(m.draft.clone());
            if x_axis != "batch" && swept.contains(&"batch") {
                parts.push(format!("b={}", m.batch));
            }
            if x_axis != "context_tokens" && swept.contains(&"context_tokens") {
                parts.push(format!("ctx={}", m.context_tokens));
            }
            if !has_analytic {
                parts.push(m.method.to_string());
            }
            parts.join(" ")
        };
        let mut by: BTreeMap<String, Vec<(f64, f64, f64)>> = BTreeMap::new();
        // Simulation agrees with the closed form (see summary); plot the analytic lines only when
        // both were evaluated, so the legend stays readable.
        for (m, gpu) in flat
            .iter()
            .filter(|(m, _)| !has_analytic || m.method == "analytic")
        {
            by.entry(label(m, gpu))
                .or_default()
                .push((xval(m), m.speedup, m.tokens_per_s));
        }
        let x_label = match x_axis {
            "batch" => "batch size (sequences)",
            "context_tokens" => "context (tokens)",
            _ => "lookahead γ (draft tokens per step)",
        };
        let mk = |stem: &str,
                  title: &str,
                  y_label: &str,
                  pick: fn(&(f64, f64, f64)) -> f64,
                  log_y: bool| LinePlot {
            stem: format!("{}-{stem}", self.spec.name),
            title: format!("{}: {title}", self.spec.name),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_x: x_axis != "gamma",
            log_y,
            series: by
                .iter()
                .map(|(k, v)| {
                    let mut pts: Vec<(f64, f64)> = v.iter().map(|t| (t.0, pick(t))).collect();
                    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Series {
                        name: k.clone(),
                        points: pts,
                    }
                })
                .collect(),
        };
        vec![
            mk(
                "speedup",
                "speedup over autoregressive decoding",
                "speedup (×)",
                |t| t.1,
                false,
            ),
            mk(
                "tokens_per_s",
                "throughput",
                "throughput (tokens/s, whole batch)",
                |t| t.2,
                true,
            ),
        ]
    }

    fn summary(&self, flat: &[(Metrics, String)]) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "### {} (specdec, {} points)\n\nLatency model: {}.\n",
            self.spec.name,
            self.points.len(),
            self.latency_note
        );
        // Best configuration per (target, gpu, batch, context): the headline answer.
        let mut best: BTreeMap<(String, String, u32, u64), &Metrics> = BTreeMap::new();
        for (m, gpu) in flat.iter().filter(|(m, _)| m.method == "analytic") {
            let gpu = if m.tp > 1 {
                format!("{} ×{} (TP)", gpu, m.tp)
            } else {
                gpu.clone()
            };
            let key = (m.target.clone(), gpu, m.batch, m.context_tokens.to_bits());
            let e = best.entry(key).or_insert(m);
            if m.tokens_per_s > e.tokens_per_s {
                *e = m;
            }
        }
        let _ = writeln!(s, "| target | gpu | batch | context | best drafter | γ | tokens/s | speedup | fits memory |");
        let _ = writeln!(s, "|---|---|---:|---:|---|---:|---:|---:|---|");

        for ((t, g, b, _), m) in &best {
            let _ = writeln!(
                s,
                "| {t} | {g} | {b} | {} | {} | {} | {:.1} | {:.3} | {} |",
                m.context_tokens,
                m.draft,
                m.gamma,
                m.tokens_per_s,
                m.speedup,
                m.fits_memory
                    .map(|f| if f { "yes" } else { "**no**" })
                    .unwrap_or("n/a")
            );
        }
        let sims: Vec<&Metrics> = flat
            .iter()
            .filter(|(m, _)| m.method == "sim")
            .map(|(m, _)| m)
            .collect();
        if !sims.is_empty() {
            let mut worst = 0.0_f64;
            for sm in &sims {
                if let Some((am, _)) = flat.iter().find(|(a, _)| {
                    a.method == "analytic"
                        && a.draft == sm.draft
                        && a.gamma == sm.gamma
                        && a.batch == sm.batch
                        && a.context_tokens == sm.context_tokens
                        && a.target == sm.target
                }) {
                    worst = worst.max((sm.tokens_per_s - am.tokens_per_s).abs() / am.tokens_per_s);
                }
            }
            let _ = writeln!(s, "\nMonte-Carlo vs analytic: largest tokens/s gap {:.2}% over {} simulated points (seeds in the CSV).", worst * 100.0, sims.len());
        }
        if flat.iter().any(|(m, _)| m.fits_memory == Some(false)) {
            let _ = writeln!(s, "\nSome points need more device memory than one GPU has (`fits_memory = false` in the CSV): they describe a larger or multi-GPU deployment.");
        }
        s
    }
}
