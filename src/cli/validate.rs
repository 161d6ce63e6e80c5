//! `perfcast validate`: prediction error of every committed end-to-end measurement; each
//! technique's rows go to its predictor (by the `technique` column, [`perfcast::techniques`]).

use super::{Globals, Outcome};
use clap::Args;
use perfcast::validate::{Tolerance, ValidateRequest};
use perfcast::{Error, Result};
use std::path::PathBuf;

/// Arguments of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Directory of measurement CSVs (every *.csv), or one CSV file.
    #[arg(long, default_value = "validation/results")]
    pub results: PathBuf,
    /// Output directory for points.csv, sets.csv, the parity plot and the γ curves.
    #[arg(long, default_value = "reports/validation")]
    pub out: PathBuf,
    /// GPU (catalog name) the measurements were taken on; its calibration is used.
    #[arg(long, default_value = "h200")]
    pub gpu: String,
    /// Tolerance: largest allowed MAPE of a set, a fraction in [0, 100].
    #[arg(long, allow_negative_numbers = true)]
    pub max_mape: Option<f64>,
    /// Tolerance: largest allowed |error| of any point, a fraction in [0, 100].
    #[arg(long, allow_negative_numbers = true)]
    pub max_err: Option<f64>,
    /// Also write the per-set errors to this TOML file (reports cite
    /// models/calibration/<gpu>-validation.toml).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Skip the plots.
    #[arg(long)]
    pub no_plots: bool,
    /// Validate only these techniques' rows (comma-separated; default: every technique).
    #[arg(long, value_delimiter = ',')]
    pub technique: Vec<String>,
    /// Forward latencies from the calibrated roofline model (`roofline`, what `specdec`
    /// predicts with: each measured architecture at its own refit), from the pooled fit alone
    /// (`pooled`), from a fit without the architecture's own measurements (`heldout`: the error
    /// of a prediction for an architecture never measured on this GPU), or from the measured
    /// forward grid (`profile`: checks the speculative decoding model alone).
    #[arg(long, default_value = "roofline", value_parser = ["roofline", "pooled", "heldout", "profile"])]
    pub costs: String,
}

/// Largest tolerance `--max-mape` / `--max-err` accept, a fraction (10 000 %: any larger value
/// lets every point pass, which is what a large finite value already does).
pub const MAX_TOLERANCE: f64 = 100.0;

pub fn exec(a: ValidateArgs, g: &Globals) -> Result<Outcome> {
    // Tolerances are checked before any file is read.
    for (flag, v) in [("--max-mape", a.max_mape), ("--max-err", a.max_err)] {
        if let Some(v) = v {
            perfcast::check::in_closed(flag, v, 0.0, MAX_TOLERANCE)?;
        }
    }
    for t in &a.technique {
        if !perfcast::techniques::names().contains(&t.as_str()) {
            return Err(Error::unknown(
                "technique",
                t,
                perfcast::techniques::names(),
            ));
        }
    }
    let files = if a.results.is_dir() {
        perfcast::measure::csv_files(&a.results)?
    } else {
        vec![a.results.clone()]
    };
    if files.is_empty() {
        return Err(Error::range(
            "--results",
            a.results.display(),
            "a directory holding measurement CSVs (it has no *.csv)",
        ));
    }
    // The output directory must be a real directory (or a path to create) before any work; it
    // is created only once there is something to write.
    perfcast::report::check_dir(&a.out)?;
    let mut req = ValidateRequest {
        catalog: &g.catalog,
        gpu: a.gpu.clone(),
        out: a.out.clone(),
        tolerance: Tolerance {
            mape: 0.05,
            max_abs_pct_err: 0.10,
        },
        costs: a.costs.clone(),
        record: a.record.clone(),
        no_plots: a.no_plots,
        format: g.format,
    };
    let mut stdout = String::new();
    let mut json: Vec<serde_json::Value> = Vec::new();
    let mut pass = true;
    let routed: Vec<_> = perfcast::techniques::route(&files)?
        .into_iter()
        .filter(|(t, _)| a.technique.is_empty() || a.technique.iter().any(|n| n == t.name()))
        .collect();
    // One step per technique's sets, on stderr (a terminal, no -q).
    let bar = perfcast::sweep::Progress::counting(
        routed.len() as u64,
        "validate",
        "techniques",
        !g.quiet,
    );
    for (technique, rows) in routed {
        bar.set_message(technique.name());
        let goal = technique.goal();
        req.tolerance = Tolerance {
            mape: a.max_mape.unwrap_or(goal.mape),
            max_abs_pct_err: a.max_err.unwrap_or(goal.max_abs_pct_err),
        };
        let r = technique.validate(rows, &req)?;
        if g.format == perfcast::report::Format::Json {
            // Each technique prints a JSON array of its sets: one array for all of them.
            let v: serde_json::Value = serde_json::from_str(&r.stdout).map_err(|e| {
                Error::Unsupported(format!(
                    "{}'s validation printed no JSON array of sets: {e}",
                    technique.name()
                ))
            })?;
            json.extend(v.as_array().cloned().unwrap_or_default());
        } else {
            stdout.push_str(&r.stdout);
        }
        pass &= r.pass;
        bar.inc(1);
    }
    bar.finish();
    if g.format == perfcast::report::Format::Json {
        stdout = serde_json::to_string_pretty(&json).unwrap_or_default();
        stdout.push('\n');
    }
    Ok(Outcome {
        stdout,
        stderr: String::new(),
        code: if pass { 0 } else { 1 },
    })
}
