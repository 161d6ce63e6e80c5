//! Running a whole scenario into an output directory: one tidy CSV per study, plots, and
//! `summary.md` with the headline answers.

use super::files::{ensure_dir, write_atomic, ReportDir, TEMP_PREFIX, TEMP_SUFFIX};
use crate::error::{Error, Result};
use crate::scenario::{RunContext, Scenario};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Creates `out` if needed (refusing a symbolic link, a file or a special file there) and
/// checks it is writable, before any work is done.
///
/// # Errors
/// [`Error::Output`] or [`Error::Io`] naming the directory.
pub fn prepare_out_dir(out: &Path) -> Result<()> {
    ensure_dir(out)?;
    tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
        .suffix(TEMP_SUFFIX)
        .tempfile_in(out)
        .map_err(|e| Error::io(out, e))?;
    Ok(())
}

/// Evaluates every study of `scenario` and writes its report under `out`. Returns the files
/// written, in order (under `out`). `out` is checked before any work ([`ReportDir::begin`]);
/// the files are written into a sibling temporary directory that replaces `out` as a whole once
/// every file is written ([`ReportDir::commit`]), so a reader (or a run killed midway) leaves the
/// old report or the new one, never a mix.
///
/// # Errors
/// Evaluation errors, [`Error::Output`] for an `out` that is not a report directory, or
/// [`Error::Io`] when a file cannot be written.
pub fn run_scenario(
    scenario: &Scenario,
    out: &Path,
    ctx: &RunContext,
    cat: &crate::Catalog,
) -> Result<Vec<PathBuf>> {
    let dir = ReportDir::begin(out)?;
    let stage = dir.path().to_path_buf();
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
        let csv = stage.join(format!("{}.csv", study.name()));
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
            match p.write(&stage) {
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
    let summary = stage.join("summary.md");
    write_atomic(&summary, md.as_bytes())?;
    files.push(summary);
    let files = files.iter().map(|f| dir.final_path(f)).collect();
    dir.commit()?;
    Ok(files)
}
