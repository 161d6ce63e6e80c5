//! The gradcomp scenario study: workers × bandwidth × method sweeps with break-even bandwidths.
//!
//! Every grid point is a [`Spec`] (the CLI flags as snake_case keys), evaluated through
//! [`evaluate`] like `perfcast gradcomp`. Study-only keys:
//! `predictor` (as `--predictor`: `sim`, `analytic` or a list; default both) and `break_even_range_gbps`
//! (`[lo, hi]`, default `[0.1, 10000]`). Output: one row per point × predictor with the
//! [`Metrics`] and `break_even_gbps` (the node bandwidth below which the method beats the baseline,
//! empty when it never crosses in the range), plots of step time and speedup against bandwidth and
//! of scaling efficiency against workers, and a summary table of break-even bandwidths per method
//! and worker count.

use super::spec::{evaluate, Params, Spec};
use super::{Metrics, Predictor};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::report::{LinePlot, Rows, Series};
use crate::scenario::{KeyDoc, RunContext, Study, StudyReport, StudySpec};
use crate::sweep::{par_map, Progress};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Scenario keys of a gradcomp study that are not fields of [`Spec`].
pub const STUDY_KEYS: &[KeyDoc] = &[
    KeyDoc {
        key: "predictor",
        flag: Some("--predictor"),
        value: "sim|analytic or a list",
        default: "[\"sim\", \"analytic\"]",
        meaning: "Predictors evaluated at every point (one row each); fixed, not a sweep axis.",
    },
    KeyDoc {
        key: "break_even_range_gbps",
        flag: None,
        value: "[lo, hi]",
        default: "[0.1, 10000]",
        meaning: "Node bandwidths (Gb/s) searched for the break-even bandwidth of each method against `baseline`.",
    },
];

/// Older scenario keys still read: (old, new).
pub const RENAMED_KEYS: &[(&str, &str)] = &[("predictors", "predictor")];

/// A gradcomp study ready to run (all points validated).
pub struct GradcompStudy {
    spec: StudySpec,
    points: Vec<Params>,
    predictors: Vec<Predictor>,
}

#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    m: Metrics,
    break_even_gbps: Option<f64>,
    /// Two-phase run time of a low-rank model (full-rank warm-up, then low rank), seconds.
    run_s: Option<f64>,
    /// The same run with the full-rank model throughout (same method), seconds.
    full_rank_run_s: Option<f64>,
}

impl GradcompStudy {
    /// Validates every point of `spec`.
    ///
    /// # Errors
    /// The first invalid point's error, prefixed with the study name.
    pub fn new(mut spec: StudySpec, cat: &Catalog) -> Result<Self> {
        let field = |k: &str| format!("study '{}'.{k}", spec.name);
        // `predictor`, as the CLI flag `--predictor` (one or a list; the older key `predictors`
        // is accepted).
        let given = match spec.fixed.remove("predictor") {
            Some(v) => Some(v),
            None => spec.fixed.remove("predictors"),
        };
        let predictors = match given {
            None => vec![Predictor::Sim, Predictor::Analytic],
            Some(toml::Value::String(s)) => vec![Predictor::parse(&s)?],
            Some(toml::Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Predictor::parse(s),
                    other => Err(Error::range(
                        field("predictor"),
                        other,
                        "'sim', 'analytic' or a list of them",
                    )),
                })
                .collect::<Result<Vec<_>>>()?,
            Some(v) => {
                return Err(Error::range(
                    field("predictor"),
                    v,
                    "'sim', 'analytic' or a non-empty list of them",
                ))
            }
        };
        let range = match spec.fixed.remove("break_even_range_gbps") {
            None => (0.1, 10_000.0),
            Some(toml::Value::Array(a)) if a.len() == 2 => {
                let f = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
                match (f(&a[0]), f(&a[1])) {
                    (Some(lo), Some(hi)) if lo > 0.0 && hi > lo && hi.is_finite() => (lo, hi),
                    _ => {
                        return Err(Error::range(
                            field("break_even_range_gbps"),
                            format!("{a:?}"),
                            "[lo, hi] with 0 < lo < hi",
                        ))
                    }
                }
            }
            Some(v) => {
                return Err(Error::range(
                    field("break_even_range_gbps"),
                    v,
                    "[lo, hi] with 0 < lo < hi",
                ))
            }
        };
        let points = spec
            .grid()
            .iter()
            .map(|p| {
                let point: Spec = spec.point(p)?;
                let mut params = point.resolve(cat).map_err(|e| {
                    Error::parse(&spec.path, None, format!("study '{}': {e}", spec.name))
                })?;
                params.break_even = Some(range);
                Ok(params)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GradcompStudy {
            spec,
            points,
            predictors,
        })
    }
}

impl Study for GradcompStudy {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn technique(&self) -> &'static str {
        "gradcomp"
    }

    fn points(&self) -> usize {
        self.points.len()
    }

    fn run(&self, ctx: &RunContext) -> Result<StudyReport> {
        // One front door: every point × predictor through `evaluate` (metrics, break-even,
        // two-phase low-rank run time).
        let jobs: Vec<(usize, Predictor)> = (0..self.points.len())
            .flat_map(|i| self.predictors.iter().map(move |&p| (i, p)))
            .collect();
        let progress = Progress::new(
            jobs.len() as u64,
            &format!("gradcomp {}", self.spec.name),
            ctx.progress,
        );
        let rows = par_map(&jobs, &progress, |_, &(i, pr)| {
            let r = evaluate(&self.points[i], pr, ctx.seed)?;
            Ok(Row {
                break_even_gbps: r.break_even_gbps.flatten(),
                run_s: r.run.as_ref().map(|t| t.run_s),
                full_rank_run_s: r.run.as_ref().map(|t| t.full_rank_run_s),
                m: r.metrics,
            })
        })?;
        let plots = plots(&self.spec.name, &rows);
        let summary_md = summary(&self.spec.name, &rows);
        Ok(StudyReport {
            rows: Rows::from_serialize(&rows),
            plots,
            summary_md,
        })
    }
}

fn plots(name: &str, rows: &[Row]) -> Vec<LinePlot> {
    let main = rows
        .first()
        .map(|r| r.m.predictor)
        .unwrap_or(Predictor::Sim);
    let rows: Vec<&Row> = rows.iter().filter(|r| r.m.predictor == main).collect();
    let max_workers = rows.iter().map(|r| r.m.workers).max().unwrap_or(1);
    // Scaling efficiency is shown at the median swept bandwidth.
    let mut bws: Vec<f64> = rows.iter().map(|r| r.m.inter_node_gbps).collect();
    bws.sort_by(f64::total_cmp);
    bws.dedup();
    let mid_bw = bws.get(bws.len() / 2).copied().unwrap_or(0.0);
    let mut step: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut speed: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut eff: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in &rows {
        let label = if r.m.lowrank == "none" {
            format!("{} ({})", r.m.method, r.m.model)
        } else {
            format!("{} + {} ({})", r.m.method, r.m.lowrank, r.m.model)
        };
        if r.m.workers == max_workers {
            step.entry(label.clone())
                .or_default()
                .push((r.m.inter_node_gbps, r.m.step_s));
            speed
                .entry(label.clone())
                .or_default()
                .push((r.m.inter_node_gbps, r.m.speedup_vs_baseline));
        }
        if r.m.inter_node_gbps == mid_bw {
            eff.entry(label)
                .or_default()
                .push((r.m.workers as f64, r.m.scaling_efficiency));
        }
    }
    let series = |m: BTreeMap<String, Vec<(f64, f64)>>| {
        m.into_iter()
            .map(|(name, mut points)| {
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                points.dedup_by(|a, b| a.0 == b.0);
                Series { name, points }
            })
            .collect::<Vec<_>>()
    };
    vec![
        LinePlot {
            stem: format!("{name}-step-vs-bandwidth"),
            title: format!("DDP step time vs node bandwidth ({max_workers} GPUs, {main:?})"),
            x_label: "node bandwidth (Gb/s)".into(),
            y_label: "step time (s)".into(),
            log_x: true,
            log_y: true,
            series: series(step),
        },
        LinePlot {
            stem: format!("{name}-speedup-vs-bandwidth"),
            title: format!("speedup vs baseline ({max_workers} GPUs)"),
            x_label: "node bandwidth (Gb/s)".into(),
            y_label: "speedup vs baseline (×)".into(),
            log_x: true,
            log_y: true,
            series: series(speed),
        },
        LinePlot {
            stem: format!("{name}-scaling-vs-workers"),
            title: format!("scaling efficiency vs workers ({mid_bw} Gb/s)"),
            x_label: "workers (GPUs)".into(),
            y_label: "scaling efficiency (fraction)".into(),
            log_x: true,
            log_y: false,
            series: series(eff),
        },
    ]
}

/// (model, method, baseline, workers, predictor).
type SummaryKey = (String, String, String, u32, String);

fn summary(name: &str, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### {name}: break-even node bandwidth (Gb/s)\n");
    let _ = writeln!(
        s,
        "Break-even: the node bandwidth at which the method's step equals the baseline's; \"wins\" says on which side of it the method is faster (compression usually wins below it; all-gather methods at many workers can win only above it). \"—\" means no crossover in the searched range (the method never or always wins there).\n"
    );
    let _ = writeln!(s, "| model | method | baseline | workers | predictor | break-even Gb/s | wins | best speedup (at Gb/s) |");
    let _ = writeln!(s, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    // (break-even, best speedup, its bandwidth, speedup at the lowest bandwidth, that bandwidth)
    let mut seen: BTreeMap<SummaryKey, (Option<f64>, f64, f64, f64, f64)> = BTreeMap::new();
    for r in rows {
        if r.m.method == r.m.baseline && r.m.lowrank == "none" {
            continue;
        }
        let k = (
            if r.m.lowrank == "none" {
                r.m.model.clone()
            } else {
                format!("{} + {}", r.m.model, r.m.lowrank)
            },
            r.m.method.clone(),
            r.m.baseline.clone(),
            r.m.workers,
            format!("{:?}", r.m.predictor).to_lowercase(),
        );
        let e = seen
            .entry(k)
            .or_insert((r.break_even_gbps, 0.0, 0.0, 0.0, f64::INFINITY));
        if r.m.speedup_vs_baseline > e.1 {
            e.1 = r.m.speedup_vs_baseline;
            e.2 = r.m.inter_node_gbps;
        }
        if r.m.inter_node_gbps < e.4 {
            e.3 = r.m.speedup_vs_baseline;
            e.4 = r.m.inter_node_gbps;
        }
    }
    for ((model, method, base, w, pr), (be, sp, at, sp_low, _)) in seen {
        let wins = match be {
            Some(_) if sp_low > 1.0 => "below",
            Some(_) => "above",
            None if sp_low > 1.0 => "throughout",
            None if sp > 1.0 => "partly (no single crossover)",
            None => "never",
        };
        let be = be.map(|b| format!("{b:.3}")).unwrap_or_else(|| "—".into());
        let _ = writeln!(
            s,
            "| {model} | {method} | {base} | {w} | {pr} | {be} | {wins} | {sp:.3} ({at}) |"
        );
    }
    s
}
