//! `perfcast calibrate`: reads measurement CSVs and hands each technique its rows (by the
//! `technique` column, [`perfcast::techniques`]); specdec fits the latency model of one GPU
//! from its `forward` rows and writes `models/calibration/<gpu>.toml`.

use super::{Globals, Outcome};
use clap::Args;
use perfcast::validate::CalibrateRequest;
use perfcast::{Error, Result};
use std::path::PathBuf;

/// Arguments of `calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Measurement CSV files (default: every validation/results/*.csv). Only kind=forward rows
    /// are fitted; acceptance and e2e rows are ignored.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub results: Vec<PathBuf>,
    /// GPU (catalog name) whose peaks the efficiencies are relative to.
    #[arg(long, default_value = "h200")]
    pub gpu: String,
    /// Calibration file to write (default: models/calibration/<gpu>.toml).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Fit and print, but write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Robust fit: Huber-reweighted least squares (k = 1.345 × MAD of the relative residuals),
    /// so a few bursty measurements pull the parameters less.
    #[arg(long)]
    pub robust: bool,
}

pub fn exec(a: CalibrateArgs, g: &Globals) -> Result<Outcome> {
    g.catalog.gpu(&a.gpu)?;
    let files = if a.results.is_empty() {
        perfcast::measure::csv_files(std::path::Path::new("validation/results"))?
    } else {
        a.results.clone()
    };
    if files.is_empty() {
        return Err(Error::range(
            "--results",
            "no files (validation/results has no *.csv)",
            "one or more measurement CSV files",
        ));
    }
    let req = CalibrateRequest {
        catalog: &g.catalog,
        gpu: a.gpu.clone(),
        out: a.out.clone(),
        dry_run: a.dry_run,
        robust: a.robust,
        format: g.format,
        files: files.len(),
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
    };
    let routed = perfcast::techniques::route(&files)?;
    // Techniques other than specdec write `<gpu>-<technique>.toml` beside `--out`: next to a
    // device or FIFO (`--out /dev/null`) that would be a file in /dev.
    if let (Some(out), false) = (&a.out, a.dry_run) {
        let special = std::fs::metadata(out).is_ok_and(|m| !m.is_file() && !m.is_dir());
        if let Some((t, _)) = routed
            .iter()
            .find(|(t, _)| special && t.name() != "specdec")
        {
            return Err(Error::range(
                "--out",
                out.display(),
                format!(
                    "a file path when {} rows are calibrated (their file is written beside --out);                      a device or FIFO receives specdec's file only (--dry-run writes nothing)",
                    t.name()
                ),
            ));
        }
    }
    let mut stdout = String::new();
    // One step per technique's fit, on stderr (a terminal, no -q).
    let bar =
        perfcast::sweep::Progress::counting(routed.len() as u64, "calibrate", "fits", !g.quiet);
    for (technique, rows) in routed {
        bar.set_message(technique.name());
        stdout.push_str(&technique.calibrate(rows, &req)?.stdout);
        bar.inc(1);
    }
    bar.finish();
    Ok(Outcome::ok(stdout))
}
