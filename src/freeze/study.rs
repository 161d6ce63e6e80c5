//! The freeze scenario study: grid → [`Spec`] (the front door shared with the CLI) → evaluate →
//! plots and summary.
//!
//! ```toml
//! [[study]]
//! name = "freeze-bert-base"
//! technique = "freeze"
//! model = "bert-base"
//! gpu = "h200"
//! epochs = 3
//! batch = 32
//! [study.sweep]
//! samples = [10000, 100000, 1000000]
//! policy = ["none", "fixed:k=6", "autofreeze", "freezeout"]
//! cache = ["none", "gpu", "ram", "disk"]
//! ```
//! `autofreeze` points replay `grad_norms = "FILE"` when given (the default scenario replays the
//! measured H200 trace); without it they use the synthetic generator seeded with the scenario seed
//! (or `synthetic = "seed=…"`), the same trace for every point of the study. The summary names the
//! per-layer costs (`costs`: calibrated or roofline) and the gradient norms each study used.

use super::spec::{ProfileMemo, Spec};
use super::{evaluate, timeline_plot, Metrics, Policy, Tier};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::report::{units, LinePlot, Rows, Series};
use crate::scenario::{KeyDoc, RunContext, Study, StudyReport, StudySpec, DEFAULT_SEED};
use crate::sweep::{par_map, Progress};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Scenario keys of a freeze study that are not fields of [`Spec`]: none.
pub const STUDY_KEYS: &[KeyDoc] = &[];

/// Older scenario keys still read: (old, new).
pub const RENAMED_KEYS: &[(&str, &str)] = &[
    ("cache_read_bw_bytes_per_s", "cache_read_bw"),
    ("cache_write_bw_bytes_per_s", "cache_write_bw"),
    ("cache_capacity_bytes", "cache_capacity"),
];

/// A scenario study of layer freezing.
pub struct FreezeStudy {
    spec: StudySpec,
    points: Vec<Spec>,
    catalog: Catalog,
    /// Per-layer costs resolved once per distinct profile of the grid.
    memo: ProfileMemo,
}

impl FreezeStudy {
    /// Parses and validates every grid point.
    ///
    /// # Errors
    /// The first invalid point, naming the study.
    pub fn new(spec: StudySpec, cat: &Catalog) -> Result<Self> {
        let mut points = Vec::with_capacity(spec.len());
        let memo = ProfileMemo::default();
        for pt in spec.grid() {
            let ps: Spec = spec.point(&pt)?;
            ps.to_params_memo(cat, ps.seed.unwrap_or(DEFAULT_SEED), &memo)
                .map_err(|e| {
                    Error::parse(&spec.path, None, format!("study '{}': {e}", spec.name))
                })?;
            points.push(ps);
        }
        // Keep the catalog for run(): the study re-resolves points with the run's seed.
        Ok(FreezeStudy {
            spec,
            points,
            catalog: cat.clone(),
            memo,
        })
    }
}

impl Study for FreezeStudy {
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn technique(&self) -> &'static str {
        "freeze"
    }
    fn points(&self) -> usize {
        self.points.len()
    }

    fn run(&self, ctx: &RunContext) -> Result<StudyReport> {
        let cat = &self.catalog;
        let progress = Progress::new(self.points.len() as u64, &self.spec.name, ctx.progress);
        let results: Vec<Metrics> = par_map(&self.points, &progress, |_, ps| {
            evaluate(&ps.to_params_memo(cat, ps.seed.unwrap_or(ctx.seed), &self.memo)?)
        })?;
        progress.finish();
        let mut rows = Rows::default();
        for m in &results {
            let mut r = serde_json::Map::new();
            r.insert("study".into(), self.spec.name.clone().into());
            if let Ok(serde_json::Value::Object(o)) = serde_json::to_value(m) {
                r.extend(o);
            }
            let tl: Vec<String> = m
                .timeline
                .iter()
                .map(|c| format!("{}:{}", c.step, c.frozen_layers))
                .collect();
            r.insert("timeline".into(), tl.join(" ").into());
            rows.records.push(r);
        }
        let curves = self.break_even_curves(cat, ctx.seed)?;
        Ok(StudyReport {
            plots: self.plots(&results, &curves),
            summary_md: self.summary(&results, &curves),
            rows,
        })
    }
}

/// Longest run, in epochs, of the break-even curves.
pub const BREAK_EVEN_MAX_EPOCHS: u32 = 10;

/// How much the cache saves as a function of the number of epochs, for one policy × tier.
#[derive(Debug, Clone)]
pub struct BreakEven {
    /// Series label.
    pub label: String,
    /// Samples per epoch the curve was evaluated at.
    pub samples: u64,
    /// `(epochs, cache saving / uncached total)` for epochs 1..=[`BREAK_EVEN_MAX_EPOCHS`].
    pub points: Vec<(u32, f64)>,
}

impl BreakEven {
    /// Smallest epoch count at which the cache saves time, if any within the curve.
    pub fn pays_from(&self) -> Option<u32> {
        self.points.iter().find(|(_, f)| *f > 0.0).map(|(e, _)| *e)
    }
}

impl FreezeStudy {
    /// For each distinct (model, gpu, batch, policy, cache tier, lag) of the grid with a cache and
    /// a freezing policy, re-evaluates its smallest-dataset point for 1..=10 epochs: where caching
    /// starts to pay. Per-epoch costs scale with the dataset size, so the curve depends on it
    /// only through the run's fractions (policies schedule by fraction of the run).
    fn break_even_curves(&self, cat: &Catalog, seed: u64) -> Result<Vec<BreakEven>> {
        let mut firsts: BTreeMap<String, &Spec> = BTreeMap::new();
        for ps in &self.points {
            if ps.cache == Tier::None || ps.policy == Policy::None {
                continue;
            }
            let swept = self.spec.swept();
            let mut parts = Vec::new();
            for (axis, v) in [
                ("model", ps.model.clone()),
                ("gpu", ps.gpu.clone()),
                ("batch", format!("b={}", ps.batch)),
            ] {
                if swept.contains(&axis) {
                    parts.push(v);
                }
            }
            parts.push(ps.policy.label());
            parts.push(format!(
                "cache={}{}",
                ps.cache.name(),
                if ps.cache_lag { " lag" } else { "" }
            ));
            let key = parts.join(" ");
            let e = firsts.entry(key).or_insert(ps);
            if ps.samples < e.samples {
                *e = ps;
            }
        }
        let items: Vec<(String, &Spec)> = firsts.into_iter().collect();
        let progress = Progress::new(0, "", false);
        par_map(&items, &progress, |_, (label, ps)| {
            let mut points = Vec::new();
            for e in 1..=BREAK_EVEN_MAX_EPOCHS {
                let spec = Spec {
                    epochs: e,
                    ..(*ps).clone()
                };
                let m =
                    evaluate(&spec.to_params_memo(cat, spec.seed.unwrap_or(seed), &self.memo)?)?;
                points.push((e, m.cache_saving_s / m.total_nocache_s));
            }
            Ok(BreakEven {
                label: label.clone(),
                samples: ps.samples,
                points,
            })
        })
    }

    fn series_label(&self, m: &Metrics) -> String {
        let swept = self.spec.swept();
        let mut parts = Vec::new();
        for (axis, v) in [
            ("model", m.model.clone()),
            ("gpu", m.gpu.clone()),
            ("batch", format!("b={}", m.batch)),
            ("epochs", format!("E={}", m.epochs)),
        ] {
            if swept.contains(&axis) {
                parts.push(v);
            }
        }
        parts.push(m.policy.clone());
        parts.push(format!("cache={}", m.cache.name()));
        parts.join(" ")
    }

    fn plots(&self, res: &[Metrics], curves: &[BreakEven]) -> Vec<LinePlot> {
        let name = &self.spec.name;
        let swept = self.spec.swept();
        let x_axis = ["samples", "epochs", "batch"]
            .into_iter()
            .find(|a| swept.contains(a))
            .unwrap_or("samples");
        let xval = |m: &Metrics| match x_axis {
            "epochs" => f64::from(m.epochs),
            "batch" => f64::from(m.batch),
            _ => m.samples as f64,
        };
        // Speedup: points whose cache does not fit its tier are left out (a GPU-memory line ends
        // where the dataset's cache outgrows the device); caching without a freezing policy is
        // the same as no cache and is not repeated.
        let mut by: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for m in res.iter().filter(|m| m.cache_fits != Some(false)) {
            if m.policy == "none" && m.cache != Tier::None {
                continue;
            }
            let label = if m.policy == "none" {
                self.series_label(m).replace(" cache=none", "")
            } else {
                self.series_label(m)
            };
            by.entry(label).or_default().push((xval(m), m.speedup));
        }
        let x_label = match x_axis {
            "epochs" => "fine-tuning length (epochs)",
            "batch" => "batch size (samples per iteration)",
            _ => "dataset size (samples per epoch)",
        };
        let mut plots = vec![LinePlot {
            stem: format!("{name}-speedup"),
            title: format!("{name}: speedup over training every layer"),
            x_label: x_label.into(),
            y_label: "speedup (×, cache must fit its tier)".into(),
            log_x: x_axis != "epochs",
            log_y: false,
            series: by
                .into_iter()
                .map(|(k, mut v)| {
                    v.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Series { name: k, points: v }
                })
                .collect(),
        }];
        if !curves.is_empty() {
            plots.push(LinePlot {
                stem: format!("{name}-cache_break_even"),
                title: format!("{name}: when caching the frozen prefix pays"),
                x_label: "fine-tuning length (epochs)".into(),
                y_label: "cache saving (% of the uncached run; < 0: it costs)".into(),
                log_x: false,
                log_y: false,
                series: curves
                    .iter()
                    .map(|c| Series {
                        name: c.label.clone(),
                        points: c
                            .points
                            .iter()
                            .map(|(e, f)| (f64::from(*e), 100.0 * f))
                            .collect(),
                    })
                    .collect(),
            });
        }
        // Timeline: one line per policy (timelines do not depend on the cache), largest dataset.
        let mut seen = BTreeMap::new();
        for m in res
            .iter()
            .filter(|m| m.cache == Tier::None || !res.iter().any(|o| o.cache == Tier::None))
        {
            let key = (m.model.clone(), m.policy.clone(), m.epochs);
            let e = seen.entry(key).or_insert(m);
            if m.samples > e.samples {
                *e = m;
            }
        }
        let items: Vec<(String, &Metrics)> = seen
            .values()
            .map(|m| {
                (
                    format!("{} {} ({} samples)", m.model, m.policy, m.samples),
                    *m,
                )
            })
            .collect();
        plots.push(timeline_plot(
            &format!("{name}-timeline"),
            &format!("{name}: frozen layers vs training step"),
            &items,
        ));
        plots
    }

    fn summary(&self, res: &[Metrics], curves: &[BreakEven]) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "### {} (freeze, {} points)\n",
            self.spec.name,
            self.points.len()
        );
        let _ = writeln!(
            s,
            "Best configuration per dataset size (cache must fit its tier):\n"
        );
        let _ = writeln!(s, "| model | gpu | samples | epochs | best policy | cache | total | baseline | speedup | frozen at end | cache size |");
        let _ = writeln!(s, "|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|");
        let mut best: BTreeMap<(String, String, u64, u32, u32), &Metrics> = BTreeMap::new();
        for m in res.iter().filter(|m| m.cache_fits != Some(false)) {
            let e = best
                .entry((m.model.clone(), m.gpu.clone(), m.samples, m.epochs, m.batch))
                .or_insert(m);
            if m.total_s < e.total_s {
                *e = m;
            }
        }
        for ((model, gpu, n, e, _), m) in &best {
            let _ = writeln!(
                s,
                "| {model} | {gpu} | {n} | {e} | {} | {} | {} | {} | {:.3} | {}/{} | {} |",
                m.policy,
                m.cache.name(),
                units::seconds(m.total_s),
                units::seconds(m.baseline_s),
                m.speedup,
                m.frozen_layers_final,
                m.layers,
                units::bytes(m.cache_bytes)
            );
        }
        let _ = writeln!(s, "\nWhen caching pays (break-even epochs = reading epochs needed to repay one writing epoch at the final boundary; break-even bandwidth = read bandwidth above which reading beats recomputing the frozen prefix):\n");
        let _ = writeln!(s, "| policy | cache | samples | cache saving (s) | break-even epochs | break-even read bw (GB/s) | tier read bw (GB/s) | fits |");
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---|");
        for m in res
            .iter()
            .filter(|m| m.cache != Tier::None && m.frozen_layers_final > 0)
        {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} | {} | {} | {:.1} | {} |",
                m.policy,
                m.cache.name(),
                m.samples,
                m.cache_saving_s,
                m.break_even_epochs
                    .map(|x| format!("{x:.3}"))
                    .unwrap_or_else(|| "never".into()),
                m.break_even_read_bw_bytes_per_s
                    .map(|x| format!("{:.2}", x / 1e9))
                    .unwrap_or_else(|| "n/a".into()),
                m.cache_read_bw_bytes_per_s.unwrap_or(0.0) / 1e9,
                if m.cache_fits == Some(false) {
                    "**no**"
                } else {
                    "yes"
                }
            );
        }
        if !curves.is_empty() {
            let _ = writeln!(s, "\nBreak-even in epochs (each policy × tier re-evaluated for 1..={BREAK_EVEN_MAX_EPOCHS} epochs at its smallest dataset size):\n");
            let _ = writeln!(s, "| configuration | samples | caching pays from | saving at {BREAK_EVEN_MAX_EPOCHS} epochs |");
            let _ = writeln!(s, "|---|---:|---|---:|");
            for c in curves {
                let last = c.points.last().map_or(0.0, |p| p.1);
                let from = c.pays_from().map_or_else(
                    || format!("never within {BREAK_EVEN_MAX_EPOCHS} epochs"),
                    |e| format!("{e} epochs"),
                );
                let _ = writeln!(
                    s,
                    "| {} | {} | {from} | {:.1}% |",
                    c.label,
                    c.samples,
                    100.0 * last
                );
            }
        }
        let costs: std::collections::BTreeSet<(&str, &str, &str)> = res
            .iter()
            .map(|m| (m.model.as_str(), m.gpu.as_str(), m.costs.as_str()))
            .collect();
        for (model, gpu, c) in costs {
            let _ = writeln!(s, "\nPer-layer costs of {model} on {gpu}: {c}.");
        }
        if res.iter().any(|m| m.seed.is_some()) {
            let seeds: std::collections::BTreeSet<u64> =
                res.iter().filter_map(|m| m.seed).collect();
            let _ = writeln!(s, "\nAutoFreeze points replay synthetic gradient norms (generator seed {seeds:?}; see `grad_norms` in the CSV), not a measured trace.");
        }
        let traces: std::collections::BTreeSet<&str> = res
            .iter()
            .filter(|m| m.seed.is_none())
            .filter_map(|m| m.grad_norms.as_deref())
            .collect();
        for t in traces {
            let _ = writeln!(s, "\nAutoFreeze points replay the recorded gradient-norm trace `{t}`; the timeline plot and the `timeline` column show when it froze which prefix.");
        }
        let _ = writeln!(s, "\nPrefix growth invalidates the cache: each entry is rewritten for the new boundary (read at the old boundary, the newly frozen layers run forward, the new output is written); `cache_boundaries` counts the boundaries written.");
        s
    }
}
