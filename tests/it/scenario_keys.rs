//! One set of names (issue 18 item 4): scenario keys are the CLI flags, the scenario reference
//! `docs/scenarios.md` is the generated `perfcast run --explain`, `run --print-default` prints a
//! scenario that loads, an embcache study reads a trace file, and older keys still read.

use crate::common::{json, perfcast, succeeded};
use perfcast::{studies, Catalog};
use std::fs;
use std::path::Path;

fn stdout_of(args: &[&str]) -> String {
    let out = perfcast().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The committed reference is exactly what `run --explain` generates from the schema and the
/// clap definition, and the generator found a flag, or a written entry, for every key and a key,
/// or a stated reason, for every flag.
#[test]
fn scenario_reference_is_generated_and_complete() {
    let generated = stdout_of(&["run", "--explain"]);
    assert!(
        !generated.contains("UNDOCUMENTED"),
        "a Spec field without a flag or KeyDoc, or a flag without a key or CLI_ONLY reason:\n{}",
        generated
            .lines()
            .filter(|l| l.contains("UNDOCUMENTED"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let committed =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/scenarios.md"))
            .unwrap();
    assert!(
        committed == generated,
        "docs/scenarios.md is stale: regenerate it with `perfcast run --explain > docs/scenarios.md`"
    );
    // Every key of every schema has a row in its technique's section.
    for s in studies::schemas() {
        let start = generated.find(&format!("\n## {}\n", s.technique)).unwrap();
        let section = &generated[start + 4..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        for k in s.fields {
            let row = format!("| `{k}` |");
            let renamed = s.renamed.iter().any(|(old, _)| old == k);
            assert!(
                section.contains(&row) || renamed,
                "{}: no row for {k}",
                s.technique
            );
        }
        for (old, new) in s.renamed {
            assert!(
                section.contains(&format!("`{old}` = `{new}`")),
                "{old} → {new}"
            );
        }
    }
}

/// Every key the default scenario uses (fixed or swept) is documented in its technique's section
/// with the flag of the same name (or a written entry), so the doc covers what users copy.
#[test]
fn default_scenario_keys_are_documented_flags() {
    let doc = stdout_of(&["run", "--explain"]);
    let text = stdout_of(&["run", "--print-default"]);
    let v: toml::Table = toml::from_str(&text).unwrap();
    let mut n = 0;
    for st in v["study"].as_array().unwrap() {
        let st = st.as_table().unwrap();
        let t = st["technique"].as_str().unwrap();
        let start = doc.find(&format!("\n## {t}\n")).unwrap();
        let section = &doc[start + 4..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        let sweep = st.get("sweep").and_then(|s| s.as_table()).cloned();
        let keys = st
            .keys()
            .chain(sweep.iter().flat_map(|s| s.keys()))
            .filter(|k| !["name", "technique", "sweep"].contains(&k.as_str()));
        for k in keys {
            let row = section
                .lines()
                .find(|l| l.starts_with(&format!("| `{k}` |")))
                .unwrap_or_else(|| {
                    panic!("{t}: key {k} of the default scenario is not documented")
                });
            let flag = format!("`--{}`", k.replace('_', "-"));
            assert!(row.contains(&flag) || row.contains("| — |"), "{row}");
            n += 1;
        }
    }
    assert!(n > 30, "{n} keys checked");
}

/// `run --print-default` prints the embedded default scenario, and that text loads as a
/// scenario: every point of every study resolves (the default scenario's run is tested in
/// cli_run.rs).
#[test]
fn print_default_is_the_default_scenario_and_loads() {
    let text = stdout_of(&["run", "--print-default"]);
    let embedded = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/scenarios/default.toml"),
    )
    .unwrap();
    assert_eq!(text, embedded);
    let sc = studies::load(
        &text,
        Path::new("default.toml"),
        &Catalog::embedded().unwrap(),
    )
    .unwrap();
    assert_eq!(sc.name, "default");
    assert_eq!(sc.studies.len(), 6);
    let points: usize = sc.studies.iter().map(|s| s.points()).sum();
    assert_eq!(points, 384, "the default report's summary says 384 points");
    // --print-default takes no scenario.
    let out = perfcast()
        .args(["run", "--print-default", "x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// An embcache study reads `trace = "FILE"` relative to the scenario's directory, in its
/// `trace_format`, and a point computes what the same flags compute on the command line (one
/// front door): hits of LRU with 3 rows on a 12-access text trace.
#[test]
fn embcache_study_reads_a_trace_file_like_the_cli() {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("sc")).unwrap();
    let ids = "1\n2\n3\n1\n2\n4\n1\n5\n1\n2\n3\n6\n";
    fs::write(d.path().join("sc/ids.log"), ids).unwrap();
    fs::write(
        d.path().join("sc/t.toml"),
        "name = \"t\"\n[[study]]\nname = \"ec\"\ntechnique = \"embcache\"\n\
         trace = \"ids.log\"\ntrace_format = \"text\"\nbatch = 2\n\
         [study.sweep]\npolicy = [\"lru\", \"fifo\"]\ncache = [2, 3]\n",
    )
    .unwrap();
    let out_dir = d.path().join("out");
    succeeded(
        perfcast()
            .current_dir(d.path())
            .args(["run", "--quiet", "sc/t.toml", "--out"])
            .arg(&out_dir)
            .output()
            .unwrap(),
    );
    let csv = fs::read_to_string(out_dir.join("ec.csv")).unwrap();
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    let trace = d.path().join("sc/ids.log");
    for row in &rows {
        assert_eq!(&row[col("accesses")], "12");
        let cli = json(&[
            "embcache",
            "--trace",
            trace.to_str().unwrap(),
            "--trace-format",
            "text",
            "--batch",
            "2",
            "--policy",
            &row[col("policy")],
            "--cache",
            &row[col("cache_rows")],
        ]);
        assert_eq!(
            row[col("hits")].parse::<u64>().unwrap(),
            cli["hits"].as_u64().unwrap(),
            "{row:?} vs {cli}"
        );
    }
    // No pipeline model (no compute_s): no speedup plot, empty iteration columns.
    assert!(!out_dir.join("ec-speedup.svg").exists());
    assert!(out_dir.join("ec-hit-rate.svg").exists());
    assert_eq!(&rows[0][col("iter_s")], "");
}

/// Older scenario keys still read (`methods`, `fetch_bw_bytes_per_s`, `predictors`); `batches`,
/// which changed meaning, is an error naming it.
#[test]
fn renamed_keys_still_read_and_batches_is_named() {
    let c = Catalog::embedded().unwrap();
    let p = Path::new("s.toml");
    let ec = "[[study]]\ntechnique = \"embcache\"\nzipf = 1.0\nrows = 100\naccesses = 1000\n\
              policy = \"lru\"\n";
    for old in [
        "methods = [\"sim\", \"analytic\"]\nfetch_bw_bytes_per_s = 1e9\ncompute_s = 1e-3\n",
        "method = \"sim,analytic\"\nfetch_bw = 1e9\ncompute_s = 1e-3\n",
    ] {
        let sc = studies::load(&format!("{ec}{old}"), p, &c).unwrap();
        assert_eq!(sc.studies[0].points(), 1);
    }
    let e = studies::load(&format!("{ec}batches = 60\n"), p, &c)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("batches") && e.contains("accesses"), "{e}");
    let gc = "[[study]]\ntechnique = \"gradcomp\"\nmodel = \"bert-base\"\ninter_node_gbps = 10\n";
    for k in ["predictors = [\"sim\"]\n", "predictor = \"analytic\"\n"] {
        studies::load(&format!("{gc}{k}"), p, &c).unwrap();
    }
    let sd = "[[study]]\ntechnique = \"specdec\"\nalpha = 0.7\ndraft = { cost_ratio = 0.1 }\n\
              target_step_s = 0.02\n";
    for k in ["methods = [\"analytic\"]\n", "method = \"analytic\"\n"] {
        studies::load(&format!("{sd}{k}"), p, &c).unwrap();
    }
}
