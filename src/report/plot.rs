//! Line plots rendered to PNG and SVG with plotters.
//!
//! PNG text is drawn with an embedded DejaVu Sans (Bitstream Vera / DejaVu license, see
//! `DejaVuSans-LICENSE.txt`) through plotters' `ab_glyph` backend, so plots render on machines
//! without fontconfig. Both files are written atomically.

use super::csv::write_atomic;
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Once;

static FONT: &[u8] = include_bytes!("DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The embedded font is valid (checked by a test); a failure here would only lose text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One named line of a plot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// (x, y) points, drawn in order.
    pub points: Vec<(f64, f64)>,
}

/// A line plot with axis titles (including units) and a legend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinePlot {
    /// File name without extension.
    pub stem: String,
    /// Title above the plot.
    pub title: String,
    /// X axis title with unit.
    pub x_label: String,
    /// Y axis title with unit.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

/// The palette every perfcast plot cycles through (matplotlib's tab10).
pub const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

impl LinePlot {
    /// Renders `<dir>/<stem>.png` and `<dir>/<stem>.svg`; returns their paths.
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be written, [`Error::Unsupported`] when the plot has no
    /// finite points.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        render(self, dir, &self.stem, (960, 600))
    }

    fn bounds(&self) -> Option<((f64, f64), (f64, f64))> {
        let pts = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| {
                x.is_finite()
                    && y.is_finite()
                    && (!self.log_x || *x > 0.0)
                    && (!self.log_y || *y > 0.0)
            });
        let mut b: Option<((f64, f64), (f64, f64))> = None;
        for &(x, y) in pts {
            b = Some(match b {
                None => ((x, x), (y, y)),
                Some(((x0, x1), (y0, y1))) => ((x0.min(x), x1.max(x)), (y0.min(y), y1.max(y))),
            });
        }
        b.map(|((x0, x1), (y0, y1))| {
            let pad = |a: f64, b: f64, log: bool| {
                if log {
                    (a / 1.1, b * 1.1)
                } else if (b - a).abs() < 1e-300 {
                    (a - 0.5 * a.abs().max(1.0), b + 0.5 * b.abs().max(1.0))
                } else {
                    let p = 0.05 * (b - a);
                    (a - p, b + p)
                }
            };
            (
                pad(x0, x1, self.log_x),
                pad(
                    y0.min(if self.log_y { y0 } else { 0.0_f64.min(y0) }),
                    y1,
                    self.log_y,
                ),
            )
        })
    }
}

impl Chart for LinePlot {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let ((x0, x1), (y0, y1)) = self.bounds().ok_or("no finite points to plot")?;
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(self.x_label.as_str())
                    .y_desc(self.y_label.as_str())
                    .axis_desc_style(("sans-serif", 18))
                    .label_style(("sans-serif", 14))
                    .x_labels(8)
                    .y_labels(8)
                    .x_label_formatter(&|v: &f64| compact(*v))
                    .y_label_formatter(&|v: &f64| compact(*v))
                    .draw()
                    .map_err(|e| e.to_string())?;
                for (i, s) in self.series.iter().enumerate() {
                    let color = COLORS[i % COLORS.len()];
                    let pts: Vec<(f64, f64)> = s
                        .points
                        .iter()
                        .copied()
                        .filter(|(x, y)| x.is_finite() && y.is_finite())
                        .collect();
                    chart
                        .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                        .map_err(|e| e.to_string())?
                        .label(s.name.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                        });
                    chart
                        .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                        .map_err(|e| e.to_string())?;
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 14))
                    .position(SeriesLabelPosition::LowerRight)
                    .draw()
                    .map_err(|e| e.to_string())?;
            }};
        }
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(self.title.as_str(), ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(80);
        match (self.log_x, self.log_y) {
            (false, false) => body!(builder
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| e.to_string())?),
            (true, false) => body!(builder
                .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                .map_err(|e| e.to_string())?),
            (false, true) => body!(builder
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(|e| e.to_string())?),
            (true, true) => body!(builder
                .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                .map_err(|e| e.to_string())?),
        }
        Ok(())
    }
}

/// Something drawable on any plotters backend, so PNG and SVG come from the same code.
pub trait Chart {
    /// Draws on `root` (filled, axes, series); the caller presents it.
    ///
    /// # Errors
    /// A message when there is nothing to draw or the backend fails.
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>
    where
        DB::ErrorType: 'static;
}

/// Renders `chart` to `<dir>/<stem>.png` and `<dir>/<stem>.svg` at `size` pixels, with the
/// embedded font; both files are written atomically, and only after both drawings succeeded.
///
/// # Errors
/// [`Error::Unsupported`] when the chart cannot be drawn, [`Error::Io`] when a file cannot be
/// written.
pub fn render<C: Chart>(
    chart: &C,
    dir: &Path,
    stem: &str,
    size: (u32, u32),
) -> Result<Vec<PathBuf>> {
    register_font();
    let (w, h) = size;
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    let fail = |e: String| Error::Unsupported(format!("plot {stem}: {e}"));
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        chart.draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let img = image_png(&buf, w, h).map_err(|e| Error::io(&png, e))?;
    let mut svg_text = String::new();
    {
        let root = SVGBackend::with_string(&mut svg_text, (w, h)).into_drawing_area();
        chart.draw(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    write_atomic(&png, &img)?;
    write_atomic(&svg, svg_text.as_bytes())?;
    Ok(vec![png, svg])
}

/// A tick label: at most 4 significant digits, no trailing zeros, SI suffix for large values.
fn compact(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e12 {
        (v / 1e12, "T")
    } else if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if x == 0.0 {
        return "0".into();
    }
    if x.abs() < 1e-3 {
        return format!("{x:.1e}");
    }
    let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{x:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{suffix}")
}

/// Encodes an RGB buffer as PNG bytes.
fn image_png(buf: &[u8], w: u32, h: u32) -> std::io::Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(buf, w, h, image::ColorType::Rgb8)
        .map_err(std::io::Error::other)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_png_and_svg_with_text() {
        let d = tempfile::tempdir().unwrap();
        let p = LinePlot {
            stem: "t".into(),
            title: "speedup vs γ".into(),
            x_label: "lookahead γ (tokens)".into(),
            y_label: "speedup (×)".into(),
            log_x: false,
            log_y: false,
            series: vec![Series {
                name: "a".into(),
                points: vec![(1.0, 1.0), (2.0, 1.5)],
            }],
        };
        let files = p.write(d.path()).unwrap();
        let png = std::fs::read(&files[0]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        assert!(svg.contains("speedup vs γ") && svg.contains("<svg"));
    }

    #[test]
    fn compact_tick_labels() {
        assert_eq!(compact(100.0), "100");
        assert_eq!(compact(2.5), "2.5");
        assert_eq!(compact(12_500.0), "12.5k");
        assert_eq!(compact(4.8e12), "4.8T");
        assert_eq!(compact(0.000_12), "1.2e-4");
        assert_eq!(compact(0.0), "0");
    }

    #[test]
    fn empty_plot_is_an_error_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let p = LinePlot {
            stem: "e".into(),
            title: "".into(),
            x_label: "".into(),
            y_label: "".into(),
            log_x: true,
            log_y: false,
            series: vec![],
        };
        assert!(p.write(d.path()).is_err());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
