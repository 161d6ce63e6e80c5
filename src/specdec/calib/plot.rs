//! specdec's validation plots: the shared parity plot of tokens/s and γ curves (tokens/s vs γ,
//! measured solid, predicted dashed, one colour per batch).

use super::validate::PointResult;
use crate::error::Result;
use crate::report::plot::{render, Chart, COLORS};
use crate::validate::plot::{slug, ticks, write_parity, Parity};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

struct GammaCurves<'a> {
    title: String,
    points: Vec<&'a PointResult>,
}

impl Chart for GammaCurves<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut by_batch: BTreeMap<u32, Vec<(f64, f64, f64)>> = BTreeMap::new();
        for p in &self.points {
            by_batch.entry(p.batch).or_default().push((
                f64::from(p.gamma),
                p.measured_tokens_per_s,
                p.predicted_tokens_per_s,
            ));
        }
        let ys = self
            .points
            .iter()
            .flat_map(|p| [p.measured_tokens_per_s, p.predicted_tokens_per_s])
            .filter(|v| v.is_finite() && *v > 0.0);
        let (ylo, yhi) = (
            ys.clone().fold(f64::INFINITY, f64::min) / 1.2,
            ys.fold(0.0, f64::max) * 1.2,
        );
        let gmax = self.points.iter().map(|p| p.gamma).max().unwrap_or(1);
        if !(ylo.is_finite() && yhi > ylo) {
            return Err("no finite points".into());
        }
        let mut chart = ChartBuilder::on(root)
            .caption(self.title.as_str(), ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(
                -0.3f64..(f64::from(gmax) + 0.3),
                (ylo..yhi).log_scale().with_key_points(ticks(ylo, yhi)),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("lookahead γ (draft tokens per step; 0 = autoregressive)")
            .y_desc("throughput (tokens/s, whole batch)")
            .x_labels(10)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .light_line_style(WHITE)
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (b, mut v)) in by_batch.into_iter().enumerate() {
            v.sort_by(|x, y| x.0.total_cmp(&y.0));
            let c = COLORS[i % COLORS.len()];
            let meas: Vec<(f64, f64)> = v.iter().map(|t| (t.0, t.1)).collect();
            let pred: Vec<(f64, f64)> = v.iter().map(|t| (t.0, t.2)).collect();
            chart
                .draw_series(LineSeries::new(meas.clone(), c.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(format!("b={b} measured"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(meas.into_iter().map(|p| Circle::new(p, 4, c.filled())))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(DashedLineSeries::new(pred.clone(), 8, 5, c.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(format!("b={b} predicted"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 8, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pred.into_iter().map(|p| TriangleMarker::new(p, 5, c)))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Writes `parity.{png,svg}` and one `gamma-<set>-<model>-<draft>.{png,svg}` per (set, target,
/// draft) with its autoregressive points at γ = 0. Returns the files written.
///
/// # Errors
/// [`crate::Error::Io`] when a file cannot be written.
pub fn write_plots(points: &[PointResult], dir: &Path) -> Result<Vec<PathBuf>> {
    let costs = points.first().map_or("", |p| p.costs.as_str());
    let parity = Parity {
        title: format!("specdec validation ({costs} costs): predicted vs measured tokens/s"),
        x_desc: "measured throughput (tokens/s, whole batch)".into(),
        y_desc: "predicted throughput (tokens/s)".into(),
        points: points
            .iter()
            .map(|p| {
                (
                    p.set.as_str(),
                    p.measured_tokens_per_s,
                    p.predicted_tokens_per_s,
                )
            })
            .collect(),
    };
    let mut files = write_parity(&parity, dir, "parity")?;
    // One plot per (set, target, drafter, context); the drafter is the cost model (so synthetic
    // runs with different draft models get their own curves).
    let mut groups: BTreeMap<(&str, &str, String, u64), Vec<&PointResult>> = BTreeMap::new();
    for p in points.iter().filter(|p| p.gamma > 0) {
        let drafter = if p.draft == p.draft_cost_model {
            p.draft.clone()
        } else {
            format!("{} ({})", p.draft, p.draft_cost_model)
        };
        groups
            .entry((
                p.set.as_str(),
                p.model.as_str(),
                drafter,
                p.context_tokens.round() as u64,
            ))
            .or_default()
            .push(p);
    }
    let contexts_per_run = |set: &str, model: &str, drafter: &str| {
        groups
            .keys()
            .filter(|k| k.0 == set && k.1 == model && k.2 == drafter)
            .count()
    };
    let mut plans = Vec::new();
    for ((set, model, drafter, ctx), v) in &groups {
        let mut v = v.clone();
        let batches: Vec<u32> = v.iter().map(|p| p.batch).collect();
        v.extend(points.iter().filter(|p| {
            p.gamma == 0
                && p.set == *set
                && p.model == *model
                && batches.contains(&p.batch)
                && p.context_tokens.round() as u64 == *ctx
        }));
        let several = contexts_per_run(set, model, drafter) > 1;
        let costs = v.first().map_or("", |p| p.costs.as_str());
        let title = format!(
            "{set}: {model} + {drafter} ({costs} costs){}",
            if several {
                format!(", context {ctx}")
            } else {
                String::new()
            }
        );
        let mut stem = format!("gamma-{}-{}-{}", slug(set), slug(model), slug(drafter));
        if several {
            stem.push_str(&format!("-ctx{ctx}"));
        }
        plans.push((title, stem, v));
    }
    for (title, stem, v) in plans {
        files.extend(render(
            &GammaCurves { title, points: v },
            dir,
            &stem,
            (900, 700),
        )?);
    }
    Ok(files)
}
