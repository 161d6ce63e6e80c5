//! `perfcast run` and `perfcast catalog` end to end.

use crate::common::{perfcast, succeeded};
use std::fs;

#[test]
fn default_scenario_writes_csv_plots_and_summary() {
    let d = tempfile::tempdir().unwrap();
    let out = succeeded(
        perfcast()
            .args(["run", "--quiet", "--out"])
            .arg(d.path())
            .args(["--format", "json"])
            .output()
            .unwrap(),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let files = v["files"].as_array().unwrap();
    assert!(files.len() >= 5);
    for f in files {
        let p = std::path::Path::new(f.as_str().unwrap());
        assert!(fs::metadata(p).unwrap().len() > 0, "{p:?}");
    }
    let csv = fs::read_to_string(d.path().join("specdec-drafts.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for col in [
        "study",
        "gpu",
        "draft",
        "gamma",
        "batch",
        "tokens_per_s",
        "speedup",
        "method",
        "seed",
    ] {
        assert!(
            header.split(',').any(|c| c == col),
            "missing column {col}: {header}"
        );
    }
    // 3 drafts × 8 γ × 3 batches × (analytic + sim) rows + header.
    assert_eq!(csv.lines().count(), 3 * 8 * 3 * 2 + 1);
    let md = fs::read_to_string(d.path().join("summary.md")).unwrap();
    assert!(md.contains("best drafter") && md.contains("seed 20231105"));
    // The freeze study: calibrated H200 costs, and AutoFreeze on the measured gradient-norm
    // trace. At the trace's own run (4480 samples × 3 epochs, batch 32) the replay freezes what
    // the online rule froze on the GPU: 5 layers at step 315
    // (validation/results/reference/h200-freeze-trace-timeline.csv); longer runs also take the
    // trace's last decision (9 layers at step 420) and nothing after the trace ends.
    let mut rdr = csv::Reader::from_path(d.path().join("freeze-bert-base.csv")).unwrap();
    let hdr = rdr.headers().unwrap().clone();
    let col =
        |r: &csv::StringRecord, k: &str| r[hdr.iter().position(|h| h == k).unwrap()].to_string();
    let mut auto = 0;
    for r in rdr.records().map(Result::unwrap) {
        assert!(
            col(&r, "costs").starts_with("calibrated (h200-freeze"),
            "{r:?}"
        );
        if !col(&r, "policy").starts_with("autofreeze") {
            continue;
        }
        auto += 1;
        assert_eq!(
            col(&r, "grad_norms"),
            "traces/freeze-bert-base-h200-gradnorms.csv"
        );
        assert_eq!(col(&r, "seed"), "");
        let want = if col(&r, "samples") == "4480" {
            "0:0 315:5"
        } else {
            "0:0 315:5 420:9"
        };
        assert_eq!(col(&r, "timeline"), want, "{r:?}");
    }
    assert_eq!(auto, 16);
    assert!(md.contains(
        "replay the recorded gradient-norm trace `traces/freeze-bert-base-h200-gradnorms.csv`"
    ));
    assert!(md.contains("Per-layer costs of bert-base on h200: calibrated (h200-freeze"));
    summary_is_for_people(&md);
    for f in files {
        let p = std::path::Path::new(f.as_str().unwrap());
        if p.extension().is_some_and(|e| e == "svg") {
            plot_is_legible(&fs::read_to_string(p).unwrap(), p);
        }
    }
    // Same seed, same numbers.
    let d2 = tempfile::tempdir().unwrap();
    perfcast()
        .args(["run", "--quiet", "--out"])
        .arg(d2.path())
        .assert()
        .success();
    assert_eq!(
        csv,
        fs::read_to_string(d2.path().join("specdec-drafts.csv")).unwrap()
    );
}

#[test]
fn bad_scenarios_fail_cleanly_without_output() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        ("[[study]]\ntechnique = \"specdec\"\nalpha = 0.7\n[study.draft]\ncost_ratio = 0.1\n[study.sweep]\ngamma = []\n", "empty sweep"),
        ("[[study]]\ntechnique = \"specdec\"\nalpah = 0.7\n", "unknown field `alpah`"),
        ("[[study]]\ntechnique = \"specdec\"\ntarget = \"llama-9\"\nalpha = 0.7\ndraft = { cost_ratio = 0.1 }\n", "unknown model 'llama-9'"),
        ("[[study\n", "s.toml:1"),
        ("[[study]]\ntechnique = \"specdec\"\nalpha = 0.7\ndraft = { cost_ratio = 0.1 }\n[study.sweep]\ngamma = [1, 99]\n", "gamma = 99"),
    ];
    for (text, needle) in cases {
        let sc = d.path().join("s.toml");
        fs::write(&sc, text).unwrap();
        let out_dir = d.path().join("out");
        let out = perfcast()
            .args(["run", "--quiet"])
            .arg(&sc)
            .arg("--out")
            .arg(&out_dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(needle), "{text}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!out_dir.exists(), "no output on bad input");
    }
}

#[test]
fn unwritable_out_is_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("afile");
    fs::write(&file, "x").unwrap();
    let out = perfcast()
        .args(["run", "--quiet", "--out"])
        .arg(file.join("sub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("afile"));
}

#[test]
fn catalog_lists_everything_as_one_json_object() {
    let out = perfcast()
        .args(["catalog", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["gpus"].as_array().unwrap().len() >= 6);
    assert!(v["models"].as_array().unwrap().len() >= 15);
    assert!(v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "default"));
}

#[test]
fn catalog_dir_overrides_embedded_files() {
    let d = tempfile::tempdir().unwrap();
    let gpus = include_str!("../../models/gpus.toml").replace(
        "hbm_bw_bytes_per_s = 3.35e12",
        "hbm_bw_bytes_per_s = 6.7e12",
    );
    fs::write(d.path().join("gpus.toml"), gpus).unwrap();
    // h100 has no calibration file, so its datasheet numbers drive the roofline.
    let args = [
        "specdec",
        "--gpu",
        "h100",
        "--draft",
        "llama-3.2-1b",
        "--alpha",
        "0.7",
        "--gamma",
        "3",
        "--format",
        "json",
    ];
    let base: serde_json::Value =
        serde_json::from_slice(&perfcast().args(args).output().unwrap().stdout).unwrap();
    let out = succeeded(
        perfcast()
            .arg("--catalog")
            .arg(d.path())
            .args(args)
            .output()
            .unwrap(),
    );
    let fast: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Doubling the bandwidth makes the memory-bound batch-1 decode faster.
    assert!(
        fast["baseline_tokens_per_s"].as_f64().unwrap()
            > 1.5 * base["baseline_tokens_per_s"].as_f64().unwrap()
    );
    fs::write(d.path().join("gpus.toml"), "[[gpu]]\nname = 3\n").unwrap();
    let out = perfcast()
        .arg("--catalog")
        .arg(d.path())
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gpus.toml:2"));
}

#[test]
fn closed_stdout_pipe_is_not_an_error() {
    use std::process::{Command as Std, Stdio};
    let bin = assert_cmd::cargo::cargo_bin("perfcast");
    let mut child = Std::new(bin)
        .args(["catalog"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// `summary.md` of the default scenario: a `## name` heading per study (embcache included), the
/// measured-error table of each technique once (not repeated per study), no Rust debug format,
/// no scientific notation in its tables.
fn summary_is_for_people(md: &str) {
    for study in [
        "specdec-drafts",
        "specdec-layerskip",
        "freeze-bert-base",
        "gradcomp-bert-base",
        "gradcomp-resnet50-lowrank",
        "embcache-criteo",
    ] {
        assert_eq!(
            md.lines().filter(|l| *l == format!("## {study}")).count(),
            1,
            "heading of {study}"
        );
    }
    for t in ["specdec", "freeze", "gradcomp", "embcache"] {
        let h = format!("### Measured error: {t}");
        assert_eq!(md.matches(&h).count(), 1, "{h}");
        assert!(
            md.contains(&format!("(#measured-error-{t})")),
            "link to {h}"
        );
    }
    // Each validation set is cited once: one table row.
    assert_eq!(md.matches("`h200g-e2e-holdout`").count(), 1);
    assert!(md.contains("| set | points | roofline |"));
    for bad in ["{", "}", "Some(", "None", "\\\""] {
        assert!(!md.contains(bad), "debug format {bad:?} in summary.md");
    }
    for l in md.lines().filter(|l| l.starts_with('|')) {
        // A token of number characters that parses as a float and has an exponent: 1.41e11.
        let sci = l
            .split(|c: char| !(c.is_ascii_digit() || ".eE+-".contains(c)))
            .any(|t| t.contains(['e', 'E']) && t.parse::<f64>().is_ok());
        assert!(!sci, "scientific notation in a table: {l}");
    }
    assert!(md.contains("881 MB"), "cache size in MB");
}

/// One plot's SVG: at least two tick labels on each axis (x: labels sharing one baseline;
/// y: right-aligned labels sharing one x) and a unit in parentheses in both axis titles.
fn plot_is_legible(svg: &str, path: &std::path::Path) {
    struct T {
        anchor: String,
        x: i64,
        y: i64,
        rotated: bool,
        text: String,
    }
    let attr = |head: &str, name: &str| -> Option<String> {
        let key = format!(" {name}=\"");
        let i = head.find(&key)?;
        let rest = &head[i + key.len()..];
        Some(rest[..rest.find('"')?].to_string())
    };
    let texts: Vec<T> = svg
        .split("<text")
        .skip(1)
        .map(|c| {
            let end = c.find('>').unwrap();
            let head = &c[..end];
            let n = |k: &str| attr(head, k).unwrap().parse::<f64>().unwrap() as i64;
            T {
                anchor: attr(head, "text-anchor").unwrap_or_default(),
                x: n("x"),
                y: n("y"),
                rotated: head.contains("rotate("),
                text: c[end + 1..c.find("</text>").unwrap()].trim().to_string(),
            }
        })
        .collect();
    let group = |anchor: &str, by_y: bool| {
        let mut g: std::collections::BTreeMap<i64, usize> = Default::default();
        for t in texts.iter().filter(|t| t.anchor == anchor && !t.rotated) {
            *g.entry(if by_y { t.y } else { t.x }).or_default() += 1;
        }
        g.into_values().max().unwrap_or(0)
    };
    assert!(group("middle", true) >= 2, "{path:?}: x tick labels");
    assert!(group("end", false) >= 2, "{path:?}: y tick labels");
    // Axis titles: the rotated one (y, or the category axis of a bar chart) and the lowest
    // centred one (x).
    let y_title = texts.iter().find(|t| t.rotated).expect("y title");
    let x_title = texts
        .iter()
        .filter(|t| t.anchor == "middle" && !t.rotated)
        .max_by_key(|t| t.y)
        .unwrap();
    for t in [y_title, x_title] {
        assert!(
            t.text.contains('(') && t.text.contains(')'),
            "{path:?}: axis title without a unit: {}",
            t.text
        );
    }
}
