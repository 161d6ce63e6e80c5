//! `perfcast run [SCENARIO] [--out DIR]`: the main job.

use super::{Globals, Outcome};
use clap::Args;
use perfcast::report::{print_records, run_scenario, Format, Rows};
use perfcast::scenario::RunContext;
use perfcast::studies;
use perfcast::Result;
use serde_json::json;
use std::path::PathBuf;

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario TOML file (default: the embedded models/scenarios/default.toml).
    pub scenario: Option<PathBuf>,
    /// Output directory (default: reports/<scenario name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Most grid points over all studies (every point is built before evaluation); in
    /// [1, 10^9].
    #[arg(long, default_value_t = perfcast::scenario::DEFAULT_MAX_POINTS)]
    pub max_points: u64,
    /// Write the default scenario (the embedded one, or the --catalog's) to stdout, to start a
    /// scenario from, and exit.
    #[arg(long, conflicts_with_all = ["scenario", "out", "seed", "explain"])]
    pub print_default: bool,
    /// Write the scenario reference (every key of every technique, its flag, value and default;
    /// docs/scenarios.md) to stdout and exit.
    #[arg(long, conflicts_with_all = ["scenario", "out", "seed"])]
    pub explain: bool,
}

pub fn exec(a: RunArgs, g: &Globals) -> Result<Outcome> {
    if a.print_default {
        return Ok(Outcome::ok(
            g.catalog.read_text("scenarios/default.toml")?.0,
        ));
    }
    if a.explain {
        return Ok(Outcome::ok(super::explain::explain()));
    }
    let (text, path) = match &a.scenario {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| perfcast::Error::io(p, e))?,
            p.clone(),
        ),
        None => g.catalog.read_text("scenarios/default.toml")?,
    };
    let limits = perfcast::scenario::Limits::new(a.max_points)?;
    let sc = studies::load_with(&text, &path, &g.catalog, limits)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&sc.name));
    let seed = a.seed.unwrap_or(sc.seed);
    let ctx = RunContext {
        seed,
        progress: !g.quiet,
    };
    let started = std::time::Instant::now();
    let files = run_scenario(&sc, &out, &ctx, &g.catalog)?;
    let secs = started.elapsed().as_secs_f64();
    let text = match g.format {
        Format::Json => {
            serde_json::to_string_pretty(&json!({
                "scenario": sc.name, "seed": seed, "out_dir": out, "elapsed_s": secs,
                "files": files,
            }))
            .unwrap_or_default()
                + "\n"
        }
        _ => {
            let rows = Rows {
                records: files
                    .iter()
                    .map(|f| json!({"file": f}).as_object().cloned().unwrap_or_default())
                    .collect(),
            };
            let mut s = format!(
                "scenario {} (seed {seed}): {} files in {} ({secs:.2} s)\n",
                sc.name,
                files.len(),
                out.display()
            );
            s.push_str(&print_records(&rows, g.format, true));
            s
        }
    };
    Ok(Outcome::ok(text))
}
