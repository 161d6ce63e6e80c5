//! `report.html`: one self-contained page per `perfcast run`, checked as text (no external URL,
//! every plot inline) and rendered in headless Chromium (every plot drawn with a nonzero size,
//! the embedded font loaded, no console message, nothing fetched).
//!
//! Chromium: `PERFCAST_CHROMIUM` names the binary, else `/usr/bin/chromium`, else `chromium` on
//! the `PATH` (`.ci/run` installs Debian's `chromium`). Without it the browser test prints a
//! notice that `cargo test` shows and passes; under `CI=true` it fails.

use crate::common::{notice, perfcast, succeeded};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small scenario with a line plot (γ sweep) and a bar chart (one γ: one x value).
const SCENARIO: &str = r#"
name = "html-small"
seed = 11
[[study]]
name = "sd"
technique = "specdec"
target = "llama-2-7b"
gpu = "h200"
context_tokens = 512
[study.sweep]
draft = [{ model = "tinyllama-1.1b", alpha = 0.7 }, { model = "opt-125m", alpha = 0.5 }]
gamma = { from = 1, to = 4 }
[[study]]
name = "sd-one"
technique = "specdec"
target = "llama-2-7b"
gpu = "h200"
gamma = 3
[study.sweep]
draft = [{ model = "tinyllama-1.1b", alpha = 0.7 }, { model = "opt-125m", alpha = 0.5 }]
"#;

/// Runs the small scenario into a fresh directory; returns (temp dir, report dir).
fn run_small() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let sc = d.path().join("small.toml");
    fs::write(&sc, SCENARIO).unwrap();
    let rep = d.path().join("rep");
    succeeded(
        perfcast()
            .args(["run", "--quiet"])
            .arg(&sc)
            .arg("--out")
            .arg(&rep)
            .output()
            .unwrap(),
    );
    (d, rep)
}

/// The plots the run wrote: its SVG files.
fn svg_files(rep: &Path) -> usize {
    fs::read_dir(rep)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".svg")
        })
        .count()
}

/// Every value of `attr="…"` in `html`.
fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let key = format!(" {attr}=\"");
    html.match_indices(&key)
        .map(|(i, _)| {
            let rest = &html[i + key.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

/// Checks a page names no external resource: no `http:`/`https:`/`ftp:` anywhere, every `src`,
/// `href` and CSS `url(…)` is a `data:` URI, an in-page anchor or a relative file name.
pub(crate) fn assert_self_contained(html: &str) {
    for scheme in ["http:", "https:", "ftp:"] {
        assert!(!html.contains(scheme), "{scheme} URL in report.html");
    }
    let mut refs: Vec<&str> = attr_values(html, "src");
    refs.extend(attr_values(html, "href"));
    refs.extend(
        html.split("url(\"")
            .skip(1)
            .map(|r| &r[..r.find('"').unwrap()]),
    );
    assert!(!refs.is_empty());
    for r in refs {
        let local = r.starts_with("data:")
            || r.starts_with('#')
            || (!r.contains(':') && !r.starts_with("//") && !r.starts_with('/'));
        assert!(local, "external or absolute reference {r:?} in report.html");
    }
}

#[test]
fn report_html_is_self_contained_with_every_plot_table_and_provenance() {
    let (_d, rep) = run_small();
    let html = fs::read_to_string(rep.join("report.html")).unwrap();
    assert_self_contained(&html);
    let plots = svg_files(&rep);
    assert_eq!(
        plots, 4,
        "sd: speedup + tokens/s lines; sd-one: the same as bars"
    );
    assert_eq!(html.matches("<svg").count(), plots, "every plot inline");
    for p in fs::read_dir(&rep).unwrap() {
        let name = p.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".svg") {
            assert!(html.contains(&format!("id=\"plot-{stem}\"")), "{stem}");
        }
    }
    for h in [
        "<h1 id=\"perfcast-report-html-small\">",
        "<h2 id=\"sd\">",
        "<h2 id=\"sd-one\">",
        "<h3 id=\"measured-error-specdec\">",
    ] {
        assert!(html.contains(h), "{h}");
    }
    // The tables of summary.md as HTML tables, in people's units; the measured-error table.
    assert!(html.matches("<table").count() >= 4);
    assert!(html.contains("<code>h200g-e2e-holdout</code>"));
    assert!(html.contains("tokens/s"));
    // Provenance: scenario, seed, version with commit, date.
    assert!(html.contains("<tr><th>scenario</th><td>html-small</td></tr>"));
    assert!(html.contains("<tr><th>seed</th><td>11</td></tr>"));
    assert!(html.contains(&format!(
        "<tr><th>perfcast</th><td>{} (commit ",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(html.contains("<tr class=\"varies\"><th>date (UTC)</th><td>20"));
    // Nothing of summary.md's Markdown left unrendered.
    assert!(!html.contains("perfcast-plot:") && !html.contains("](") && !html.contains("| ---"));
}

/// The Chromium binary, if any.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PERFCAST_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let usr = PathBuf::from("/usr/bin/chromium");
    if usr.exists() {
        return Some(usr);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    })
}

/// Runs Chromium headless on `page` with `extra` arguments; returns (stdout, stderr). Fails the
/// test after 120 s.
fn headless(chromium: &Path, page: &Path, extra: &[String]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut so, &mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut se, &mut s).unwrap();
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "chromium failed: {status}\n{err}");
    (out, err)
}

#[test]
fn report_html_renders_every_plot_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true but chromium is not installed: .ci/run installs Debian's chromium"
        );
        notice(
            "SKIPPED report_html_renders_every_plot_in_headless_chromium: no chromium \
             (apt-get install chromium, or set PERFCAST_CHROMIUM); CI runs it",
        );
        return;
    };
    let (d, rep) = run_small();
    let page = rep.join("report.html");
    let (dom, log) = headless(&chromium, &page, &["--dump-dom".into()]);
    // No console message at all (the page logs nothing; an error or exception would).
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    let body = &dom[dom.find("<body").expect("a <body> in the DOM")..];
    let body = &body[..body.find('>').unwrap()];
    let mark = |k: &str| {
        attr_values(body, k)
            .first()
            .map(|v| v.to_string())
            .unwrap_or_else(|| panic!("{k} not set: the page's check did not run: {body}"))
    };
    let plots = svg_files(&rep).to_string();
    assert_eq!(mark("data-plots"), plots, "inline plots");
    assert_eq!(
        mark("data-plots-rendered"),
        plots,
        "plots drawn with a size"
    );
    assert_eq!(mark("data-font"), "loaded", "embedded font");
    assert_eq!(mark("data-external"), "0", "resources fetched");
    // A screenshot renders too (a blank page compresses to a few kB).
    let shot = d.path().join("shot.png");
    headless(
        &chromium,
        &page,
        &[
            "--window-size=1000,1400".into(),
            "--hide-scrollbars".into(),
            format!("--screenshot={}", shot.display()),
        ],
    );
    let png = fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{}",
        png.len()
    );
}
