//! Validation shared by every technique: tolerances, point errors and their per-set summary
//! (MAPE, max, bias: [`metrics`]), parity plots ([`plot`]), the note reports cite, and the
//! [`Technique`] interface through which `perfcast calibrate` and `perfcast validate` hand each
//! technique its rows (the registry of implementations is [`crate::techniques`]).
//!
//! Shared layer: imports the catalog, measurements and reports, never a technique.

pub mod metrics;
pub mod nnls;
pub mod plot;

use crate::catalog::{Catalog, RecordedSet, ValidationRecord};
use crate::error::Result;
use crate::measure::Measurements;
use crate::report::Format;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use metrics::{rel_err, ErrorStats};

/// Error tolerance of a set: both bounds must hold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Largest allowed mean absolute relative error, fraction.
    pub mape: f64,
    /// Largest allowed |relative error| of any point, fraction.
    pub max_abs_pct_err: f64,
}

impl Default for Tolerance {
    /// Issue 3's goal: MAPE ≤ 5%, max ≤ 10%.
    fn default() -> Self {
        Tolerance {
            mape: 0.05,
            max_abs_pct_err: 0.10,
        }
    }
}

impl Tolerance {
    /// Whether `s` is within both bounds.
    pub fn passes(&self, s: &ErrorStats) -> bool {
        s.mape <= self.mape && s.max_abs_pct_err <= self.max_abs_pct_err
    }
}

/// What `perfcast calibrate` asks of a technique.
#[derive(Debug, Clone)]
pub struct CalibrateRequest<'a> {
    /// The catalog (GPUs, models).
    pub catalog: &'a Catalog,
    /// Catalog GPU the measurements were taken on.
    pub gpu: String,
    /// The calibration file to write (None: the technique's default path).
    pub out: Option<PathBuf>,
    /// Fit and print, but write nothing.
    pub dry_run: bool,
    /// Robust fit (technique-defined, e.g. Huber reweighting).
    pub robust: bool,
    /// Output format of the report.
    pub format: Format,
    /// Results files read (all techniques).
    pub files: usize,
    /// The command line, for the written file's header.
    pub command: String,
}

/// What `perfcast validate` asks of a technique.
#[derive(Debug, Clone)]
pub struct ValidateRequest<'a> {
    /// The catalog (GPUs, models, calibration tables).
    pub catalog: &'a Catalog,
    /// Catalog GPU the measurements were taken on.
    pub gpu: String,
    /// Directory for per-point and per-set CSVs and plots.
    pub out: PathBuf,
    /// Tolerance of every set.
    pub tolerance: Tolerance,
    /// The technique's cost source (specdec: `roofline`, `pooled`, `heldout`, `profile`).
    pub costs: String,
    /// Also record the per-set errors in this TOML file.
    pub record: Option<PathBuf>,
    /// Skip the plots.
    pub no_plots: bool,
    /// Output format of the report.
    pub format: Format,
}

/// What a technique hands back: the text to print and whether its sets passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Text for standard output.
    pub stdout: String,
    /// Whether every validated set met its tolerance (always true for a calibration).
    pub pass: bool,
}

/// A technique that can be calibrated from, and validated against, measurements: a fit of its
/// micro-measurement rows and a predictor of its end-to-end rows. Rows reach it through the
/// `technique` column ([`crate::measure::read_by_technique`]); a new technique implements this
/// trait and adds itself to [`crate::techniques`], touching no other technique.
pub trait Technique: Sync {
    /// The name in the `technique` column.
    fn name(&self) -> &'static str;

    /// The fidelity goal of the technique's end-to-end sets (its issue's), applied unless the
    /// user sets a tolerance: MAPE 5% and max 10% by default.
    fn goal(&self) -> Tolerance {
        Tolerance {
            mape: 0.05,
            max_abs_pct_err: 0.10,
        }
    }

    /// Fits the technique's parameters from its rows and writes its calibration file.
    ///
    /// # Errors
    /// Rows the technique rejects (one line naming file, line, column, value), or I/O.
    fn calibrate(&self, rows: Measurements, req: &CalibrateRequest) -> Result<Report>;

    /// Predicts every end-to-end row and reports the error per point and per set.
    ///
    /// # Errors
    /// As [`Technique::calibrate`].
    fn validate(&self, rows: Measurements, req: &ValidateRequest) -> Result<Report>;
}

/// One validated set as every technique reports it (`perfcast validate --format json` prints an
/// array of these, or of a technique's richer objects that carry at least these fields).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetSummary {
    /// Technique.
    pub technique: String,
    /// Set name.
    pub set: String,
    /// The technique's cost source or model variant (specdec: `roofline` …; freeze and
    /// embcache: `calibrated`, the fit of the micro rows).
    pub costs: String,
    /// End-to-end points.
    pub points: usize,
    /// Mean absolute relative error of the end-to-end metric, fraction.
    pub mape: f64,
    /// Largest |relative error|, fraction.
    pub max_abs_pct_err: f64,
    /// The tolerance applied.
    pub tolerance: Tolerance,
    /// Whether the set met the tolerance (and the technique's exactness checks).
    pub pass: bool,
    /// Catalog GPU.
    pub gpu: String,
    /// Whether a calibration (a fit of micro-measurements) was used.
    pub calibrated: bool,
}

impl SetSummary {
    /// A set predicted from a fit of the technique's own micro rows (`costs = "calibrated"`),
    /// under `req`'s tolerance and GPU.
    pub fn calibrated(
        technique: &str,
        set: &str,
        points: usize,
        (mape, max_abs_pct_err): (f64, f64),
        pass: bool,
        req: &ValidateRequest,
    ) -> Self {
        SetSummary {
            technique: technique.into(),
            set: set.into(),
            costs: "calibrated".into(),
            points,
            mape,
            max_abs_pct_err,
            tolerance: req.tolerance,
            pass,
            gpu: req.gpu.to_ascii_lowercase(),
            calibrated: true,
        }
    }

    /// The record entry of this set.
    pub fn recorded(&self) -> RecordedSet {
        RecordedSet {
            technique: self.technique.clone(),
            set: self.set.clone(),
            costs: self.costs.clone(),
            points: self.points,
            mape: self.mape,
            max_abs_pct_err: self.max_abs_pct_err,
            pass: self.pass,
        }
    }
}

/// The JSON array of `sets` (the `--format json` output of a technique's validation).
pub fn sets_json(sets: &[SetSummary]) -> String {
    let mut s = serde_json::to_string_pretty(sets).unwrap_or_else(|_| "[]".into());
    s.push('\n');
    s
}

/// Records `sets` in the validation record at `path` (created if missing) through
/// [`write_record`]: they replace the entries of their technique and cost source.
///
/// # Errors
/// As [`write_record`].
pub fn record_sets(path: &std::path::Path, gpu: &str, sets: &[SetSummary]) -> Result<()> {
    write_record(
        path,
        ValidationRecord {
            gpu: gpu.to_ascii_lowercase(),
            generated_by: format!("perfcast {} validate", env!("CARGO_PKG_VERSION")),
            date: crate::measure::utc_now(),
            calibrated: true,
            set: sets.iter().map(SetSummary::recorded).collect(),
            source: Vec::new(),
        },
    )
}

/// Merges `new` into the record file at `path` ([`merge_record`]; a record that lists no
/// results files keeps the old record's `source` list) and writes it atomically with its header.
///
/// # Errors
/// I/O, or a record that cannot be serialised.
pub fn write_record(path: &std::path::Path, new: ValidationRecord) -> Result<()> {
    let old_sources = old_record(path).map(|r| r.source).unwrap_or_default();
    let mut rec = merge_record(path, new);
    if rec.source.is_empty() {
        rec.source = old_sources;
    }
    let body = toml::to_string(&rec).map_err(|e| {
        crate::error::Error::Unsupported(format!("serialising the validation record: {e}"))
    })?;
    let text = format!("# Measured prediction error per set — generated by `perfcast validate --record`; do not edit by hand.\n{body}");
    crate::report::write_atomic(path, text.as_bytes())
}

/// The record already at `path`, if it is a regular file (following links) holding one: a FIFO
/// or a device (`--record /dev/null`) is written through, never read (`/dev/full` reads forever).
fn old_record(path: &std::path::Path) -> Option<ValidationRecord> {
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    toml::from_str::<ValidationRecord>(&text).ok()
}

/// Merges a technique's new per-set errors into the record file at `path` (if it exists),
/// keeping the sets of other techniques and of other cost sources.
pub fn merge_record(path: &std::path::Path, mut new: ValidationRecord) -> ValidationRecord {
    let replaced: Vec<(String, String)> = new
        .set
        .iter()
        .map(|s| (s.technique.clone(), s.costs.clone()))
        .collect();
    let kept: Vec<RecordedSet> = old_record(path)
        .map(|r| r.set)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| !replaced.contains(&(s.technique.clone(), s.costs.clone())))
        .collect();
    new.set.extend(kept);
    new
}

fn note_from(records: &[ValidationRecord], technique: &str) -> Option<String> {
    let mut parts = Vec::new();
    for r in records {
        let sets: Vec<&RecordedSet> = r.set.iter().filter(|s| s.technique == technique).collect();
        if sets.is_empty() {
            continue;
        }
        let fmt = |s: &RecordedSet| {
            format!(
                "MAPE {:.1}%, max {:.1}% ({})",
                100.0 * s.mape,
                100.0 * s.max_abs_pct_err,
                if s.pass {
                    "within tolerance"
                } else {
                    "**outside tolerance**"
                }
            )
        };
        let mut names: Vec<&str> = sets.iter().map(|s| s.set.as_str()).collect();
        names.dedup();
        names.sort_unstable();
        names.dedup();
        let desc: Vec<String> = names
            .iter()
            .map(|name| {
                let of = |c: &str| sets.iter().find(|s| s.set == *name && s.costs == c);
                let points = sets.iter().find(|s| s.set == *name).map_or(0, |s| s.points);
                let mut d = format!("`{name}` ({points} points):");
                let mut parts = Vec::new();
                for (c, what) in [
                    ("roofline", "with the calibrated latency model of architectures measured on this GPU"),
                    ("heldout", "for architectures never measured (each predicted by a fit without its own measurements: what predictions for other models carry)"),
                    ("profile", "given measured forward latencies (the speculative-decoding model alone)"),
                    ("calibrated", "with the fit of the technique's micro-measurements"),
                ] {
                    if let Some(s) = of(c) {
                        parts.push(format!(" {} {what}", fmt(s)));
                    }
                }
                d += &parts.join(";");
                d
            })
            .collect();
        parts.push(format!(
            "{} measured on {}{} ({}): {}",
            if technique == "specdec" {
                "tokens/s"
            } else {
                "times"
            },
            r.gpu,
            if r.calibrated {
                ", calibrated"
            } else {
                ", uncalibrated"
            },
            r.date,
            desc.join("; ")
        ));
    }
    (!parts.is_empty()).then(|| {
        parts.join(". ")
            + " (`perfcast validate` recomputes these; they apply on the GPU named, with the software stack calibrated there (specdec: the harness stack); other GPUs and stacks have no measured error)"
    })
}

/// One line for reports saying how far a technique's predictions have been checked against
/// measurements: the error recorded by `perfcast validate --record` in the catalog's
/// `calibration/*-validation.toml` files (embedded, or from `--catalog DIR`), with the set
/// names.
pub fn validation_note(cat: &Catalog, technique: &str) -> String {
    note_from(&cat.validation_records(), technique)
        .unwrap_or_else(|| format!("no committed measurement set validates `{technique}` yet: treat these numbers as uncalibrated model output"))
}

/// What each cost source of a recorded set means (the `costs` column of the validation records).
const COST_SOURCES: [(&str, &str); 5] = [
    ("roofline", "the calibrated latency model, architectures measured on this GPU"),
    ("pooled", "one latency model pooled over every measured architecture"),
    ("heldout", "architectures never measured: each predicted by a fit without its own measurements (what predictions for other models carry)"),
    ("profile", "given measured forward latencies (the speculative-decoding model alone)"),
    ("calibrated", "the fit of the technique's micro-measurements"),
];

/// The measured error of `technique` as a compact Markdown table (set, points, cost source,
/// MAPE, max, tolerance), one per GPU record, with the cost sources it uses explained once
/// below it. Errors are printed in percent with one decimal; the recorded fractions are in the
/// catalog's `calibration/*-validation.toml`.
pub fn validation_table(cat: &Catalog, technique: &str) -> String {
    table_from(&cat.validation_records(), technique).unwrap_or_else(|| {
        format!(
            "No committed measurement set validates `{technique}` yet: treat these numbers as \
             uncalibrated model output.\n"
        )
    })
}

fn table_from(records: &[ValidationRecord], technique: &str) -> Option<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut used: Vec<&str> = Vec::new();
    for r in records {
        let mut sets: Vec<&RecordedSet> =
            r.set.iter().filter(|s| s.technique == technique).collect();
        if sets.is_empty() {
            continue;
        }
        // Columns: the cost sources these sets use, in COST_SOURCES order.
        let mut cols: Vec<&str> = COST_SOURCES
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| sets.iter().any(|s| s.costs == *k))
            .collect();
        for s in &sets {
            if !cols.contains(&s.costs.as_str()) {
                cols.push(s.costs.as_str());
            }
        }
        for c in &cols {
            if !used.contains(c) {
                used.push(c);
            }
        }
        sets.sort_by(|a, b| a.set.cmp(&b.set));
        let mut names: Vec<&str> = sets.iter().map(|s| s.set.as_str()).collect();
        names.dedup();
        let _ = writeln!(
            out,
            "{} measured on {} ({}, {}); each cell is MAPE / max, **bold** when outside \
             tolerance:\n",
            if technique == "specdec" {
                "Tokens/s"
            } else {
                "Times"
            },
            r.gpu,
            if r.calibrated {
                "calibrated"
            } else {
                "uncalibrated"
            },
            r.date
        );
        let _ = writeln!(out, "| set | points | {} |", cols.join(" | "));
        let _ = writeln!(out, "|---|---:|{}", "---:|".repeat(cols.len()));
        for name in names {
            let of = |c: &str| sets.iter().find(|s| s.set == name && s.costs == c);
            let points = sets.iter().find(|s| s.set == name).map_or(0, |s| s.points);
            let cells: Vec<String> = cols
                .iter()
                .map(|c| match of(c) {
                    None => "—".into(),
                    Some(s) => {
                        let v =
                            format!("{:.1}% / {:.1}%", 100.0 * s.mape, 100.0 * s.max_abs_pct_err);
                        if s.pass {
                            v
                        } else {
                            format!("**{v}**")
                        }
                    }
                })
                .collect();
            let _ = writeln!(out, "| `{name}` | {points} | {} |", cells.join(" | "));
        }
        out.push('\n');
    }
    if out.is_empty() {
        return None;
    }
    let legend: Vec<String> = COST_SOURCES
        .iter()
        .filter(|(k, _)| used.contains(k))
        .map(|(k, what)| format!("`{k}`: {what}"))
        .collect();
    let _ = writeln!(
        out,
        "Cost sources: {}. `perfcast validate` recomputes these; other GPUs are uncalibrated.",
        legend.join("; ")
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_cites_sets_and_errors() {
        let r = ValidationRecord {
            gpu: "h200".into(),
            generated_by: "t".into(),
            date: "2026-11-29T00:00:00Z".into(),
            calibrated: true,
            set: vec![RecordedSet {
                technique: "specdec".into(),
                set: "h200-e2e".into(),
                costs: "profile".into(),
                points: 24,
                mape: 0.031,
                max_abs_pct_err: 0.072,
                pass: true,
            }],
            source: vec![],
        };
        let n = note_from(std::slice::from_ref(&r), "specdec").unwrap();
        assert!(
            n.contains("`h200-e2e` (24 points): MAPE 3.1%, max 7.2% (within tolerance) given measured forward latencies"),
            "{n}"
        );
        assert!(note_from(&[r], "zz-new").is_none());
        assert!(
            validation_note(&Catalog::embedded().unwrap(), "no-such-technique")
                .contains("uncalibrated")
        );
    }

    #[test]
    fn the_note_follows_the_catalog_dir() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("calibration")).unwrap();
        std::fs::write(
            d.path().join("calibration/h200-validation.toml"),
            "gpu = \"h200\"\ngenerated_by = \"t\"\ndate = \"2026-11-29T00:00:00Z\"\ncalibrated = true\nsource = []\n[[set]]\ntechnique = \"zz-new\"\nset = \"f1\"\ncosts = \"roofline\"\npoints = 3\nmape = 0.5\nmax_abs_pct_err = 0.6\npass = false\n",
        )
        .unwrap();
        let embedded = Catalog::embedded().unwrap();
        let over = Catalog::load(Some(d.path())).unwrap();
        // zz-new has no committed set; the override gives it one.
        assert!(validation_note(&embedded, "zz-new").starts_with("no committed measurement set"));
        let n = validation_note(&over, "zz-new");
        assert!(
            n.contains("`f1` (3 points): MAPE 50.0%, max 60.0% (**outside tolerance**)"),
            "{n}"
        );
        // The override replaced the embedded h200 record: no specdec sets left.
        assert!(validation_note(&over, "specdec").starts_with("no committed"));
    }

    #[test]
    fn table_has_one_row_per_set_and_cost_source() {
        let set = |name: &str, costs: &str, mape: f64, pass: bool| RecordedSet {
            technique: "specdec".into(),
            set: name.into(),
            costs: costs.into(),
            points: 24,
            mape,
            max_abs_pct_err: 0.072,
            pass,
        };
        let r = ValidationRecord {
            gpu: "h200".into(),
            generated_by: "t".into(),
            date: "2026-11-29T00:00:00Z".into(),
            calibrated: true,
            set: vec![
                set("h200-e2e", "profile", 0.031, true),
                set("h200-e2e", "roofline", 0.12, false),
                set("other", "calibrated", 0.5, false),
            ],
            source: vec![],
        };
        let t = table_from(std::slice::from_ref(&r), "specdec").unwrap();
        // One row per set, one column per cost source in use (roofline before profile).
        assert!(
            t.contains("| set | points | roofline | profile | calibrated |"),
            "{t}"
        );
        assert!(
            t.contains("| `h200-e2e` | 24 | **12.0% / 7.2%** | 3.1% / 7.2% | — |"),
            "{t}"
        );
        assert!(
            t.contains("| `other` | 24 | — | — | **50.0% / 7.2%** |"),
            "{t}"
        );
        assert_eq!(t.lines().filter(|l| l.starts_with("| `")).count(), 2);
        // Each source is explained once; unused ones are not.
        assert_eq!(t.matches("`profile`: given measured").count(), 1, "{t}");
        assert!(!t.contains("`heldout`"), "{t}");
        assert!(table_from(&[r], "freeze").is_none());
    }

    #[test]
    fn tolerance_needs_both_bounds() {
        let t = Tolerance::default();
        let s = |mape, max| ErrorStats {
            points: 2,
            mape,
            max_abs_pct_err: max,
            mean_pct_err: 0.0,
            rms_pct_err: 0.0,
            bias_ci95: 0.0,
        };
        assert!(t.passes(&s(0.05, 0.10)));
        assert!(!t.passes(&s(0.051, 0.02)));
        assert!(!t.passes(&s(0.01, 0.11)));
    }
}
