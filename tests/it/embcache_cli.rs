//! `perfcast embcache` end to end: JSON contract, every trace format, bad input, trace-gen, mrc.

use crate::common::{f, fails, json, perfcast, succeeded};
use std::path::{Path, PathBuf};

fn traces() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("traces")
}

#[test]
fn json_fields_per_design() {
    let v = json(&[
        "embcache",
        "--zipf",
        "1.05",
        "--rows",
        "2000",
        "--accesses",
        "20000",
        "--seed",
        "3",
        "--policy",
        "lru",
        "--cache",
        "100",
        "--batch",
        "64",
    ]);
    for k in [
        "policy",
        "cache_rows",
        "accesses",
        "hits",
        "misses",
        "hit_rate",
        "unique_ids",
        "sim_requests_per_s",
        "batches",
        "batch_unique_misses",
        "prefetch_rows_per_batch",
        "writeback_rows_per_batch",
    ] {
        assert!(v.get(k).is_some_and(|x| !x.is_null()), "missing {k}: {v}");
    }
    assert_eq!(v["policy"], "lru");
    assert_eq!(v["cache_rows"], 100);
    assert_eq!(v["seed"], 3);
    assert_eq!(v["accesses"], 20000);
    let (h, m) = (v["hits"].as_u64().unwrap(), v["misses"].as_u64().unwrap());
    assert_eq!(h + m, 20000);
    assert!((v["hit_rate"].as_f64().unwrap() - h as f64 / 20000.0).abs() < 1e-12);
    assert_eq!(v["batches"], 20000u64.div_ceil(64));
}

#[test]
fn all_policies_and_pipeline() {
    let v = json(&[
        "embcache",
        "--zipf",
        "1.0",
        "--rows",
        "5000",
        "--accesses",
        "50000",
        "--policy",
        "lru,fifo,lfu,static-topk,belady,lookahead",
        "--cache",
        "20%",
        "--batch",
        "200",
        "--window",
        "3",
        "--compute-s",
        "0.001",
        "--row-bytes",
        "256",
        "--fetch-bw",
        "1e9",
    ]);
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 6);
    let misses = |p: &str| {
        a.iter().find(|x| x["policy"] == p).unwrap()["misses"]
            .as_u64()
            .unwrap()
    };
    for p in ["lru", "fifo", "lfu", "lookahead"] {
        assert!(misses("belady") <= misses(p), "{p}");
    }
    let la = a.iter().find(|x| x["policy"] == "lookahead").unwrap();
    assert!(la["min_cache_rows"].as_u64().unwrap() > 0);
    assert_eq!(la["window"], 3);
    for x in a {
        let s = x["speedup"].as_f64().unwrap();
        assert!(s >= 1.0, "{x}");
        assert!(x["iter_s"].as_f64().unwrap() >= 0.001);
    }
}

#[test]
fn analytic_method() {
    let v = json(&[
        "embcache",
        "--zipf",
        "1.05",
        "--rows",
        "100000",
        "--accesses",
        "1",
        "--policy",
        "static-topk,lru",
        "--cache",
        "1000",
        "--method",
        "analytic",
    ]);
    let a = v.as_array().unwrap();
    // Static top-k: H_{1000,1.05}/H_{100000,1.05}; LRU (Che) is below it.
    let top = a[0]["hit_rate"].as_f64().unwrap();
    let h = |n: u64| (1..=n).map(|i| (i as f64).powf(-1.05)).sum::<f64>();
    assert!((top - h(1000) / h(100_000)).abs() < 1e-9, "{top}");
    assert!(a[1]["hit_rate"].as_f64().unwrap() < top);
    fails(
        &[
            "embcache",
            "--zipf",
            "1",
            "--rows",
            "10",
            "--accesses",
            "10",
            "--policy",
            "fifo",
            "--method",
            "analytic",
        ],
        "lru or static-topk",
    );
}

#[test]
fn every_committed_trace_reads() {
    let dir = traces();
    for (f, accesses) in [
        ("zipf1.05-1k.txt", 5000),
        ("zipf1.05-1k.oracleGeneral", 5000),
        ("criteo-kaggle-like.csv", 26000),
        ("criteo-kaggle-like.tsv", 2600),
        ("movielens-like-ratings.csv", 4000),
        ("libcachesim-like.csv", 2000),
        ("ml-100k-like/u.data", 2000),
    ] {
        let v = json(&[
            "embcache",
            "--trace",
            dir.join(f).to_str().unwrap(),
            "--policy",
            "lru",
            "--cache",
            "5%",
            "--cache-of",
            "unique",
        ]);
        assert_eq!(v["accesses"], accesses, "{f}");
        assert!(
            v["table_rows"].is_null(),
            "{f}: a trace file declares no table size"
        );
    }
    // The text and oracleGeneral files hold the same lookups.
    let a = json(&[
        "embcache",
        "--trace",
        dir.join("zipf1.05-1k.txt").to_str().unwrap(),
        "--policy",
        "belady",
        "--cache",
        "50",
    ]);
    let b = json(&[
        "embcache",
        "--trace",
        dir.join("zipf1.05-1k.oracleGeneral").to_str().unwrap(),
        "--policy",
        "belady",
        "--cache",
        "50",
    ]);
    assert_eq!(a["misses"], b["misses"]);
    // CSV keeps its batches: 1000 samples in batches of 100 = 10.
    // Its tables are Criteo Kaggle's × 10⁻⁴ (3 389 rows): --profile declares them, so 5% is of
    // the table, not of the 1 375 rows the sample touches.
    let c = json(&[
        "embcache",
        "--trace",
        dir.join("criteo-kaggle-like.csv").to_str().unwrap(),
        "--profile",
        "criteo-kaggle",
        "--scale",
        "0.0001",
        "--cache",
        "5%",
    ]);
    assert_eq!(c["batches"], 10);
    assert_eq!(c["table_rows"], 3389);
    assert_eq!(c["cache_rows"], 169); // round(0.05 · 3389)
}

#[test]
fn trace_gen_round_trips_every_format() {
    let dir = tempfile::tempdir().unwrap();
    // Criteo TSV always has 26 categorical columns (an empty one is a lookup of the missing row),
    // so its round trip uses 26 tables.
    for (name, fmt, tables) in [
        ("t.csv", "csv", "2"),
        ("t.tsv", "criteo", "26"),
        ("r.csv", "movielens", "2"),
        ("t.txt", "text", "1"),
        ("t.oracleGeneral", "oracle-general", "1"),
        ("lcs.csv", "lcs-csv", "1"),
    ] {
        // The same generator settings simulated directly and written as a trace file.
        let gen = [
            "--zipf",
            "1.1",
            "--rows",
            "300",
            "--tables",
            tables,
            "--accesses",
            "5200",
            "--seed",
            "9",
        ];
        let lru = ["--policy", "lru", "--cache", "40"];
        let base = json(&[&["embcache"], &gen[..], &lru[..]].concat());
        let p = dir.path().join(name);
        let path = p.to_str().unwrap();
        succeeded(
            perfcast()
                .args(["embcache", "trace-gen"])
                .args(gen)
                .args(["--out", path, "--format-out", fmt])
                .output()
                .unwrap(),
        );
        let v = json(
            &[
                &["embcache", "--trace", path, "--trace-format", fmt],
                &lru[..],
            ]
            .concat(),
        );
        assert_eq!(v["misses"], base["misses"], "{fmt}");
        assert_eq!(v["unique_ids"], base["unique_ids"], "{fmt}");
    }
    let p = dir.path().join("two.txt");
    fails(
        &[
            "embcache",
            "trace-gen",
            "--zipf",
            "1",
            "--rows",
            "10",
            "--tables",
            "2",
            "--accesses",
            "10",
            "--out",
            p.to_str().unwrap(),
        ],
        "--tables = 2",
    );
    assert!(!p.exists(), "no partial output file");
}

#[test]
fn mrc_writes_csv_and_plot_and_matches_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let v = json(&[
        "embcache",
        "mrc",
        "--zipf",
        "0.9",
        "--rows",
        "1000",
        "--accesses",
        "20000",
        "--sizes",
        "10,100,50%",
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 3);
    for r in a {
        let c = r["cache_rows"].as_u64().unwrap().to_string();
        let s = json(&[
            "embcache",
            "--zipf",
            "0.9",
            "--rows",
            "1000",
            "--accesses",
            "20000",
            "--policy",
            "lru",
            "--cache",
            &c,
        ]);
        assert_eq!(r["misses"], s["misses"], "size {c}");
    }
    for f in ["mrc.csv", "mrc.png", "mrc.svg"] {
        assert!(dir.path().join(f).metadata().unwrap().len() > 0, "{f}");
    }
}

#[test]
fn cache_larger_than_unique_is_allowed_and_said() {
    let v = json(&[
        "embcache",
        "--zipf",
        "1",
        "--rows",
        "50",
        "--accesses",
        "1000",
        "--cache",
        "1000",
        "--policy",
        "lru",
    ]);
    assert_eq!(v["cache_exceeds_unique"], true);
    assert!(v["note"].as_str().unwrap().contains("exceeds"));
    assert_eq!(v["misses"], v["unique_ids"]);
}

#[test]
fn bad_input_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let mut bin = std::fs::read(traces().join("zipf1.05-1k.oracleGeneral")).unwrap();
    bin.truncate(24 * 3 + 10);
    let trunc = w("trunc.oracleGeneral", &bin);
    fails(
        &["embcache", "--trace", &trunc],
        "trunc.oracleGeneral:4: truncated record 4: 10 of 24 bytes",
    );
    let txt = w("bad.txt", b"1\n2\nx7\n");
    fails(
        &["embcache", "--trace", &txt],
        "bad.txt:3: id 'x7' is not a non-negative integer",
    );
    let csv = w("nohdr.csv", b"0,0,1\n0,0,2\n");
    fails(
        &["embcache", "--trace", &csv],
        "nohdr.csv:1: missing header",
    );
    let csv2 = w("badid.csv", b"batch,table,id\n0,0,1\n0,0,-4\n");
    fails(&["embcache", "--trace", &csv2], "badid.csv:3: id '-4'");
    let empty = w("empty.txt", b"");
    fails(&["embcache", "--trace", &empty], "empty.txt: empty trace");
    let empty_bin = w("empty.oracleGeneral", b"");
    fails(&["embcache", "--trace", &empty_bin], "empty trace");
    let tsv = w("short.tsv", b"0\t1\t2\n");
    fails(
        &["embcache", "--trace", &tsv],
        "short.tsv:1: 3 tab-separated columns",
    );
    let unknown = w("t.dat", b"1\n");
    fails(&["embcache", "--trace", &unknown], "--trace-format");
    fails(
        &[
            "embcache",
            "--trace",
            &w("ok.txt", b"1\n2\n"),
            "--cache",
            "0",
        ],
        "cache = 0",
    );
    fails(
        &[
            "embcache",
            "--trace",
            &w("ok2.txt", b"1\n2\n"),
            "--policy",
            "belday",
        ],
        "did you mean 'belady'",
    );
    fails(
        &[
            "embcache",
            "--zipf",
            "1",
            "--rows",
            "10",
            "--accesses",
            "100",
            "--policy",
            "lookahead",
            "--batch",
            "5",
            "--cache",
            "2",
        ],
        "for lookahead",
    );
    fails(
        &[
            "embcache",
            "--zipf",
            "-1",
            "--rows",
            "10",
            "--accesses",
            "100",
        ],
        "zipf = -1",
    );
    fails(
        &["embcache", "--trace", "/nonexistent/x.txt"],
        "/nonexistent/x.txt",
    );
    fails(&["embcache"], "--trace = missing");
}

#[test]
fn policy_that_cannot_run_gets_an_error_row_and_exit_3() {
    // Batches of 64 over 1000 rows: lookahead needs ~80 rows for two batches, the cache has 10.
    let args = [
        "embcache",
        "--zipf",
        "1.05",
        "--rows",
        "1000",
        "--accesses",
        "10000",
        "--batch",
        "64",
        "--policy",
        "lru,lookahead,belady",
        "--cache",
        "10",
    ];
    let out = perfcast()
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("1 of 3 policies could not run"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(
        a.iter()
            .map(|r| r["policy"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["lru", "lookahead", "belady"]
    );
    let la = &a[1];
    let msg = la["error"].as_str().unwrap();
    assert!(msg.starts_with("cache = 10: must be ≥ "), "{msg}");
    assert!(msg.contains("for lookahead"), "{msg}");
    assert!(la["hit_rate"].is_null() && la["misses"].is_null(), "{la}");
    assert_eq!(la["cache_rows"], 10);
    assert_eq!(la["window"], 4);
    for r in [&a[0], &a[2]] {
        assert!(r["error"].is_null(), "{r}");
        let (h, m) = (r["hits"].as_u64().unwrap(), r["misses"].as_u64().unwrap());
        assert_eq!(h + m, 10000, "{r}");
    }
    // The ran rows equal a run without the failing policy.
    let mut without = args;
    without[10] = "lru,belady";
    let ok = json(&without);
    assert_eq!(ok[0]["hits"], a[0]["hits"]);
    assert_eq!(ok[1]["hits"], a[2]["hits"]);
    // CSV: one header with an `error` column, the reason on the lookahead line only.
    let out = perfcast()
        .args(args)
        .args(["--format", "csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let csv = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].ends_with(",error"), "{}", lines[0]);
    assert!(lines[2].starts_with("lookahead,") && lines[2].contains("for lookahead"));
    assert!(lines[1].ends_with(',') && lines[3].ends_with(','), "{csv}");
    // Table: the reason is printed too.
    let out = perfcast().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("for lookahead"));
}

#[test]
fn error_text_names_each_cause_once_and_escapes_control_characters() {
    // A missing file: the OS message once (it used to follow the path twice).
    let out = perfcast()
        .args(["embcache", "--trace", "/nonexistent/x.txt"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let os = std::fs::File::open("/nonexistent/x.txt")
        .unwrap_err()
        .to_string();
    assert_eq!(err.matches(os.as_str()).count(), 1, "{os}: {err}");
    assert_eq!(err.matches("(os error").count(), 1, "{err}");
    assert_eq!(err.trim_end(), format!("error: /nonexistent/x.txt: {os}"));
    // A bad value with a terminal escape is echoed escaped, on one line.
    crate::common::fails(
        &["freeze", "--model", "a\u{1b}[31m\nb"],
        "'a\\u{1b}[31m\\nb'",
    );
    let out = perfcast()
        .args(["embcache", "--trace", "/tmp/\u{1b}[2Jx.txt"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/tmp/\\u{1b}[2Jx.txt"), "{err}");
    assert!(!err.trim_end().chars().any(char::is_control), "{err}");
}

/// Writing stdout to a full device fails with exit 2 and a line naming stdout.
#[cfg(target_os = "linux")]
#[test]
fn stdout_write_failure_names_stdout() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return;
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_perfcast"))
        .args([
            "embcache",
            "--zipf",
            "1",
            "--rows",
            "100",
            "--accesses",
            "1000",
        ])
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: writing stdout: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn cache_sizes_are_of_the_table_or_in_bytes() {
    let gen = [
        "embcache",
        "--zipf",
        "1.05",
        "--rows",
        "10000",
        "--accesses",
        "20000",
        "--policy",
        "lru",
    ];
    // 10% of the generator's 10 000-row table, whatever the trace touches.
    let v = json(&[&gen[..], &["--cache", "10%"]].concat());
    assert_eq!(v["table_rows"], 10000);
    assert_eq!(v["cache_rows"], 1000);
    assert_eq!(v["cache_bytes"], 1000.0 * 512.0);
    assert_eq!(v["cache_fraction_of_table"], 0.1);
    let unique = v["unique_ids"].as_u64().unwrap();
    assert!(unique < 10000, "{v}");
    // The unique-rows fraction under its explicit name.
    let u = json(&[&gen[..], &["--cache", "10%", "--cache-of", "unique"]].concat());
    assert_eq!(
        u["cache_rows"].as_u64().unwrap(),
        (0.1 * unique as f64).round() as u64
    );
    // Bytes: whole rows of --row-bytes. 1 MiB of 256-byte rows = 4096 rows; the same hits as
    // asking for 4096 rows.
    let b = json(&[&gen[..], &["--cache", "1MiB", "--row-bytes", "256"]].concat());
    assert_eq!(b["cache_rows"], 4096);
    assert_eq!(b["cache_bytes"], 1048576.0);
    let r = json(&[&gen[..], &["--cache", "4096"]].concat());
    assert_eq!(b["hits"], r["hits"]);
    // A trace file without a declared table: a percentage of "the table" is an error naming
    // the ways out; rows and bytes work.
    let txt = traces().join("zipf1.05-1k.txt");
    let txt = txt.to_str().unwrap();
    fails(
        &["embcache", "--trace", txt, "--cache", "5%"],
        "does not declare its table size (give --table-rows N",
    );
    let t = json(&[
        "embcache",
        "--trace",
        txt,
        "--cache",
        "5%",
        "--table-rows",
        "1000",
    ]);
    assert_eq!(t["cache_rows"], 50);
    fails(
        &["embcache", "--trace", txt, "--cache", "100B"],
        "one row of 512 bytes",
    );
}

#[test]
fn byte_sized_oracle_general_warns_that_sizes_are_ignored() {
    use perfcast::embcache::trace::oracle::Record;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sized.oracleGeneral");
    let mut bytes = Vec::new();
    for (i, (id, size)) in [(1u64, 4096u32), (2, 512), (1, 4096), (3, 1), (2, 512)]
        .into_iter()
        .enumerate()
    {
        let r = Record {
            clock_time: i as u32,
            obj_id: id,
            obj_size: size,
            next_access_vtime: -1,
        };
        bytes.extend_from_slice(&r.to_bytes());
    }
    std::fs::write(&p, bytes).unwrap();
    let out = perfcast()
        .args(["embcache", "--trace", p.to_str().unwrap(), "--cache", "2"])
        .args(["--format", "json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: object sizes ignored: 4 of 5 requests carry a size (1..4096 bytes"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["note"].as_str().unwrap().contains("object sizes ignored"),
        "{v}"
    );
    // The committed row-counted file (every size 1) says nothing.
    let out = perfcast()
        .args(["embcache", "--trace"])
        .arg(traces().join("zipf1.05-1k.oracleGeneral"))
        .args(["--cache", "36"])
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `embcache` with `args` and the forward evaluation at `rows` (the same trace and policy).
fn forward_hit_rate(gen: &[&str], policy: &str, rows: u64) -> f64 {
    let v = json(&[gen, &["--policy", policy, "--cache", &rows.to_string()]].concat());
    v["hit_rate"].as_f64().unwrap()
}

#[test]
fn solve_hit_rate_agrees_with_forward_evaluation() {
    let gen = [
        "embcache",
        "--zipf",
        "0.9",
        "--rows",
        "2000",
        "--accesses",
        "20000",
        "--batch",
        "16",
        "--seed",
        "5",
    ];
    let target = 0.6;
    // Tolerance 0: every policy's answer reaches the target and one row less does not (for LRU
    // exactly, from its stack distances; for the others, the bisection's last bracket).
    let v = json(
        &[
            &gen[..],
            &[
                "--policy",
                "lru,belady,static-topk,fifo,lfu",
                "--solve-hit-rate",
                "0.6",
                "--solve-tolerance",
                "0",
                "--row-bytes",
                "128",
            ],
        ]
        .concat(),
    );
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 5);
    for r in a {
        let p = r["policy"].as_str().unwrap();
        let c = r["cache_rows"].as_u64().unwrap();
        assert_eq!(r["target_hit_rate"], target);
        assert_eq!(r["cache_bytes"].as_f64().unwrap(), c as f64 * 128.0, "{p}");
        assert_eq!(r["solve_lower_rows"].as_u64().unwrap(), c - 1, "{p}");
        let h = r["hit_rate"].as_f64().unwrap();
        assert!(h >= target, "{p}: {h}");
        assert_eq!(
            forward_hit_rate(&gen, p, c),
            h,
            "{p}: the row is a forward run"
        );
        assert!(forward_hit_rate(&gen, p, c - 1) < target, "{p} at {c} - 1");
    }
    let lru = &a[0];
    assert!(lru["solve_method"].as_str().unwrap().starts_with("exact"));
    // Belady (optimal) needs no more room than any other policy.
    let rows = |p: &str| {
        a.iter().find(|r| r["policy"] == p).unwrap()["cache_rows"]
            .as_u64()
            .unwrap()
    };
    for p in ["lru", "static-topk", "fifo", "lfu"] {
        assert!(rows("belady") <= rows(p), "{p}");
    }
    // The default tolerance (1%): the size reaches, the bracket's lower end does not, and it is
    // within 1% of the size below it.
    let v = json(&[&gen[..], &["--policy", "fifo", "--solve-hit-rate", "0.6"]].concat());
    let (c, lo) = (
        v["cache_rows"].as_u64().unwrap(),
        v["solve_lower_rows"].as_u64().unwrap(),
    );
    assert!(c - lo <= ((0.01 * c as f64) as u64).max(1), "{c} {lo}");
    assert!(v["hit_rate"].as_f64().unwrap() >= target);
    assert!(forward_hit_rate(&gen, "fifo", lo) < target);
    // Unreachable (above the hit rate with every distinct row cached): exit 2 naming the bound;
    // with another policy that reaches it, exit 3 and an error row.
    fails(
        &[&gen[..], &["--policy", "lru", "--solve-hit-rate", "0.99"]].concat(),
        "--solve-hit-rate = 0.99: must be ≤ 0.",
    );
    let out = perfcast()
        .args(gen)
        .args(["--policy", "lru,lookahead", "--solve-hit-rate", "0.85"])
        .args(["--format", "json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("cannot reach the target"), "{err}");
    // A size and a target together are a contradiction.
    let out = perfcast()
        .args(gen)
        .args(["--cache", "10", "--solve-hit-rate", "0.5"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn solve_hit_rate_on_the_closed_form() {
    // Static top-k under Zipf(1): the smallest C with H(C)/H(N) ≥ 0.5, N = 10 000.
    let v = json(&[
        "embcache",
        "--zipf",
        "1.0",
        "--rows",
        "10000",
        "--accesses",
        "1",
        "--policy",
        "static-topk",
        "--method",
        "analytic",
        "--solve-hit-rate",
        "0.5",
        "--solve-tolerance",
        "0",
    ]);
    let h = |n: u64| (1..=n).map(|i| 1.0 / i as f64).sum::<f64>();
    let want = (1..=10000u64).find(|&c| h(c) / h(10000) >= 0.5).unwrap();
    assert_eq!(v["cache_rows"], want);
    assert_eq!(v["solve_lower_rows"], want - 1);
}

/// LRU misses of `ids` (one per line) at `cache` rows, through a text trace.
fn lru_misses_of(ids: &[String], cache: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ids.txt");
    std::fs::write(&p, ids.join("\n")).unwrap();
    json(&[
        "embcache",
        "--trace",
        p.to_str().unwrap(),
        "--policy",
        "lru",
        "--cache",
        cache,
    ])["misses"]
        .clone()
}

#[test]
fn libcachesim_csv_by_header_or_by_its_column_options() {
    let f = traces().join("libcachesim-like.csv");
    let path = f.to_str().unwrap();
    let lru = ["--policy", "lru", "--cache", "30", "--format", "json"];
    // Recognised by its header (version,time,op,size,lbn): the id is `lbn`, sizes are counted.
    let out = perfcast()
        .args(["embcache", "--trace", path])
        .args(lru)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("object sizes ignored: 2000 of 2000 requests carry a size (512..65536 bytes"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The same misses as the lbn column replayed as a plain id trace.
    let text = std::fs::read_to_string(&f).unwrap();
    let ids: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap().to_string())
        .collect();
    assert_eq!(v["accesses"], 2000);
    assert_eq!(v["misses"], lru_misses_of(&ids, "30"));
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(v["unique_ids"], distinct.len());
    // libCacheSim's own -t string for this layout gives the same run.
    let w = json(&[
        "embcache",
        "--trace",
        path,
        "--policy",
        "lru",
        "--cache",
        "30",
        "--csv-params",
        "time-col=2, obj-id-col=5, obj-size-col=4, obj-id-is-num=true, delimiter=,, has-header=true",
    ]);
    assert_eq!(w["misses"], v["misses"]);
    // Another column as the id (the size column here) changes the trace; a bad option is named.
    let sz = json(&[
        "embcache",
        "--trace",
        path,
        "--cache",
        "30",
        "--trace-format",
        "lcs-csv",
        "--csv-params",
        "obj-id-col=4",
    ]);
    assert_eq!(sz["unique_ids"], 6); // 512 · {1, 2, 4, 8, 32, 128}
    fails(
        &["embcache", "--trace", path, "--csv-params", "obj-id=5"],
        "--csv-params = obj-id: must be one of obj-id-col",
    );
    fails(
        &["embcache", "--trace", path, "--order", "time"],
        "--order = given for a lcs-csv trace",
    );
    // String ids are hashed, one row per distinct string; a headerless file needs obj-id-col.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("kv.csv");
    std::fs::write(&p, "time,key,size\n1,a,10\n2,b,10\n3,a,10\n").unwrap();
    let kv = json(&["embcache", "--trace", p.to_str().unwrap(), "--cache", "5"]);
    assert_eq!(
        (kv["unique_ids"].as_u64(), kv["hits"].as_u64()),
        (Some(2), Some(1))
    );
    let p2 = dir.path().join("nohdr.csv");
    std::fs::write(&p2, "1,7\n2,8\n").unwrap();
    let p2 = p2.to_str().unwrap();
    fails(
        &["embcache", "--trace", p2, "--trace-format", "lcs-csv"],
        "no object-id column",
    );
    let n = json(&[
        "embcache",
        "--trace",
        p2,
        "--trace-format",
        "lcs-csv",
        "--csv-params",
        "obj-id-col=2",
        "--cache",
        "5",
    ]);
    assert_eq!(n["unique_ids"], 2);
}

#[test]
fn movielens_u_data_by_name_or_content_with_order_and_lookups() {
    let f = traces().join("ml-100k-like/u.data");
    let path = f.to_str().unwrap();
    // (user, item, timestamp) of every rating, in file order.
    let text = std::fs::read_to_string(&f).unwrap();
    let rows: Vec<(String, String, u64)> = text
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c[0].into(), c[1].into(), c[3].parse().unwrap())
        })
        .collect();
    let mut by_time = rows.clone();
    by_time.sort_by_key(|r| r.2); // stable, as the reader's
    let items = |v: &[(String, String, u64)]| v.iter().map(|r| r.1.clone()).collect::<Vec<_>>();
    let users = |v: &[(String, String, u64)]| v.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    let run = |extra: &[&str]| {
        json(
            &[
                &[
                    "embcache", "--trace", path, "--policy", "lru", "--cache", "20",
                ][..],
                extra,
            ]
            .concat(),
        )
    };
    // By name (no --trace-format): a user and an item lookup per rating, by time by default.
    let both = run(&[]);
    assert_eq!(both["accesses"], 2000);
    // Items only, by time (default) and in file order: the same misses as the item column
    // replayed in that order.
    let it = run(&["--lookups", "items"]);
    assert_eq!(it["accesses"], 1000);
    assert_eq!(it["misses"], lru_misses_of(&items(&by_time), "20"));
    let itf = run(&["--lookups", "items", "--order", "file"]);
    assert_eq!(itf["misses"], lru_misses_of(&items(&rows), "20"));
    assert_ne!(
        it["misses"], itf["misses"],
        "the sample is not in time order"
    );
    let us = run(&["--lookups", "users"]);
    assert_eq!(us["misses"], lru_misses_of(&users(&by_time), "20"));
    // By content: the same file under a name that says nothing.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ratings.tab");
    std::fs::copy(&f, &p).unwrap();
    let c = json(&[
        "embcache",
        "--trace",
        p.to_str().unwrap(),
        "--policy",
        "lru",
        "--cache",
        "20",
    ]);
    assert_eq!(c["misses"], both["misses"]);
    fails(
        &["embcache", "--trace", path, "--lookups", "movies"],
        "--lookups = movies: must be items, users or both",
    );
}

/// Several trainers and a dense all-reduce: `dense_sync_s` is the shared collective model's ring
/// all-reduce of 1e6 fp32 parameters over 8 trainers at 10 Gb/s and 10 µs, 2·7·10 µs +
/// 2·7/8·4e6/1.25e9 = 5.74e-3 s (relative tolerance 1e-12), and every iteration takes at least
/// compute + sync. With the default single trainer the row has neither column and the same
/// iteration times as with `--trainers 1 --dense-params 0` given explicitly (wall-clock fields
/// aside).
#[test]
fn trainers_and_dense_sync() {
    let base = [
        "embcache",
        "--zipf",
        "1.05",
        "--rows",
        "2000",
        "--accesses",
        "20000",
        "--policy",
        "lru",
        "--cache",
        "10%",
        "--batch",
        "64",
        "--compute-s",
        "1e-3",
    ];
    let one = json(&base);
    assert!(one.get("trainers").is_none() && one.get("dense_sync_s").is_none());
    let mut explicit = base.to_vec();
    explicit.extend(["--trainers", "1", "--dense-params", "0"]);
    let same = json(&explicit);
    for k in ["hits", "misses", "iter_no_cache_s", "iter_s", "speedup"] {
        assert_eq!(same[k], one[k], "{k}");
    }
    assert!(same.get("trainers").is_none());
    let mut many = base.to_vec();
    many.extend([
        "--trainers",
        "8",
        "--dense-params",
        "1e6",
        "--sync-gbps",
        "10",
    ]);
    let v = json(&many);
    let sync = f(&v, "dense_sync_s");
    assert!((sync - 5.74e-3).abs() < 5.74e-3 * 1e-12, "{v}");
    assert_eq!(f(&v, "trainers"), 8.0);
    assert!(f(&v, "iter_s") >= 1e-3 + sync, "{v}");
    // The store's bandwidth is shared, so the fetch part of a no-cache iteration grows.
    assert!(
        f(&v, "iter_no_cache_s") - 1e-3 - sync > f(&one, "iter_no_cache_s") - 1e-3,
        "{v}"
    );
    let mut no_pipe = base[..base.len() - 2].to_vec();
    no_pipe.extend(["--trainers", "8"]);
    fails(&no_pipe, "--compute-s");
    let mut no_bw = base.to_vec();
    no_bw.extend(["--trainers", "8", "--dense-params", "1e6"]);
    fails(&no_bw, "--sync-gbps");
}
