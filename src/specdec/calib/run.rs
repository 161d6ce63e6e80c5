//! specdec's side of `perfcast calibrate` and `perfcast validate` ([`Specdec`], registered
//! in [`crate::techniques`]): the latency fit written as `models/calibration/<gpu>.toml`, and
//! the validation of end-to-end rows with its tables, plots and record.

use super::dataset::Dataset;
use super::fit::{fit_latency, fit_per_model, FitOptions, K};
use super::validate::validate;
use super::{CalibrationFile, FitSummary, ModelCalibration};
use crate::catalog::{RecordedSet, ValidationRecord};
use crate::error::{Error, Result};
use crate::measure::{utc_now, Measurements};
use crate::report::summary::prepare_out_dir;
use crate::report::{print_records, write_atomic, Format, Rows};
use crate::validate::{write_record, CalibrateRequest, Report, Technique, ValidateRequest};
use serde_json::json;
use std::fmt::Write as _;
use std::path::PathBuf;

/// specdec as a calibrated technique.
#[derive(Debug, Clone, Copy, Default)]
pub struct Specdec;

impl Technique for Specdec {
    fn name(&self) -> &'static str {
        "specdec"
    }

    fn calibrate(&self, rows: Measurements, req: &CalibrateRequest) -> Result<Report> {
        calibrate(rows, req)
    }

    fn validate(&self, rows: Measurements, req: &ValidateRequest) -> Result<Report> {
        validate_cmd(rows, req)
    }
}

const EFF_NAMES: [&str; K] = [
    "flops_efficiency",
    "bw_efficiency",
    "layer_overhead_s",
    "step_overhead_s",
    "host_layer_s",
    "score_elem_s",
    "attn_bw_efficiency",
    "multi_token_layer_s",
    "multi_row_layer_s",
    "attn_stream_bw_bytes_per_s",
    "act_elem_s",
];

/// A fraction with 4 decimals, or in scientific notation when tiny.
fn num(x: f64) -> String {
    if x >= 1e-3 {
        format!("{x:.4}")
    } else {
        format!("{x:.4e}")
    }
}

/// Fits the latency model of `a.gpu` from the `forward` rows and writes the calibration file.
///
/// # Errors
/// Malformed rows, a GPU mismatch with the rows' provenance, a failed fit, or I/O.
pub fn calibrate(rows: Measurements, a: &CalibrateRequest) -> Result<Report> {
    let gpu = a.catalog.gpu(&a.gpu)?.clone();
    let ds = Dataset::from_measurements(rows)?;
    ds.check_gpu(&gpu)?;
    let fit = fit_latency(
        &ds.forward,
        a.catalog,
        &gpu,
        &gpu.latency,
        FitOptions::full(a.robust),
    )?;
    let per_model = fit_per_model(&ds.forward, a.catalog, &gpu, &fit, a.robust)?;
    let names = |mask: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..K)
            .filter(|&j| mask(j))
            .map(|j| EFF_NAMES[j].to_string())
            .collect()
    };
    let mut sets: Vec<String> = ds.forward.iter().map(|p| p.set.clone()).collect();
    sets.sort();
    sets.dedup();
    let summary = FitSummary {
        method: format!(
            "weighted linear least squares (weights 1/measured: relative error) over (1/P, 1/BW, layer_overhead_s, step_overhead_s, host_layer_s, score_elem_s, 1/BW_attn, multi_token_layer_s, multi_row_layer_s, 1/BW_stream, act_elem_s), \
             regimes (compute/memory per roofline term, attention also stream-bound, host/GPU per layer) iterated to a fixed point from {} starts, \
             bounds efficiency <= 1 and overheads >= 0, SVD (nalgebra); then each architecture with >= {} points refitted from the pooled values with step_overhead_s held ([model.*]){}",
            fit.starts,
            super::fit::MIN_POINTS_PER_MODEL,
            if a.robust {
                format!("; robust: Huber reweighting (k = 1.345 x MAD), {} points down-weighted", fit.downweighted)
            } else {
                String::new()
            }
        ),
        points: fit.stats.points,
        rms_rel_err: fit.stats.rms_pct_err,
        mape: fit.stats.mape,
        max_abs_pct_err: fit.stats.max_abs_pct_err,
        mean_pct_err: fit.stats.mean_pct_err,
        flops_per_s: fit.flops_per_s,
        bw_bytes_per_s: fit.bw_bytes_per_s,
        identified: names(&|j| fit.identified[j]),
        not_identified: names(&|j| !fit.identified[j]),
        at_bound: names(&|j| fit.at_bound[j]),
        ci95_rel: (0..K).filter_map(|j| fit.ci95_rel[j].map(|c| (EFF_NAMES[j].to_string(), c))).collect(),
        sets,
        iterations: fit.iterations,
        starts: fit.starts,
    };
    let file = CalibrationFile {
        gpu: gpu.name.clone(),
        generated_by: format!("perfcast {} calibrate", env!("CARGO_PKG_VERSION")),
        date: utc_now(),
        fitted_kinds: vec!["forward".into()],
        latency: fit.latency,
        fit: summary,
        source: ds.sources.clone(),
        model: per_model
            .iter()
            .map(|m| {
                (
                    m.model.clone(),
                    ModelCalibration {
                        latency: m.fit.latency,
                        not_identified: names(&|j| {
                            !m.fit.identified[j] && !super::fit::HELD_PER_MODEL.contains(&j)
                        }),
                        points: m.fit.stats.points,
                        mape: m.fit.stats.mape,
                        max_abs_pct_err: m.fit.stats.max_abs_pct_err,
                        pooled_mape: m.pooled.mape,
                        pooled_max_abs_pct_err: m.pooled.max_abs_pct_err,
                        held_out_mape: m.held_out.as_ref().map(|h| h.mape),
                        held_out_max_abs_pct_err: m.held_out.as_ref().map(|h| h.max_abs_pct_err),
                        held_out_latency: m.held_out_latency,
                    },
                )
            })
            .collect(),
        residual: fit.residuals.clone(),
    };
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("models/calibration").join(format!("{}.toml", gpu.name)));
    if !a.dry_run {
        let body = toml::to_string(&file)
            .map_err(|e| Error::Unsupported(format!("serialising the calibration: {e}")))?;
        let text = format!(
            "# Calibration of the specdec latency model for {} — generated by `perfcast {}`; do not edit by hand.\n\
             # Fitted from kind=forward rows only; [[residual]] lists every fitted point.\n{body}",
            gpu.name, a.command
        );
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        write_atomic(&out, text.as_bytes())?;
    }
    let stdout = match a.format {
        Format::Json => {
            serde_json::to_string_pretty(&json!({
                "gpu": gpu.name,
                "out": if a.dry_run { serde_json::Value::Null } else { json!(out) },
                "latency": file.latency,
                "fit": file.fit,
                "model": file.model,
                "sources": file.source,
                "residuals": file.residual,
            }))
            .unwrap_or_default()
                + "\n"
        }
        Format::Csv => print_records(&Rows::from_serialize(&fit.residuals), Format::Csv, true),
        Format::Table => {
            let mut s = String::new();
            let l = &fit.latency;
            let ci = |j: usize| {
                fit.ci95_rel[j]
                    .map(|c| format!(" (±{:.1}% at 95%)", 100.0 * c))
                    .unwrap_or_default()
            };
            let flag = |j: usize| {
                if !fit.identified[j] {
                    " [not identified by the data: catalog default kept]"
                } else if fit.at_bound[j] {
                    " [at its bound]"
                } else {
                    ""
                }
            };
            let _ = writeln!(
                s,
                "calibration of {} from {} forward points in {} file(s){}",
                gpu.name,
                fit.stats.points,
                a.files,
                if a.dry_run {
                    " (dry run: nothing written)"
                } else {
                    ""
                }
            );
            let _ = writeln!(
                s,
                "{:<27}{}  ({:.1} TFLOP/s effective){}{}",
                EFF_NAMES[0],
                num(l.flops_efficiency),
                fit.flops_per_s / 1e12,
                ci(0),
                flag(0)
            );
            let _ = writeln!(
                s,
                "{:<27}{}  ({:.3} TB/s effective){}{}",
                EFF_NAMES[1],
                num(l.bw_efficiency),
                fit.bw_bytes_per_s / 1e12,
                ci(1),
                flag(1)
            );
            // Times in seconds, by their index in θ (EFF_NAMES); attention bandwidth is a
            // fraction like the first two.
            for (j, v) in [
                (2, l.layer_overhead_s),
                (3, l.step_overhead_s),
                (4, l.host_layer_s),
                (5, l.score_elem_s),
            ] {
                let _ = writeln!(s, "{:<27}{v:.4e}{}{}", EFF_NAMES[j], ci(j), flag(j));
            }
            let _ = writeln!(
                s,
                "{:<27}{}{}{}",
                EFF_NAMES[6],
                l.attn_bw_efficiency
                    .map(num)
                    .unwrap_or_else(|| "(= bw_efficiency)".into()),
                ci(6),
                flag(6)
            );
            for (j, v) in [
                (7, l.multi_token_layer_s),
                (8, l.multi_row_layer_s),
                (9, l.attn_stream_bw_bytes_per_s.unwrap_or(f64::INFINITY)),
                (10, l.act_elem_s),
            ] {
                let _ = writeln!(s, "{:<27}{v:.4e}{}{}", EFF_NAMES[j], ci(j), flag(j));
            }
            let _ = writeln!(
                s,
                "forward-latency fit: RMS {:.2}%, MAPE {:.2}%, max {:.2}%, bias {:+.2}%",
                100.0 * fit.stats.rms_pct_err,
                100.0 * fit.stats.mape,
                100.0 * fit.stats.max_abs_pct_err,
                100.0 * fit.stats.mean_pct_err
            );
            let pct = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{:.2}%", 100.0 * x));
            let _ = writeln!(
                s,
                "per-architecture refits (MAPE / max on the architecture's own points; held out = pooled fit without it):"
            );
            let _ = writeln!(
                s,
                "  {:<16}{:>7}  {:>17}  {:>17}  {:>17}",
                "model", "points", "refit", "pooled", "held out"
            );
            for (name, m) in &file.model {
                let _ = writeln!(
                    s,
                    "  {:<16}{:>7}  {:>8}/{:>8}  {:>8}/{:>8}  {:>8}/{:>8}",
                    name,
                    m.points,
                    pct(Some(m.mape)),
                    pct(Some(m.max_abs_pct_err)),
                    pct(Some(m.pooled_mape)),
                    pct(Some(m.pooled_max_abs_pct_err)),
                    pct(m.held_out_mape),
                    pct(m.held_out_max_abs_pct_err)
                );
            }
            if !a.dry_run {
                let _ = writeln!(s, "wrote {}", out.display());
            }
            s.push('\n');
            s.push_str(&print_records(
                &Rows::from_serialize(&fit.residuals),
                Format::Table,
                true,
            ));
            s
        }
    };
    Ok(Report { stdout, pass: true })
}

/// Predicts every end-to-end row, writes points.csv, sets.csv and the plots to `a.out`, and
/// optionally records the per-set errors.
///
/// # Errors
/// Malformed rows, unknown names, or I/O.
pub fn validate_cmd(rows: Measurements, a: &ValidateRequest) -> Result<Report> {
    let ds = Dataset::from_measurements(rows)?;
    ds.check_gpu(a.catalog.gpu(&a.gpu)?)?;
    let v = validate(&ds, a.catalog, &a.gpu, a.tolerance, a.costs.parse()?)?;
    prepare_out_dir(&a.out)?;
    Rows::from_serialize(&v.points).write_csv(&a.out.join("points.csv"))?;
    Rows::from_serialize(&v.sets).write_csv(&a.out.join("sets.csv"))?;
    if !a.no_plots {
        super::plot::write_plots(&v.points, &a.out)?;
    }
    if let Some(path) = &a.record {
        // Keep the other cost source's (and technique's) recorded sets: one file records all.
        let rec = ValidationRecord {
            gpu: a.gpu.to_ascii_lowercase(),
            generated_by: format!("perfcast {} validate", env!("CARGO_PKG_VERSION")),
            date: utc_now(),
            calibrated: v.calibrated,
            set: v
                .sets
                .iter()
                .map(|s| RecordedSet {
                    technique: s.technique.clone(),
                    set: s.set.clone(),
                    costs: s.costs.as_str().to_string(),
                    points: s.points,
                    mape: s.mape,
                    max_abs_pct_err: s.max_abs_pct_err,
                    pass: s.pass,
                })
                .collect(),
            source: ds.sources.clone(),
        };
        write_record(path, rec)?;
    }
    let rows = Rows::from_serialize(&v.sets);
    let mut stdout = print_records(&rows, a.format, true);
    if a.format == Format::Table {
        let failed: Vec<&str> = v
            .sets
            .iter()
            .filter(|s| !s.pass)
            .map(|s| s.set.as_str())
            .collect();
        stdout.push_str(&format!(
            "\n{} e2e points in {} set(s), latency model {}; per-point errors, parity plot and γ curves in {}\n{}\n",
            v.points.len(),
            v.sets.len(),
            if v.calibrated { "calibrated" } else { "UNCALIBRATED (catalog defaults)" },
            a.out.display(),
            if failed.is_empty() { "all sets within tolerance".to_string() } else { format!("outside tolerance: {}", failed.join(", ")) }
        ));
    }
    Ok(Report {
        stdout,
        pass: v.pass(),
    })
}
