//! Validation plots shared by every technique: the parity plot (predicted vs measured, with
//! y = x and ±10% bands, one colour per set) and the axis helpers of technique plots. Rendered
//! as PNG (embedded DejaVu Sans, see `report/DejaVuSans-LICENSE.txt`) and SVG, each written
//! atomically.

use crate::error::Result;
use crate::report::plot::{compact, log_ticks, render, Chart, COLORS};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parity plot: every point's measured and predicted value, by set.
#[derive(Debug, Clone)]
pub struct Parity<'a> {
    /// Caption.
    pub title: String,
    /// x-axis description (measured, with unit).
    pub x_desc: String,
    /// y-axis description (predicted, with unit).
    pub y_desc: String,
    /// (set, measured, predicted) per point, in the metric's unit.
    pub points: Vec<(&'a str, f64, f64)>,
}

impl Chart for Parity<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let vals = self
            .points
            .iter()
            .flat_map(|p| [p.1, p.2])
            .filter(|v| v.is_finite() && *v > 0.0);
        let lo = vals.clone().fold(f64::INFINITY, f64::min) / 1.2;
        let hi = vals.fold(0.0, f64::max) * 1.2;
        if !(lo.is_finite() && hi > lo) {
            return Err("no finite points".into());
        }
        let mut chart = ChartBuilder::on(root)
            .caption(self.title.as_str(), ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(
                (lo..hi).log_scale().with_key_points(ticks(lo, hi)),
                (lo..hi).log_scale().with_key_points(ticks(lo, hi)),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .x_label_formatter(&|v| compact(*v))
            .y_label_formatter(&|v| compact(*v))
            .light_line_style(WHITE)
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                vec![(lo, lo), (hi, hi)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label("y = x")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        let grey = RGBColor(150, 150, 150);
        for f in [1.1, 1.0 / 1.1] {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(lo, lo * f), (hi, hi * f)],
                    6,
                    4,
                    grey.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
        }
        let mut sets: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        for p in &self.points {
            sets.entry(p.0).or_default().push((p.1, p.2));
        }
        for (i, (name, pts)) in sets.into_iter().enumerate() {
            let c = COLORS[i % COLORS.len()];
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))
                .map_err(|e| e.to_string())?
                .label(name.to_string())
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, c.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Log-axis ticks within [lo, hi]: 1-2-5 × 10^k, finer inside one decade
/// ([`crate::report::plot::log_ticks`], the rule of every perfcast plot).
pub fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    log_ticks(lo, hi)
}

/// A file-name-safe version of `s`.
pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `<stem>.{png,svg}` of `p` into `dir`; returns the files written.
///
/// # Errors
/// [`crate::Error::Io`] when a file cannot be written.
pub fn write_parity(p: &Parity, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    render(p, dir, stem, (900, 700))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::plot::svgtest::{axis_group, svg_texts, tick_value};

    /// The parity plot labels both axes with numbers, also for values far below 1 (seconds of
    /// a codec call), where a `{:.0}` label would print "0" everywhere.
    #[test]
    fn parity_has_tick_labels_on_both_axes() {
        for scale in [1e-4, 1.0, 3e3] {
            let p = Parity {
                title: "t".into(),
                x_desc: "measured (s)".into(),
                y_desc: "predicted (s)".into(),
                points: vec![
                    ("a", 1.0 * scale, 1.1 * scale),
                    ("b", 7.0 * scale, 6.5 * scale),
                ],
            };
            let d = tempfile::tempdir().unwrap();
            let files = write_parity(&p, d.path(), "p").unwrap();
            let texts = svg_texts(&std::fs::read_to_string(&files[1]).unwrap());
            for (axis, labels) in [
                ("x", axis_group(&texts, "middle", true)),
                ("y", axis_group(&texts, "end", false)),
            ] {
                assert!(labels.len() >= 2, "scale {scale}: {axis} ticks {labels:?}");
                let vals: Vec<f64> = labels.iter().filter_map(|l| tick_value(l)).collect();
                assert_eq!(vals.len(), labels.len(), "{labels:?}");
                assert!(vals.iter().all(|v| *v > 0.0), "scale {scale}: {labels:?}");
            }
        }
    }
}
