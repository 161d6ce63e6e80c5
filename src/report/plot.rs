//! Line and bar plots rendered to PNG and SVG with plotters.
//!
//! Legibility rules every plot follows: tick labels on both axes (a logarithmic axis labels
//! 1-2-5 × 10^k, finer steps when its range spans less than that, and the data's own x values when
//! there are few of them); the legend in its own panel beside or below the plotting area, never
//! over the data; a style per series that differs in colour × dash × marker, so any number of
//! series stay distinguishable (and so in grey print); a plot whose series all sit at one x value
//! (a study with one size) is drawn as a bar chart, one bar per series.
//!
//! PNG text is drawn with an embedded DejaVu Sans (Bitstream Vera / DejaVu license, see
//! `DejaVuSans-LICENSE.txt`) through plotters' `ab_glyph` backend, so plots render on machines
//! without fontconfig. Both files are written atomically.

use super::csv::write_atomic;
use crate::error::{Error, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// The embedded DejaVu Sans (TrueType) every plot is laid out with; `report.html` embeds it too.
pub(crate) static FONT: &[u8] = include_bytes!("DejaVuSans.ttf");
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

/// A line plot with axis titles (including units) and a legend. Rendered as a bar chart when
/// every series has its points at one x value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinePlot {
    /// File name without extension.
    pub stem: String,
    /// Title above the plot.
    pub title: String,
    /// X axis title with unit, e.g. `cache size (% of unique rows)`.
    pub x_label: String,
    /// Y axis title with unit, e.g. `speedup (×)`.
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

/// How a line is stroked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dash {
    /// Continuous.
    Solid,
    /// 10 px on, 6 px off.
    Dashed,
    /// 2 px on, 5 px off.
    Dotted,
    /// 22 px on, 6 px off.
    LongDash,
}

impl Dash {
    /// All dashes, in the order series use them.
    pub const ALL: [Dash; 4] = [Dash::Solid, Dash::Dashed, Dash::Dotted, Dash::LongDash];

    /// (on, off) pixel lengths; `None` for a solid line.
    pub fn pattern(self) -> Option<(i32, i32)> {
        match self {
            Dash::Solid => None,
            Dash::Dashed => Some((10, 6)),
            Dash::Dotted => Some((2, 5)),
            Dash::LongDash => Some((22, 6)),
        }
    }
}

/// The mark drawn at each data point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// Filled circle.
    Circle,
    /// Filled square.
    Square,
    /// Filled triangle.
    Triangle,
    /// Filled diamond.
    Diamond,
    /// Diagonal cross.
    Cross,
}

impl Marker {
    /// All markers, in the order series use them.
    pub const ALL: [Marker; 5] = [
        Marker::Circle,
        Marker::Square,
        Marker::Triangle,
        Marker::Diamond,
        Marker::Cross,
    ];
}

/// The style of one series: colour × dash × marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesStyle {
    /// Line and marker colour.
    pub color: RGBColor,
    /// Line stroke.
    pub dash: Dash,
    /// Point mark.
    pub marker: Marker,
}

/// The style of the `i`-th series. Colours cycle fastest (10), the dash changes every 10 series
/// (4 dashes) and the marker cycles with its own period (5, shifted every 40 series), so the
/// first 200 series all differ in at least one of the three.
pub fn series_style(i: usize) -> SeriesStyle {
    SeriesStyle {
        color: COLORS[i % COLORS.len()],
        dash: Dash::ALL[(i / COLORS.len()) % Dash::ALL.len()],
        marker: Marker::ALL[(i + i / (COLORS.len() * Dash::ALL.len())) % Marker::ALL.len()],
    }
}

/// Draws `marker` centred on the backend pixel `at`.
fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    marker: Marker,
    color: RGBColor,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let (x, y) = at;
    let r = match marker {
        Marker::Circle => area.draw(&Circle::new((x, y), 4, color.filled())),
        Marker::Square => area.draw(&Rectangle::new(
            [(x - 4, y - 4), (x + 4, y + 4)],
            color.filled(),
        )),
        Marker::Triangle => area.draw(&TriangleMarker::new((x, y), 5, color.filled())),
        Marker::Diamond => area.draw(&Polygon::new(
            vec![(x, y - 6), (x + 5, y), (x, y + 6), (x - 5, y)],
            color.filled(),
        )),
        Marker::Cross => area.draw(&Cross::new((x, y), 4, color.stroke_width(2))),
    };
    r.map_err(|e| e.to_string())
}

/// Draws a polyline through backend pixels with `dash`.
fn draw_path<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    pts: &[(i32, i32)],
    dash: Dash,
    color: RGBColor,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let style = color.stroke_width(2);
    match dash.pattern() {
        None => area
            .draw(&PathElement::new(pts.to_vec(), style))
            .map_err(|e| e.to_string()),
        Some((on, off)) => area
            .draw(&DashedPathElement::new(pts.iter().copied(), on, off, style))
            .map_err(|e| e.to_string()),
    }
}

/// One axis in drawing space: a log axis is drawn as log10 of the value.
#[derive(Debug, Clone)]
struct Axis {
    log: bool,
    /// Range in drawing space.
    lo: f64,
    hi: f64,
    /// Labelled ticks in drawing space.
    ticks: Vec<f64>,
    /// Unlabelled grid lines in drawing space.
    minor: Vec<f64>,
    /// Significant digits of the labels (3 when the ticks are the data's own values, which
    /// need not be round: 4.998 % reads as 5).
    digits: usize,
}

impl Axis {
    /// `vals` are the data on this axis (finite, positive when `log`); `include_zero` extends a
    /// linear range to 0; `data_ticks` allows ticks at the data's own values when there are few.
    fn new(vals: &[f64], log: bool, include_zero: bool, data_ticks: bool) -> Option<Axis> {
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !(lo.is_finite() && hi.is_finite()) {
            return None;
        }
        let (lo, hi) = if log {
            (lo / 1.12, hi * 1.12)
        } else {
            let lo = if include_zero { lo.min(0.0) } else { lo };
            let hi = if include_zero { hi.max(0.0) } else { hi };
            if (hi - lo).abs() < 1e-300 {
                (lo - 0.5 * lo.abs().max(1.0), hi + 0.5 * hi.abs().max(1.0))
            } else {
                let p = 0.05 * (hi - lo);
                (lo - p, hi + p)
            }
        };
        let mut distinct: Vec<f64> = vals.to_vec();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        let t = |v: f64| if log { v.log10() } else { v };
        let (dlo, dhi) = (t(lo), t(hi));
        // Data values as ticks: few of them, each at least 6% of the axis from the next.
        let spaced = distinct
            .windows(2)
            .all(|w| (t(w[1]) - t(w[0])) >= 0.06 * (dhi - dlo));
        let integral = distinct.iter().all(|v| v.fract() == 0.0);
        let at_data = data_ticks && (2..=10).contains(&distinct.len()) && spaced;
        let values = if at_data {
            distinct
        } else if log {
            log_ticks(lo, hi)
        } else {
            // Counts (layers, workers) get integer steps only.
            nice_ticks(lo, hi, 7, integral)
        };
        let minor = if log {
            log_minor(lo, hi)
        } else {
            values.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect()
        };
        Some(Axis {
            log,
            lo: dlo,
            hi: dhi,
            ticks: values.into_iter().map(t).collect(),
            minor: minor.into_iter().map(t).collect(),
            digits: if at_data { 3 } else { 4 },
        })
    }

    fn to(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }

    fn label(&self, v: f64) -> String {
        compact_sig(if self.log { 10f64.powf(v) } else { v }, self.digits)
    }
}

/// The drawing-space coordinate of an [`Axis`]: linear from `lo` to `hi`, with the axis's own
/// ticks as its key points (labelled) and minor grid as its light points.
struct TickRange {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    minor: Vec<f64>,
}

impl From<&Axis> for TickRange {
    fn from(a: &Axis) -> Self {
        TickRange {
            lo: a.lo,
            hi: a.hi,
            ticks: a.ticks.clone(),
            minor: a.minor.clone(),
        }
    }
}

impl Ranged for TickRange {
    type ValueType = f64;
    type FormatOption = DefaultFormatting;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.hi - self.lo;
        if span.abs() < f64::MIN_POSITIVE {
            return (limit.0 + limit.1) / 2;
        }
        let f = (v - self.lo) / span;
        limit.0 + (f64::from(limit.1 - limit.0) * f + 1e-3).floor() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// Ticks at "nice" values (1, 2, 2.5 or 5 × 10^k apart) within [lo, hi], about `target` of them.
pub fn linear_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    nice_ticks(lo, hi, target, false)
}

/// [`linear_ticks`], with integer steps (1, 2 or 5 × 10^k, at least 1) when `integral`.
fn nice_ticks(lo: f64, hi: f64, target: usize, integral: bool) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let mults: &[f64] = if integral {
        &[1.0, 2.0, 5.0, 10.0]
    } else {
        &[1.0, 2.0, 2.5, 5.0, 10.0]
    };
    let step = mults
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let step = if integral { step.max(1.0) } else { step };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            // Snap float noise (0.30000000000000004) to the step's precision.
            let v = (v / step).round() * step;
            if v.abs() < step * 1e-9 {
                0.0
            } else {
                v
            }
        })
        .collect()
}

/// Ticks of a logarithmic axis over [lo, hi] (lo > 0): 1-2-5 × 10^k; only powers of ten when the
/// range spans more than 4 decades (every n-th past 10); 1..9 × 10^k when 1-2-5 gives fewer than
/// two ticks; nice linear ticks when even that gives fewer than two (a range inside one decade).
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return vec![];
    }
    let in_range = |mults: &[f64], every: i32| {
        let mut v = Vec::new();
        let mut e = lo.log10().floor() as i32;
        while 10f64.powi(e) <= hi && v.len() < 200 {
            if e.rem_euclid(every) == 0 {
                for m in mults {
                    let t = m * 10f64.powi(e);
                    if t >= lo && t <= hi {
                        v.push(t);
                    }
                }
            }
            e += 1;
        }
        v
    };
    let decades = (hi / lo).log10();
    let v = if decades > 4.0 {
        in_range(&[1.0], (decades / 10.0).ceil().max(1.0) as i32)
    } else {
        in_range(&[1.0, 2.0, 5.0], 1)
    };
    if v.len() >= 2 {
        return v;
    }
    let v = in_range(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 1);
    if v.len() >= 2 {
        return v;
    }
    linear_ticks(lo, hi, 5)
}

/// Unlabelled grid lines of a log axis: 1..9 × 10^k within [lo, hi] (none past 4 decades).
fn log_minor(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo) || (hi / lo).log10() > 4.0 {
        return vec![];
    }
    let mut v = Vec::new();
    let mut e = lo.log10().floor() as i32;
    while 10f64.powi(e) <= hi {
        for m in 1..10 {
            let t = f64::from(m) * 10f64.powi(e);
            if t >= lo && t <= hi {
                v.push(t);
            }
        }
        e += 1;
    }
    v
}

const FONT_PX: u32 = 14;
/// Width of one character of the 14 px label font, rounded up (layout estimate).
const CHAR_PX: u32 = 8;
const LEGEND_ROW_PX: u32 = 22;
const LEGEND_SAMPLE_PX: u32 = 40;
const BASE_SIZE: (u32, u32) = (960, 600);

/// Where the legend goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegendPlace {
    /// No legend (bar charts name their bars on the axis).
    None,
    /// A panel of this width right of the plot.
    Right(u32),
    /// A panel of this height below the plot, with this many columns.
    Below(u32, u32),
}

impl LinePlot {
    /// Renders `<dir>/<stem>.png` and `<dir>/<stem>.svg`; returns their paths.
    ///
    /// # Errors
    /// [`Error::Io`] when a file cannot be written, [`Error::Unsupported`] when the plot has no
    /// finite points.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        render(self, dir, &self.stem, self.size())
    }

    /// Finite points of each series (positive on a log axis).
    fn finite(&self, s: &Series) -> Vec<(f64, f64)> {
        s.points
            .iter()
            .copied()
            .filter(|(x, y)| {
                x.is_finite()
                    && y.is_finite()
                    && (!self.log_x || *x > 0.0)
                    && (!self.log_y || *y > 0.0)
            })
            .collect()
    }

    /// The single x value every finite point sits at, when there is one: the plot is then drawn
    /// as bars.
    fn single_x(&self) -> Option<f64> {
        let mut xs = self.series.iter().flat_map(|s| self.finite(s)).map(|p| p.0);
        let first = xs.next()?;
        xs.all(|x| x == first).then_some(first)
    }

    fn legend_place(&self) -> LegendPlace {
        if self.single_x().is_some() || self.series.is_empty() {
            return LegendPlace::None;
        }
        let chars = self
            .series
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0) as u32;
        let entry = LEGEND_SAMPLE_PX + 12 + chars * CHAR_PX;
        let n = self.series.len() as u32;
        if chars <= 28 && n * LEGEND_ROW_PX + 80 <= BASE_SIZE.1 {
            LegendPlace::Right(entry + 24)
        } else {
            let cols = ((BASE_SIZE.0 - 40) / entry).max(1);
            let rows = n.div_ceil(cols);
            LegendPlace::Below(rows * LEGEND_ROW_PX + 16, cols)
        }
    }

    /// Canvas size: 960 × 600 plus the legend panel; bar charts grow with the bar count.
    fn size(&self) -> (u32, u32) {
        let (w, h) = BASE_SIZE;
        if self.single_x().is_some() {
            return (w, h.max(140 + 34 * self.series.len() as u32));
        }
        match self.legend_place() {
            LegendPlace::None => (w, h),
            LegendPlace::Right(pw) => (w + pw, h),
            LegendPlace::Below(ph, _) => (w, h + ph),
        }
    }

    fn draw_lines<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        let pts: Vec<Vec<(f64, f64)>> = self.series.iter().map(|s| self.finite(s)).collect();
        let xs: Vec<f64> = pts.iter().flatten().map(|p| p.0).collect();
        let ys: Vec<f64> = pts.iter().flatten().map(|p| p.1).collect();
        let xa = Axis::new(&xs, self.log_x, false, true).ok_or("no finite points to plot")?;
        let ya = Axis::new(&ys, self.log_y, !self.log_y, false).ok_or("no finite points")?;
        let mut chart = ChartBuilder::on(area)
            .caption(self.title.as_str(), ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(55)
            .y_label_area_size(85)
            .build_cartesian_2d(TickRange::from(&xa), TickRange::from(&ya))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", FONT_PX))
            .bold_line_style(RGBColor(200, 200, 200))
            .light_line_style(RGBColor(238, 238, 238))
            .x_label_formatter(&|v: &f64| xa.label(*v))
            .y_label_formatter(&|v: &f64| ya.label(*v))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, p) in pts.iter().enumerate() {
            let st = series_style(i);
            let px: Vec<(i32, i32)> = p
                .iter()
                .map(|&(x, y)| chart.backend_coord(&(xa.to(x), ya.to(y))))
                .collect();
            if px.len() > 1 {
                draw_path(root, &px, st.dash, st.color)?;
            }
            for q in px {
                draw_marker(root, q, st.marker, st.color)?;
            }
        }
        Ok(())
    }

    fn draw_bars<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        area: &DrawingArea<DB, Shift>,
        x: f64,
    ) -> std::result::Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        // One bar per series: its last finite value at the single x.
        let bars: Vec<(usize, &str, f64)> = self
            .series
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.finite(s).last().map(|p| (i, s.name.as_str(), p.1)))
            .collect();
        let n = bars.len();
        let mut vals: Vec<f64> = bars.iter().map(|b| b.2).collect();
        // Room right of the longest bar for its value label.
        let top = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if top > 0.0 {
            vals.push(top * if self.log_y { 2.0 } else { 1.12 });
        }
        let va = Axis::new(&vals, self.log_y, !self.log_y, false).ok_or("no finite points")?;
        let names: Vec<String> = bars.iter().map(|b| b.1.to_string()).collect();
        let chars = names.iter().map(|s| s.chars().count()).max().unwrap_or(0) as u32;
        let cats: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let mut chart = ChartBuilder::on(area)
            .caption(self.title.as_str(), ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(55)
            .y_label_area_size((chars * CHAR_PX + 20).clamp(60, 520))
            .build_cartesian_2d(
                TickRange::from(&va),
                TickRange {
                    lo: -0.6,
                    hi: n as f64 - 0.4,
                    ticks: cats,
                    minor: vec![],
                },
            )
            .map_err(|e| e.to_string())?;
        let name_of = |v: &f64| {
            // Category i is drawn at y = n-1-i so the first series is on top.
            let i = (n as f64 - 1.0 - v).round();
            if i >= 0.0 && (i as usize) < n {
                names[i as usize].clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_desc(self.y_label.as_str())
            .y_desc(format!("{} = {}", self.x_label, compact(x)))
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", FONT_PX))
            .bold_line_style(RGBColor(200, 200, 200))
            .disable_y_mesh()
            .x_label_formatter(&|v: &f64| va.label(*v))
            .y_label_formatter(&name_of)
            .draw()
            .map_err(|e| e.to_string())?;
        let base = if va.log {
            va.lo
        } else {
            0.0f64.clamp(va.lo, va.hi)
        };
        for (k, &(i, _, v)) in bars.iter().enumerate() {
            let st = series_style(i);
            let y = (n - 1 - k) as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(base, y - 0.32), (va.to(v), y + 0.32)],
                    st.color.filled(),
                )))
                .map_err(|e| e.to_string())?;
            let (px, py) = chart.backend_coord(&(va.to(v), y));
            let right = va.to(v) >= base;
            let style = TextStyle::from(("sans-serif", FONT_PX).into_font())
                .color(&BLACK)
                .pos(Pos::new(
                    if right { HPos::Left } else { HPos::Right },
                    VPos::Center,
                ));
            root.draw(&Text::new(
                compact(v),
                (px + if right { 6 } else { -6 }, py),
                style,
            ))
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn draw_legend<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        panel: &DrawingArea<DB, Shift>,
        cols: u32,
        top: i32,
    ) -> std::result::Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        let (w, _) = panel.dim_in_pixel();
        let col_w = (w.saturating_sub(20) / cols.max(1)) as i32;
        let text = TextStyle::from(("sans-serif", FONT_PX).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        // Everything is drawn on the root in backend pixels: the panel's origin plus an offset.
        let (bx, by) = panel.get_base_pixel();
        for (i, s) in self.series.iter().enumerate() {
            let st = series_style(i);
            let (r, c) = (i as u32 / cols, i as u32 % cols);
            let x = bx + 10 + c as i32 * col_w;
            let y = by + top + (r * LEGEND_ROW_PX) as i32 + LEGEND_ROW_PX as i32 / 2;
            draw_path(root, &[(x, y), (x + 34, y)], st.dash, st.color)?;
            draw_marker(root, (x + 17, y), st.marker, st.color)?;
            root.draw(&Text::new(
                s.name.clone(),
                (x + LEGEND_SAMPLE_PX as i32, y),
                text.clone(),
            ))
            .map_err(|e| e.to_string())?;
        }
        Ok(())
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
        if let Some(x) = self.single_x() {
            return self.draw_bars(root, root, x);
        }
        let (w, h) = root.dim_in_pixel();
        match self.legend_place() {
            LegendPlace::None => self.draw_lines(root, root),
            LegendPlace::Right(pw) => {
                let (plot, panel) = root.split_horizontally(w.saturating_sub(pw));
                self.draw_lines(root, &plot)?;
                // Legend rows start level with the top of the plotting area.
                self.draw_legend(root, &panel, 1, 60)
            }
            LegendPlace::Below(ph, cols) => {
                let (plot, panel) = root.split_vertically(h.saturating_sub(ph));
                self.draw_lines(root, &plot)?;
                self.draw_legend(root, &panel, cols, 4)
            }
        }
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
pub fn compact(v: f64) -> String {
    compact_sig(v, 4)
}

/// A tick label with at most `sig` significant digits (1..=7), no trailing zeros, SI suffix
/// (k, M, G, T) for large values.
pub fn compact_sig(v: f64, sig: usize) -> String {
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
    let sig = sig.clamp(1, 7) as i32;
    let digits = (sig - 1 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
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

/// Reading an SVG's text elements back, for the tests of every plot kind.
#[cfg(test)]
pub(crate) mod svgtest {
    /// One `<text>` element of an SVG: anchor, x, y, rotated, content.
    #[derive(Debug)]
    pub(crate) struct SvgText {
        pub anchor: String,
        pub x: i64,
        pub y: i64,
        pub rotated: bool,
        pub text: String,
    }

    pub(crate) fn svg_texts(svg: &str) -> Vec<SvgText> {
        let attr = |head: &str, name: &str| {
            let key = format!(" {name}=\"");
            head.find(&key).map(|i| {
                let rest = &head[i + key.len()..];
                rest[..rest.find('"').unwrap_or(0)].to_string()
            })
        };
        svg.split("<text")
            .skip(1)
            .map(|chunk| {
                let end = chunk.find('>').unwrap();
                let head = &chunk[..end];
                let body = &chunk[end + 1..chunk.find("</text>").unwrap()];
                let num =
                    |n: &str| attr(head, n).and_then(|v| v.parse::<f64>().ok()).unwrap() as i64;
                SvgText {
                    anchor: attr(head, "text-anchor").unwrap_or_default(),
                    x: num("x"),
                    y: num("y"),
                    rotated: head.contains("rotate("),
                    text: body.trim().to_string(),
                }
            })
            .collect()
    }

    /// The largest group of texts with `anchor` sharing one coordinate (`by_y`: the same y, as
    /// x-axis tick labels do; else the same x, as right-aligned y-axis tick labels do).
    pub(crate) fn axis_group(texts: &[SvgText], anchor: &str, by_y: bool) -> Vec<String> {
        let mut groups: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
        for t in texts.iter().filter(|t| t.anchor == anchor && !t.rotated) {
            groups
                .entry(if by_y { t.y } else { t.x })
                .or_default()
                .push(t.text.clone());
        }
        groups
            .into_values()
            .max_by_key(Vec::len)
            .unwrap_or_default()
    }

    /// Parses a tick label (`2.5`, `10k`, `1.2e-4`) back into a number.
    pub(crate) fn tick_value(s: &str) -> Option<f64> {
        let (num, mult) = match s.chars().last()? {
            'k' => (&s[..s.len() - 1], 1e3),
            'M' => (&s[..s.len() - 1], 1e6),
            'G' => (&s[..s.len() - 1], 1e9),
            'T' => (&s[..s.len() - 1], 1e12),
            _ => (s, 1.0),
        };
        num.parse::<f64>().ok().map(|v| v * mult)
    }
}

#[cfg(test)]
mod tests {
    use super::svgtest::*;
    use super::*;

    /// Renders `p` and returns its (x tick labels, y tick labels) read back from the SVG.
    fn rendered_ticks(p: &LinePlot) -> (Vec<String>, Vec<String>, String) {
        let d = tempfile::tempdir().unwrap();
        let files = p.write(d.path()).unwrap();
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        let texts = svg_texts(&svg);
        (
            axis_group(&texts, "middle", true),
            axis_group(&texts, "end", false),
            svg,
        )
    }

    fn plot(log_x: bool, log_y: bool, series: Vec<Series>) -> LinePlot {
        LinePlot {
            stem: "k".into(),
            title: "kind".into(),
            x_label: "x quantity (unit)".into(),
            y_label: "y quantity (unit)".into(),
            log_x,
            log_y,
            series,
        }
    }

    fn line(name: &str, pts: &[(f64, f64)]) -> Series {
        Series {
            name: name.into(),
            points: pts.to_vec(),
        }
    }

    /// Every kind of line plot (linear, log x, log y, log-log, a log axis inside one decade, many
    /// series) has at least two numeric tick labels on each axis, read back from its SVG.
    #[test]
    fn every_plot_kind_has_tick_labels_on_both_axes() {
        let a = [(1.0, 3.0), (2.0, 4.5), (8.0, 2.0)];
        let wide = [(10.0, 0.2), (100.0, 3.0), (800.0, 40.0)];
        let tight = [(1.0, 41.0), (4.0, 52.0), (8.0, 36.0)]; // no power of ten inside
        let many: Vec<Series> = (0..25)
            .map(|i| line(&format!("configuration number {i} with a long name"), &a))
            .collect();
        let kinds = [
            ("linear", plot(false, false, vec![line("a", &a)])),
            ("log x", plot(true, false, vec![line("a", &wide)])),
            ("log y", plot(false, true, vec![line("a", &wide)])),
            (
                "log-log",
                plot(true, true, vec![line("a", &wide), line("b", &a)]),
            ),
            (
                "log y in one decade",
                plot(false, true, vec![line("a", &tight)]),
            ),
            ("25 series", plot(false, false, many)),
        ];
        for (kind, p) in kinds {
            let (x, y, _) = rendered_ticks(&p);
            for (axis, labels) in [("x", &x), ("y", &y)] {
                assert!(labels.len() >= 2, "{kind}: {axis} ticks {labels:?}");
                for l in labels.iter() {
                    assert!(
                        tick_value(l).is_some(),
                        "{kind}: {axis} tick '{l}' is not a number"
                    );
                }
            }
        }
    }

    /// A log axis over several decades labels 2 and 5 × 10^k, not only powers of ten; a log axis
    /// over 2–25 (the embcache cache sizes) labels the data's own values.
    #[test]
    fn log_axes_get_1_2_5_labels() {
        let p = plot(
            false,
            true,
            vec![line("a", &[(1.0, 0.15), (2.0, 14.0), (3.0, 90.0)])],
        );
        let (_, y, _) = rendered_ticks(&p);
        let vals: Vec<f64> = y.iter().filter_map(|l| tick_value(l)).collect();
        for want in [0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0] {
            assert!(
                vals.iter().any(|v| (v - want).abs() < 1e-9),
                "{want} missing from {y:?}"
            );
        }
        let pct = [(2.001, 1.0), (4.998, 1.2), (10.0, 1.4), (25.0, 1.6)];
        let (x, _, _) = rendered_ticks(&plot(true, false, vec![line("lru", &pct)]));
        assert_eq!(x, ["2", "5", "10", "25"]);
        assert_eq!(log_ticks(3.0, 9.0), [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(log_ticks(1e-3, 1e5).len(), 9);
    }

    /// The legend is outside the plotting area: its entries sit right of the x axis's last tick
    /// label or below the x axis's labels.
    #[test]
    fn legend_is_outside_the_plot() {
        let a = [(1.0, 3.0), (2.0, 4.5), (8.0, 2.0)];
        for names in [
            vec!["lru", "fifo"],
            vec!["a very long configuration name indeed: k=6"],
        ] {
            let p = plot(false, false, names.iter().map(|n| line(n, &a)).collect());
            let (_, _, svg) = rendered_ticks(&p);
            let texts = svg_texts(&svg);
            let axis_right = texts
                .iter()
                .filter(|t| t.anchor == "middle" && !t.rotated)
                .map(|t| t.x)
                .max()
                .unwrap();
            let axis_bottom = texts
                .iter()
                .filter(|t| t.anchor == "middle")
                .map(|t| t.y)
                .max()
                .unwrap();
            for n in names {
                let t = texts.iter().find(|t| t.text == n).expect(n);
                assert!(
                    t.x > axis_right || t.y > axis_bottom,
                    "{n} at {t:?} is inside the plot"
                );
            }
        }
    }

    /// Series styles differ in colour, dash or marker for the first 200 series.
    #[test]
    fn series_styles_are_distinct() {
        let styles: Vec<SeriesStyle> = (0..200).map(series_style).collect();
        for i in 0..styles.len() {
            for j in 0..i {
                assert_ne!(styles[i], styles[j], "series {i} and {j} look alike");
            }
        }
        // Neighbours differ in colour and marker, not only one of them.
        assert_ne!(series_style(0).marker, series_style(1).marker);
        assert_ne!(series_style(0).dash, series_style(10).dash);
    }

    /// A plot whose series all sit at one x (a study with one size) is drawn as bars: one
    /// rectangle per series, the series names as the category axis's labels, numbers on the
    /// value axis, and the single x value in the category axis's title.
    #[test]
    fn one_size_is_a_bar_chart() {
        let p = plot(
            true,
            false,
            vec![
                line("lru", &[(10.0, 1.3)]),
                line("belady", &[(10.0, 1.5)]),
                line("lookahead", &[(10.0, 2.7)]),
            ],
        );
        let (x, mut y, svg) = rendered_ticks(&p);
        // Read back bottom-up; the first series is drawn on top.
        y.reverse();
        assert_eq!(
            y,
            ["lru", "belady", "lookahead"],
            "category labels, top to bottom"
        );
        assert!(
            x.len() >= 2 && x.iter().all(|l| tick_value(l).is_some()),
            "{x:?}"
        );
        assert!(
            svg.contains("x quantity (unit) = 10"),
            "category axis title"
        );
        let fills = svg.matches("<rect").count();
        assert!(fills >= 4, "background + 3 bars, got {fills} rects");
    }

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
