//! The specdec scenario study: grid → [`Spec`] (the front door shared with the CLI) →
//! [`evaluate`] → plots and summary.

use super::spec::{evaluate, Method, Point, Spec};
use super::Metrics;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::report::{LinePlot, Rows, Series};
use crate::scenario::{KeyDoc, RunContext, Study, StudyReport, StudySpec};
use crate::sweep::{par_map, point_seed, Progress};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Keys of a specdec study whose use in a study differs from the flag's: the drafter table
/// (`--draft`, `--exit-layer`, ... on the command line) and `method` (a list in a study).
pub const STUDY_KEYS: &[KeyDoc] = &[
    KeyDoc {
        key: "method",
        flag: Some("--method"),
        value: "analytic|sim, or a list",
        default: "analytic",
        meaning: "analytic (closed form) and/or sim (Monte-Carlo): one row per point and method.",
    },
    KeyDoc {
    key: "draft",
    flag: Some("--draft"),
    value: "table",
    default: "—",
    meaning: "The drafter and its acceptance in one table (on the command line, --draft and the flags below): one of `model` (a name of --draft), `exit_layer`, `cost_ratio`, `draft_step_s`; acceptance as one of `alpha`, `survival`, `conditional`, `acceptance_rate` (+ `rate_gamma`); optional `label` for plots. A sweep axis of tables ranks drafts.",
    },
];

/// Older scenario keys still read: (old, new).
pub const RENAMED_KEYS: &[(&str, &str)] = &[("methods", "method")];

/// A scenario study of speculative decoding.
pub struct SpecdecStudy {
    spec: StudySpec,
    points: Vec<(Spec, Point, toml::Table)>,
    /// Which software stack each GPU of the study uses, whether GPUs share one, and to which
    /// points the measured error applies.
    latency_note: String,
    /// Whether the points use more than one software stack (then plot labels name each).
    mixed_stacks: bool,
}

impl SpecdecStudy {
    /// Builds and validates every grid point.
    ///
    /// # Errors
    /// The first invalid point, naming the study.
    pub fn new(spec: StudySpec, cat: &Catalog) -> Result<Self> {
        let mut points = Vec::with_capacity(spec.len());
        for pt in spec.grid() {
            let ps: Spec = spec.point(&pt)?;
            for m in &ps.method {
                if m != "analytic" && m != "sim" {
                    return Err(Error::range(
                        format!("study '{}'.method", spec.name),
                        m,
                        "analytic or sim",
                    ));
                }
            }
            let params = ps.resolve(cat).map_err(|e| {
                Error::parse(&spec.path, None, format!("study '{}': {e}", spec.name))
            })?;
            points.push((ps, params, pt));
        }
        let latency_note = latency_note(&points, cat);
        let mixed_stacks = stacks_of(&points).len() > 1;
        Ok(SpecdecStudy {
            spec,
            points,
            latency_note,
            mixed_stacks,
        })
    }
}

/// The distinct stack labels of the points (sorted).
fn stacks_of(points: &[(Spec, Point, toml::Table)]) -> Vec<&str> {
    let mut v: Vec<&str> = points
        .iter()
        .map(|p| p.1.params.platform.stack.as_str())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The summary's latency-model paragraph: per (GPU, stack), where the stack terms come from; one
/// line saying whether the GPUs are compared on one footing or the study mixes stacks; and the
/// (GPU, stack) pairs the measured error of `validate` applies to.
fn latency_note(points: &[(Spec, Point, toml::Table)], cat: &Catalog) -> String {
    // (gpu, stack label, latency model, stack as written)
    let mut pairs: Vec<(&str, &str, &str, &str)> = points
        .iter()
        .map(|p| {
            let pl = &p.1.params.platform;
            (
                pl.gpu.as_str(),
                pl.stack.as_str(),
                pl.latency_model.as_str(),
                p.0.stack.as_str(),
            )
        })
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut lines: Vec<String> = pairs
        .iter()
        .map(|(g, st, lm, given)| {
            let from = match cat.stack(given, g) {
                Ok(s) if *st != "none" => s.describe(),
                _ => "step times given, no latency model".to_string(),
            };
            format!("- {g} (latency model: {lm}): stack {from}")
        })
        .collect();
    let stacks = stacks_of(points);
    let mut gpus: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    gpus.dedup();
    if stacks.len() > 1 {
        lines.push(format!(
            "\nThis study mixes software stacks on purpose ({}): differences between its rows are software as well as hardware; plot labels name each row's stack.",
            stacks.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        ));
    } else if gpus.len() > 1 {
        lines.push(format!(
            "\nGPUs compared on one footing: every point uses the `{}` stack, so differences between GPUs are hardware (peaks, bandwidths, memory) only.",
            stacks.first().copied().unwrap_or("none")
        ));
    }
    let measured: Vec<String> = pairs
        .iter()
        .filter(|(_, st, lm, _)| *st == "harness" && *lm == "calibrated")
        .map(|(g, _, _, _)| g.to_string())
        .collect();
    lines.push(if measured.is_empty() {
        "\nNo point of this study is on a (GPU, stack) pair with a measured error: the measured specdec error applies to the harness stack on the GPU it was calibrated on (h200).".to_string()
    } else {
        format!(
            "\nThe measured specdec error (`perfcast validate`, models/calibration/<gpu>-validation.toml) applies only to points on {} with the harness stack.",
            measured.join(", ")
        )
    });
    lines.join("\n")
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
                let methods: Vec<&str> = if ps.method.is_empty() {
                    vec!["analytic"]
                } else {
                    ps.method.iter().map(String::as_str).collect()
                };
                for m in methods {
                    let method = if m == "sim" {
                        Method::Sim
                    } else {
                        Method::Analytic
                    };
                    let r = evaluate(p, method, point_seed(ctx.seed, i as u64))?;
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
            if self.mixed_stacks {
                parts.push(format!("stack={}", m.stack));
            }
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
        let stack_title = match flat.first() {
            Some((m, _)) if !self.mixed_stacks => format!(" (stack: {})", m.stack),
            _ => " (stacks: see legend)".to_string(),
        };
        let mk = |stem: &str,
                  title: &str,
                  y_label: &str,
                  pick: fn(&(f64, f64, f64)) -> f64,
                  log_y: bool| LinePlot {
            stem: format!("{}-{stem}", self.spec.name),
            title: format!("{}: {title}{stack_title}", self.spec.name),
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
            "### {} (specdec, {} points)\n\nLatency model (hardware terms from the GPU, stack terms from the software stack):\n\n{}\n",
            self.spec.name,
            self.points.len(),
            self.latency_note
        );
        // Best configuration per (target, gpu, stack, batch, context): the headline answer. A
        // point that does not fit in GPU memory is never best while one that fits exists.
        let mut best: BTreeMap<(String, String, String, u32, u64), &Metrics> = BTreeMap::new();
        for (m, gpu) in flat.iter().filter(|(m, _)| m.method == "analytic") {
            let gpu = if m.tp > 1 {
                format!("{} ×{} (TP)", gpu, m.tp)
            } else {
                gpu.clone()
            };
            let key = (
                m.target.clone(),
                gpu,
                m.stack.clone(),
                m.batch,
                m.context_tokens.to_bits(),
            );
            let e = best.entry(key).or_insert(m);
            if super::rank_order(m, e).is_lt() {
                *e = m;
            }
        }
        let _ = writeln!(s, "| target | gpu | stack | batch | context | best drafter | γ | tokens/s | speedup | fits memory |");
        let _ = writeln!(s, "|---|---|---|---:|---:|---|---:|---:|---:|---|");

        for ((t, g, st, b, _), m) in &best {
            let _ = writeln!(
                s,
                "| {t} | {g} | {st} | {b} | {} | {} | {} | {:.1} | {:.3} | {} |",
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
            let _ = writeln!(s, "\nSome points need more device memory than one GPU has (`fits_memory = false` in the CSV, per GPU of the tensor-parallel group): they are never ranked best above a point that fits; a row whose best is marked **no** has no fitting point (`solve = \"min-tp\"` finds the smallest tensor-parallel degree that fits).");
        }
        s
    }
}
