//! Validation plots shared by every technique: the parity plot (predicted vs measured, with
//! y = x and ±10% bands, one colour per set) and the axis helpers of technique plots. Rendered
//! as PNG (embedded DejaVu Sans, see `report/DejaVuSans-LICENSE.txt`) and SVG, each written
//! atomically.

use crate::error::Result;
use crate::report::plot::{render, Chart, COLORS};
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
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
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

/// Log-axis ticks at 1-2-5 × 10^k within [lo, hi].
pub fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let mut e = lo.log10().floor() as i32;
    while 10f64.powi(e) <= hi * 10.0 && v.len() < 64 {
        for m in [1.0, 2.0, 5.0] {
            let t = m * 10f64.powi(e);
            if t >= lo && t <= hi {
                v.push(t);
            }
        }
        e += 1;
    }
    v
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
