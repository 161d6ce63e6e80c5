//! Running a whole scenario into an output directory: one tidy CSV per study, plots, and
//! `summary.md` with the headline answers.

use super::csv::write_atomic;
use crate::error::{Error, Result};
use crate::scenario::{RunContext, Scenario};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Creates `out` if needed and checks it is writable, before any work is done.
///
/// # Errors
/// [`Error::Io`] naming the directory.
pub fn prepare_out_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    tempfile::Builder::new()
        .prefix(".perfcast-probe-")
        .tempfile_in(out)
        .map_err(|e| Error::io(out, e))?;
    Ok(())
}

/// Evaluates every study of `scenario` and writes its report under `out`. Returns the files
/// written, in order. Nothing is written until every study has been evaluated, and each file is
/// written atomically.
///
/// # Errors
/// Evaluation errors, or [`Error::Io`] when a file cannot be written.
pub fn run_scenario(
    scenario: &Scenario,
    out: &Path,
    ctx: &RunContext,
    cat: &crate::Catalog,
) -> Result<Vec<PathBuf>> {
    prepare_out_dir(out)?;
    let started = std::time::Instant::now();
    let mut reports = Vec::new();
    for s in &scenario.studies {
        reports.push((s, s.run(ctx)?));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut files = Vec::new();
    let mut md = String::new();
    let _ = writeln!(md, "# perfcast report: {}\n", scenario.name);
    if !scenario.description.is_empty() {
        let _ = writeln!(md, "{}\n", scenario.description.trim());
    }
    let _ = writeln!(
        md,
        "perfcast {} · seed {} · {} studies · {} points · evaluated in {:.2} s\n",
        env!("CARGO_PKG_VERSION"),
        ctx.seed,
        scenario.studies.len(),
        scenario.studies.iter().map(|s| s.points()).sum::<usize>(),
        elapsed
    );
    for (study, rep) in &reports {
        let csv = out.join(format!("{}.csv", study.name()));
        rep.rows.write_csv(&csv)?;
        files.push(csv.clone());
        let _ = writeln!(md, "{}", rep.summary_md.trim_end());
        let _ = writeln!(
            md,
            "\nMeasured error: {}\n",
            crate::validate::validation_note(cat, study.technique())
        );
        let _ = writeln!(md, "Data: [{0}.csv]({0}.csv)", study.name());
        for p in &rep.plots {
            match p.write(out) {
                Ok(fs) => {
                    let _ = writeln!(md, "\n![{0}]({0}.png) ([SVG]({0}.svg))", p.stem);
                    files.extend(fs);
                }
                Err(Error::Unsupported(msg)) => {
                    let _ = writeln!(md, "\n(plot skipped: {msg})");
                }
                Err(e) => return Err(e),
            }
        }
        md.push('\n');
    }
    let summary = out.join("summary.md");
    write_atomic(&summary, md.as_bytes())?;
    files.push(summary);
    Ok(files)
}
