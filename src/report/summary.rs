//! Running a whole scenario into an output directory: one tidy CSV per study, plots,
//! `summary.md` with the headline answers, and `report.html`, the same report as one
//! self-contained page (plots inline, see [`super::html`]).

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
    // The page's plots: (stem, SVG text), and the summary.md line each replaces.
    let mut svgs: Vec<(String, String)> = Vec::new();
    let mut plot_lines: Vec<(String, String)> = Vec::new();
    let _ = writeln!(md, "# perfcast report: {}\n", scenario.name);
    if !scenario.description.is_empty() {
        let _ = writeln!(md, "{}\n", scenario.description.trim());
    }
    // The run line (the page has it in its provenance table instead).
    let run_line = format!(
        "perfcast {} · seed {} · {} studies · {} points · evaluated in {:.2} s\n",
        env!("CARGO_PKG_VERSION"),
        ctx.seed,
        scenario.studies.len(),
        scenario.studies.iter().map(|s| s.points()).sum::<usize>(),
        elapsed
    );
    let _ = writeln!(md, "{run_line}");
    let mut techniques: Vec<&'static str> = Vec::new();
    for (study, rep) in &reports {
        let technique = study.technique();
        if !techniques.contains(&technique) {
            techniques.push(technique);
        }
        let csv = stage.join(format!("{}.csv", study.name()));
        rep.rows.write_csv(&csv)?;
        files.push(csv.clone());
        let _ = writeln!(md, "## {}\n", study.name());
        let _ = writeln!(
            md,
            "{technique} · {} points · measured error: [{technique}](#{})\n",
            study.points(),
            super::html::anchor(&error_heading(technique))
        );
        let _ = writeln!(md, "{}", section_body(study.name(), &rep.summary_md));
        let _ = writeln!(md, "\nData: [{0}.csv]({0}.csv)", study.name());
        for p in &rep.plots {
            match p.write(&stage) {
                Ok(fs) => {
                    let line = format!("![{0}]({0}.png) ([SVG]({0}.svg))", p.stem);
                    let _ = writeln!(md, "\n{line}");
                    plot_lines.push((line, super::html::placeholder(&p.stem)));
                    let svg = stage.join(format!("{}.svg", p.stem));
                    let text = std::fs::read_to_string(&svg).map_err(|e| Error::io(&svg, e))?;
                    svgs.push((p.stem.clone(), text));
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
    if !techniques.is_empty() {
        let _ = writeln!(md, "## Measured error\n");
        let _ = writeln!(
            md,
            "How far each technique's predictions are from real measurements (MAPE: mean absolute \
             percentage error over the set's points; max: the largest one).\n"
        );
        for t in techniques {
            let _ = writeln!(md, "### {}\n", error_heading(t));
            let _ = writeln!(
                md,
                "{}",
                crate::validate::validation_table(cat, t).trim_end()
            );
            md.push('\n');
        }
    }
    let summary = stage.join("summary.md");
    write_atomic(&summary, md.as_bytes())?;
    files.push(summary);
    let mut page_md = md.replacen(&run_line, "", 1);
    for (line, placeholder) in &plot_lines {
        page_md = page_md.replacen(line.as_str(), placeholder, 1);
    }
    let prov = super::html::Provenance {
        scenario: scenario.name.clone(),
        seed: ctx.seed,
        studies: scenario.studies.len(),
        points: scenario.studies.iter().map(|s| s.points()).sum(),
        date: crate::measure::utc_now(),
        elapsed_s: elapsed,
    };
    let page = stage.join(super::html::FILE_NAME);
    write_atomic(&page, super::html::page(&page_md, &svgs, &prov).as_bytes())?;
    files.push(page);
    let files = files.iter().map(|f| dir.final_path(f)).collect();
    dir.commit()?;
    Ok(files)
}

/// The heading of a technique's measured-error table.
fn error_heading(technique: &str) -> String {
    format!("Measured error: {technique}")
}

/// A study's section body under the `## name` heading the report writes. A body that opens with
/// its own `### name …` heading (the technique's older form) loses it when it only repeats the
/// name and counts (`### drafts (specdec, 72 points)`); a subtitle after a colon stays as a
/// subheading (`### name: break-even node bandwidth` → `### Break-even node bandwidth`).
fn section_body(name: &str, body: &str) -> String {
    let body = body.trim();
    let Some(first) = body.lines().next() else {
        return String::new();
    };
    let Some(rest) = first
        .strip_prefix('#')
        .map(|h| h.trim_start_matches('#').trim_start())
        .and_then(|h| h.strip_prefix(name))
    else {
        return body.to_string();
    };
    let tail = body[first.len()..].trim_start_matches('\n');
    match rest.trim().strip_prefix(':') {
        Some(sub) if !sub.trim().is_empty() => {
            let sub = sub.trim();
            let mut c = sub.chars();
            let cap: String = c
                .next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default();
            format!("### {cap}\n\n{tail}")
        }
        _ => tail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_bodies_lose_repeated_headings() {
        assert_eq!(
            section_body("d", "### d (specdec, 72 points)\n\nLatency model: x"),
            "Latency model: x"
        );
        assert_eq!(
            section_body("g", "### g: break-even node bandwidth (Gb/s)\n\ntext"),
            "### Break-even node bandwidth (Gb/s)\n\ntext"
        );
        assert_eq!(section_body("e", "Trace: zipf"), "Trace: zipf");
        assert_eq!(
            super::super::html::anchor("Measured error: specdec"),
            "measured-error-specdec"
        );
    }
}
