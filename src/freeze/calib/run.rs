//! freeze's side of `perfcast calibrate` and `perfcast validate` ([`Freeze`], registered in
//! [`crate::techniques`]).
//!
//! - `calibrate` fits [`super::FreezeCalibration`] from the `micro` rows and writes it as
//!   `<gpu>-freeze.toml` in `models/calibration/` (or in `--out`'s folder: `--out` names
//!   specdec's file): per shape the unit costs, the iteration
//!   remainder and the RAM tier's bandwidths, with the measured whole iterations it reproduces.
//! - `validate` fits the same calibration from the `micro` rows given with the `e2e` rows (the
//!   fit is deterministic, so this equals the committed file's numbers), predicts every `e2e`
//!   run ([`super::predict`]) and reports, per set, the points, MAPE, max |error| and the largest
//!   frozen-prefix timeline difference in units; `freeze-points.csv` in the output directory
//!   holds every point. A set passes when both error bounds hold and every timeline is within
//!   ±1 unit (issue 13's goal).

use super::{e2e_runs, fit, predict, summary, E2ePrediction, FreezeCalibration, MeasRow};
use crate::error::{Error, Result};
use crate::measure::{utc_now, Measurements};
use crate::report::write_atomic;
use crate::validate::{
    record_sets, sets_json, CalibrateRequest, Report, SetSummary, Technique, ValidateRequest,
};
use serde::Serialize;
use std::fmt::Write as _;

/// freeze as a calibrated technique.
#[derive(Debug, Clone, Copy, Default)]
pub struct Freeze;

impl Technique for Freeze {
    fn name(&self) -> &'static str {
        "freeze"
    }

    fn calibrate(&self, rows: Measurements, req: &CalibrateRequest) -> Result<Report> {
        calibrate(rows, req)
    }

    fn validate(&self, rows: Measurements, req: &ValidateRequest) -> Result<Report> {
        validate(rows, req)
    }
}

fn rows_of(m: &Measurements) -> Vec<MeasRow> {
    m.rows.iter().map(|(_, r)| MeasRow::from_row(r)).collect()
}

/// The calibration file's shape (TOML: one `[[shape]]` table per measured shape).
#[derive(Debug, Serialize)]
struct File<'a> {
    gpu: &'a str,
    generated_by: String,
    date: String,
    command: &'a str,
    sets: &'a [String],
    shape: Vec<ShapeEntry<'a>>,
}

#[derive(Debug, Serialize)]
struct ShapeEntry<'a> {
    #[serde(flatten)]
    key: &'a super::ShapeKey,
    #[serde(flatten)]
    cal: &'a super::ShapeCal,
}

/// Text table of a calibration.
pub fn describe(cal: &FreezeCalibration) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "shape",
        "blk fwd",
        "blk igrad",
        "blk wgrad",
        "blk opt",
        "fwd scale",
        "bwd scale",
        "RAM r GB/s"
    );
    for (k, c) in &cal.shapes {
        let _ = writeln!(
            s,
            "{:<34} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>10.4} {:>10.2}",
            k.to_string(),
            c.block.forward_s * 1e3,
            c.block.input_grad_s * 1e3,
            c.block.weight_grad_s * 1e3,
            c.block.optimizer_s * 1e3,
            c.forward_scale,
            c.backward_scale,
            c.ram_read_bytes_per_s / 1e9
        );
    }
    s.push_str("(unit times: isolated micro timings, ms per iteration; the model multiplies forwards by fwd scale and the rest by bwd scale, fitted to the whole-iteration micro rows)\n");
    s
}

/// The calibration file's text.
///
/// # Errors
/// A value TOML cannot hold.
pub fn calibration_toml(cal: &FreezeCalibration, gpu: &str, command: &str) -> Result<String> {
    let file = File {
        gpu,
        generated_by: format!("perfcast {} calibrate", env!("CARGO_PKG_VERSION")),
        date: utc_now(),
        command,
        sets: &cal.sets,
        shape: cal
            .shapes
            .iter()
            .map(|(key, cal)| ShapeEntry { key, cal })
            .collect(),
    };
    toml::to_string(&file)
        .map_err(|e| Error::range("freeze calibration", e.to_string(), "serializable as TOML"))
}

/// Fits and (unless `dry_run`) writes the calibration.
///
/// # Errors
/// No micro rows, a shape missing a metric, I/O.
pub fn calibrate(rows: Measurements, req: &CalibrateRequest) -> Result<Report> {
    let cal = fit(&rows_of(&rows))?;
    let mut out = describe(&cal);
    if !req.dry_run {
        // Next to `--out` (which names specdec's file) or in models/calibration/.
        let dir = req
            .out
            .as_ref()
            .and_then(|p| p.parent())
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(
                || std::path::PathBuf::from("models/calibration"),
                |d| d.to_path_buf(),
            );
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{}-freeze.toml", req.gpu));
        write_atomic(
            &path,
            calibration_toml(&cal, &req.gpu, &req.command)?.as_bytes(),
        )?;
        let _ = writeln!(out, "wrote {}", path.display());
    }
    Ok(Report {
        stdout: out,
        pass: true,
    })
}

/// Per-set result of a validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetResult {
    /// Set.
    pub set: String,
    /// Points.
    pub points: usize,
    /// Mean |relative error| of the run totals, fraction.
    pub mape: f64,
    /// Largest |relative error|, fraction.
    pub max_abs_pct_err: f64,
    /// Largest frozen-prefix difference (units) at any iteration of any run.
    pub timeline_max_layer_diff: usize,
    /// Both error bounds hold and every timeline is within ±1 unit.
    pub pass: bool,
}

/// Predicts every e2e run of `rows` from the micro rows among them; per-set results and the
/// points.
///
/// # Errors
/// No micro or no e2e rows; a run at a shape without micro rows; a bad policy.
pub fn score(
    rows: &[MeasRow],
    tol: &crate::validate::Tolerance,
) -> Result<(Vec<SetResult>, Vec<E2ePrediction>)> {
    let cal = fit(rows)?;
    let runs = e2e_runs(rows)?;
    if runs.is_empty() {
        return Err(Error::range(
            "measurements",
            "no freeze e2e rows",
            "rows of kind e2e from perfcast-gpu freeze e2e",
        ));
    }
    let preds = runs
        .iter()
        .map(|r| predict(&cal, r))
        .collect::<Result<Vec<_>>>()?;
    let mut sets: Vec<String> = preds.iter().map(|p| p.set.clone()).collect();
    sets.sort();
    sets.dedup();
    let results = sets
        .into_iter()
        .map(|set| {
            let ps: Vec<E2ePrediction> = preds.iter().filter(|p| p.set == set).cloned().collect();
            let (points, mape, max, tl) = summary(&ps);
            SetResult {
                set,
                points,
                mape,
                max_abs_pct_err: max,
                timeline_max_layer_diff: tl,
                pass: mape <= tol.mape && max <= tol.max_abs_pct_err && tl <= 1,
            }
        })
        .collect();
    Ok((results, preds))
}

/// `perfcast validate` for freeze.
///
/// # Errors
/// As [`score`]; I/O writing the points.
pub fn validate(rows: Measurements, req: &ValidateRequest) -> Result<Report> {
    let (sets, preds) = score(&rows_of(&rows), &req.tolerance)?;
    std::fs::create_dir_all(&req.out).map_err(|e| Error::io(&req.out, e))?;
    let mut csv = String::from(
        "set,model,dtype,batch,seq,policy,tier,measured_s,predicted_s,rel_err,predicted_timeline,measured_timeline,timeline_max_layer_diff\n",
    );
    for p in &preds {
        let tl = |t: &[(u64, usize)]| {
            t.iter()
                .map(|(s, k)| format!("{s}:{k}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = writeln!(
            csv,
            "{},{},{},{},{},\"{}\",{},{:.6e},{:.6e},{:.6},{},{},{}",
            p.set,
            p.shape.model,
            p.shape.dtype,
            p.shape.batch,
            p.shape.seq,
            p.policy,
            p.tier.name(),
            p.measured_s,
            p.predicted_s,
            p.rel_err,
            tl(&p.predicted_timeline),
            tl(&p.measured_timeline),
            p.timeline_max_layer_diff
        );
    }
    let path = req.out.join("freeze-points.csv");
    write_atomic(&path, csv.as_bytes())?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "freeze: {} end-to-end points (total time per run; timeline in frozen units)",
        preds.len()
    );
    for s in &sets {
        let _ = writeln!(
            out,
            "  {}: {} points, MAPE {:.1}%, max {:.1}%, timeline within ±{} units: {}",
            s.set,
            s.points,
            100.0 * s.mape,
            100.0 * s.max_abs_pct_err,
            s.timeline_max_layer_diff,
            if s.pass { "PASS" } else { "FAIL" }
        );
    }
    let _ = writeln!(out, "  points: {}", path.display());
    let summaries: Vec<SetSummary> = sets
        .iter()
        .map(|s| {
            SetSummary::calibrated(
                "freeze",
                &s.set,
                s.points,
                (s.mape, s.max_abs_pct_err),
                s.pass,
                req,
            )
        })
        .collect();
    if let Some(path) = &req.record {
        record_sets(path, &req.gpu, &summaries)?;
    }
    if req.format == crate::report::Format::Json {
        out = sets_json(&summaries);
    }
    Ok(Report {
        stdout: out,
        pass: sets.iter().all(|s| s.pass),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{e2e_rows, micro_rows};
    use super::*;
    use crate::validate::Tolerance;

    #[test]
    fn score_passes_exact_runs_and_fails_far_ones() {
        let mut rows = micro_rows();
        rows.extend(e2e_rows("fixed:k=2", "none", 0.0232, &[(0, 2)]));
        rows.extend(e2e_rows("fixed:k=2", "ram", 0.032, &[(0, 2)]));
        let (sets, preds) = score(&rows, &Tolerance::default()).unwrap();
        assert_eq!(preds.len(), 2);
        assert_eq!(sets.len(), 1);
        assert!(sets[0].pass && sets[0].mape < 1e-9, "{sets:?}");
        // A run measured 30% slower than predicted fails the 10% bound.
        let mut rows = micro_rows();
        rows.extend(e2e_rows("fixed:k=2", "none", 0.0232 * 1.3, &[(0, 2)]));
        let (sets, _) = score(&rows, &Tolerance::default()).unwrap();
        assert!(!sets[0].pass);
        assert!((sets[0].max_abs_pct_err - (1.0 - 1.0 / 1.3)).abs() < 1e-9);
        // No e2e rows: one line naming what is missing.
        let e = score(&micro_rows(), &Tolerance::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no freeze e2e rows"), "{e}");
    }

    #[test]
    fn calibration_file_is_toml_with_every_shape() {
        let cal = fit(&micro_rows()).unwrap();
        let text = calibration_toml(&cal, "h200", "perfcast calibrate x").unwrap();
        let v: toml::Value = toml::from_str(&text).unwrap();
        let shapes = v["shape"].as_array().unwrap();
        assert_eq!(shapes.len(), 1);
        assert_eq!(shapes[0]["dtype"].as_str(), Some("bf16"));
        assert_eq!(shapes[0]["blocks"].as_integer(), Some(2));
        let sf = shapes[0]["forward_scale"].as_float().unwrap();
        assert!((sf - 0.8).abs() < 1e-12, "{sf}");
        assert!(describe(&cal).contains("val-bert-x bf16 batch 4 seq 16"));
    }
}
