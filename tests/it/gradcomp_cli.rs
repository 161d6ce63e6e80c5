//! `perfcast collective`, `perfcast gradcomp` and the gradcomp scenario study, end to end.

use crate::common::{f, json, perfcast, succeeded};
use std::fs;

/// The worked example: 2·15·10 µs + 2·15/16 · 1 GB / 12.5 GB/s = 0.1503 s (tolerance 1e-12
/// relative); busbw = algbw · 2·15/16.
#[test]
fn collective_worked_example() {
    let v = json(&[
        "collective",
        "--op",
        "allreduce",
        "--algo",
        "ring",
        "--bytes",
        "1e9",
        "--workers",
        "16",
        "--gpus-per-node",
        "1",
        "--inter-node-gbps",
        "100",
        "--latency-us",
        "10",
    ]);
    assert!((f(&v, "time_s") - 0.1503).abs() < 0.1503 * 1e-12, "{v}");
    assert!((f(&v, "algbw_bytes_per_s") - 1e9 / 0.1503).abs() < 1.0);
    assert!((f(&v, "busbw_bytes_per_s") / f(&v, "algbw_bytes_per_s") - 30.0 / 16.0).abs() < 1e-12);
}

#[test]
fn collective_busbw_curve_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("busbw.csv");
    fs::write(
        &p,
        "# nccl-tests all_reduce_perf, made up\nbytes,busbw_bytes_per_s\n1e6,1e9\n1e9,1e10\n",
    )
    .unwrap();
    let v = json(&[
        "collective",
        "--op",
        "allreduce",
        "--bytes",
        "1e9",
        "--workers",
        "16",
        "--inter-node-gbps",
        "100",
        "--latency-us",
        "0",
        "--busbw-csv",
        p.to_str().unwrap(),
    ]);
    // busbw(1e9) = 1e10 exactly, and with α = 0 the reported busbw is the curve's.
    assert!((f(&v, "busbw_bytes_per_s") - 1e10).abs() < 1.0, "{v}");
}

#[test]
fn gradcomp_json_has_the_contract_fields() {
    let v = json(&[
        "gradcomp",
        "--model",
        "resnet-50",
        "--gpu",
        "h100",
        "--workers",
        "32",
        "--gpus-per-node",
        "8",
        "--inter-node-gbps",
        "25",
        "--method",
        "powersgd:rank=4",
        "--batch",
        "64",
        "--break-even",
    ]);
    for k in [
        "step_s",
        "compute_s",
        "comm_s",
        "exposed_comm_s",
        "codec_s",
        "samples_per_s",
        "scaling_efficiency",
        "speedup_vs_baseline",
        "analytic_step_s",
        "break_even_gbps",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    assert_eq!(v["baseline"], "fp16");
    assert_eq!(v["batch"], 64);
    // samples/s = P · b / step; efficiency = compute / step; speedup = baseline / step.
    let step = f(&v, "step_s");
    assert!((f(&v, "samples_per_s") - 32.0 * 64.0 / step).abs() < 1e-6 * f(&v, "samples_per_s"));
    assert!((f(&v, "scaling_efficiency") - f(&v, "compute_s") / step).abs() < 1e-12);
    assert!((f(&v, "speedup_vs_baseline") - f(&v, "baseline_step_s") / step).abs() < 1e-12);
    assert!(step >= f(&v, "compute_s") + f(&v, "codec_s") - 1e-9);
}

/// A prediction priced with calibrated codec costs cites the recorded hold-out error of that
/// execution mode's codec calls and of the real steps (the worst set of each, read back from
/// `models/calibration/h200-validation.toml`); one priced from the datasheet cites none.
#[test]
fn calibrated_prediction_cites_its_measured_error() {
    let rec: toml::Table = toml::from_str(
        &fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("models/calibration/h200-validation.toml"),
        )
        .unwrap(),
    )
    .unwrap();
    let worst = |tag: &str, key: &str| {
        let sets: Vec<&toml::Value> = rec["set"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["set"].as_str().unwrap().contains(tag))
            .collect();
        (
            sets.iter()
                .map(|s| s[key].as_float().unwrap())
                .fold(0.0, f64::max),
            sets.len(),
        )
    };
    let run = |gpu: &str, exec: &str| {
        json(&[
            "gradcomp",
            "--model",
            "resnet-50",
            "--gpu",
            gpu,
            "--workers",
            "16",
            "--inter-node-gbps",
            "100",
            "--method",
            "powersgd:rank=4",
            "--codec-exec",
            exec,
        ])
    };
    for (exec, tag) in [
        ("eager", "-codec-holdout-"),
        ("graph", "-codec-graph-holdout-"),
    ] {
        let v = run("h200", exec);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1e-12);
        let (mape, n) = worst(tag, "mape");
        assert!(n >= 2, "{exec}: {n} hold-out sets");
        assert!(close(f(&v, "codec_validation_mape"), mape), "{exec}: {v}");
        assert!(close(
            f(&v, "codec_validation_max_abs_pct_err"),
            worst(tag, "max_abs_pct_err").0
        ));
        assert_eq!(v["codec_validation_sets"], n);
        assert!(close(
            f(&v, "step_validation_mape"),
            worst("gradcomp-holdout-", "mape").0
        ));
        assert!(v["validation_applies_to"]
            .as_str()
            .unwrap()
            .contains(&format!("{exec} calls")));
    }
    let v = run("h100", "eager");
    assert_eq!(v["codec_costs"], "datasheet");
    assert!(v.get("codec_validation_mape").is_none(), "{v}");
    assert!(v.get("validation_applies_to").is_none(), "{v}");
}

/// The method equal to its baseline has speedup exactly 1; fp32 against an fp16 baseline is < 1.
#[test]
fn baseline_against_itself_is_one() {
    let base = [
        "gradcomp",
        "--model",
        "bert-base",
        "--workers",
        "16",
        "--inter-node-gbps",
        "50",
    ];
    let v = json(&[&base[..], &["--method", "bf16", "--baseline", "bf16"]].concat());
    assert_eq!(f(&v, "speedup_vs_baseline"), 1.0);
    let v = json(&[&base[..], &["--method", "none"]].concat());
    assert!(f(&v, "speedup_vs_baseline") < 1.0, "{v}");
}

/// `--baseline fp32` is reported as fp32 (it was reported as the method name `none`), and fp32
/// DDP against itself has speedup exactly 1.
#[test]
fn fp32_baseline_is_reported_as_fp32() {
    let v = json(&[
        "gradcomp",
        "--model",
        "bert-base",
        "--inter-node-gbps",
        "50",
        "--method",
        "none",
        "--baseline",
        "fp32",
    ]);
    assert_eq!(v["baseline"], "fp32");
    assert_eq!(v["method"], "none");
    assert_eq!(f(&v, "speedup_vs_baseline"), 1.0);
}

/// A usage error shows clap's whole message: the missing flag is named (exit 2, no panic).
#[test]
fn missing_flag_is_named() {
    let out = perfcast()
        .args(["gradcomp", "--model", "resnet-50"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("required arguments were not provided"),
        "{err}"
    );
    assert!(err.contains("--inter-node-gbps"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn pufferfish_two_phase_run() {
    let v = json(&[
        "gradcomp",
        "--model",
        "resnet-50",
        "--workers",
        "16",
        "--inter-node-gbps",
        "25",
        "--lowrank",
        "pufferfish",
        "--rank-ratio",
        "0.25",
        "--warmup-epochs",
        "10",
        "--epochs",
        "90",
        "--dataset-samples",
        "1281167",
    ]);
    assert!(f(&v, "params") < f(&v, "full_rank_params"), "{v}");
    assert!(f(&v, "step_s") < f(&v, "full_rank_step_s"), "{v}");
    let spe = (1281167.0f64 / (16.0 * 32.0)).ceil();
    assert_eq!(f(&v, "steps_per_epoch"), spe);
    let want = 10.0 * spe * f(&v, "full_rank_step_s") + 80.0 * spe * f(&v, "step_s");
    assert!((f(&v, "run_s") - want).abs() < 1e-9 * want);
}

/// `--lowrank cuttlefish` with no ranks runs the model's default profile: fewer parameters and a
/// faster step than full rank, and the row says the ranks are estimated and from where.
#[test]
fn cuttlefish_runs_without_a_rank_profile() {
    let v = json(&[
        "gradcomp",
        "--model",
        "resnet-50",
        "--workers",
        "8",
        "--inter-node-gbps",
        "25",
        "--lowrank",
        "cuttlefish",
        "--warmup-epochs",
        "10",
        "--epochs",
        "90",
        "--dataset-samples",
        "1281167",
    ]);
    assert!(f(&v, "params") < f(&v, "full_rank_params"), "{v}");
    assert!(f(&v, "step_s") < f(&v, "full_rank_step_s"), "{v}");
    assert!(f(&v, "run_speedup") > 1.0, "{v}");
    let src = v["lowrank_ranks"].as_str().unwrap();
    assert!(
        src.contains("estimated") && src.contains("Wang et al. 2023"),
        "{src}"
    );
}

#[test]
fn measured_profile_replaces_the_roofline() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("toy.csv");
    fs::write(
        &p,
        "layer,kind,params,batch,forward_s,input_grad_s,weight_grad_s,optimizer_s,out_act_bytes_per_sample\n\
         embeddings,embedding,1000000,16,0.001,0,0.001,0.0001,1024\n\
         block.0,block,2000000,16,0.002,0.002,0.002,0.0002,1024\n",
    )
    .unwrap();
    let v = json(&[
        "gradcomp",
        "--model",
        "bert-base",
        "--workers",
        "1",
        "--gpus-per-node",
        "1",
        "--inter-node-gbps",
        "100",
        "--profile",
        p.to_str().unwrap(),
    ]);
    // One rank: no communication, step = forward 0.003 + backward 0.005 + optimizer 0.0003 s.
    assert!((f(&v, "step_s") - 0.0083).abs() < 1e-9, "{v}");
    assert_eq!(f(&v, "comm_s"), 0.0);
    assert_eq!(v["batch"], 16);
    assert_eq!(v["params"], 3_000_000);
}

/// Every bad input of the issue: one line naming the field and the allowed range, exit 2.
#[test]
fn bad_input_is_one_line_exit_2() {
    let base = ["gradcomp", "--gpus-per-node", "8"];
    for (mut extra, needle) in [
        (
            vec!["--inter-node-gbps", "10", "--model", "resnet-5"],
            "unknown model 'resnet-5'",
        ),
        (
            vec!["--inter-node-gbps", "10", "--method", "zip"],
            "unknown method 'zip'",
        ),
        (
            vec!["--inter-node-gbps", "10", "--method", "powersgd:rank=0"],
            "rank = 0: must be an integer in [1,",
        ),
        (
            vec!["--inter-node-gbps", "10", "--method", "powersgd:rank=-3"],
            "rank = -3",
        ),
        (
            vec!["--inter-node-gbps", "10", "--method", "powersgd:rank=5000"],
            "layer 'layer4.0.downsample'",
        ),
        (
            vec![
                "--inter-node-gbps",
                "10",
                "--lowrank",
                "cuttlefish",
                "--ranks",
                "fc=2000",
            ],
            "layer 'fc' = 2000",
        ),
        (
            vec!["--inter-node-gbps", "10", "--method", "topk:density=0"],
            "density = 0: must be a number in (0, 1]",
        ),
        (
            vec!["--inter-node-gbps", "10", "--method", "randomk:density=1.5"],
            "density = 1.5",
        ),
        (
            vec!["--inter-node-gbps", "0"],
            "--inter-node-gbps = 0: must be a bandwidth in (0, 1e6] Gbit/s",
        ),
        (vec!["--inter-node-gbps", "-25"], "--inter-node-gbps = -25"),
        (
            vec!["--inter-node-gbps", "10", "--workers", "12"],
            "--workers = 12: must be a multiple of --gpus-per-node = 8",
        ),
    ] {
        if !extra.contains(&"--model") {
            extra.extend(["--model", "resnet-50"]);
        }
        if !extra.contains(&"--workers") {
            extra.extend(["--workers", "16"]);
        }
        let out = perfcast().args(base).args(&extra).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"));
        assert!(out.stdout.is_empty());
    }
    let out = perfcast()
        .args([
            "collective",
            "--op",
            "allreduce",
            "--bytes",
            "1e6",
            "--workers",
            "16",
            "--inter-node-gbps",
            "-1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn scenario_study_writes_break_even_and_plots() {
    let d = tempfile::tempdir().unwrap();
    let sc = d.path().join("gc.toml");
    fs::write(
        &sc,
        "name = \"gc\"\n[[study]]\nname = \"gc\"\ntechnique = \"gradcomp\"\nmodel = \"vgg-16\"\ngpus_per_node = 1\n\
         predictor = \"sim\"\n[study.sweep]\nworkers = [4, 8]\ninter_node_gbps = [1, 10, 100]\n\
         method = [\"fp16\", \"powersgd:rank=4\"]\n",
    )
    .unwrap();
    let out_dir = d.path().join("out");
    succeeded(
        perfcast()
            .args(["run", "--quiet"])
            .arg(&sc)
            .arg("--out")
            .arg(&out_dir)
            .output()
            .unwrap(),
    );
    let csv = fs::read_to_string(out_dir.join("gc.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2 * 3 * 2 + 1);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for col in [
        "workers",
        "inter_node_gbps",
        "method",
        "step_s",
        "speedup_vs_baseline",
        "break_even_gbps",
    ] {
        assert!(header.contains(&col), "{col}: {header:?}");
    }
    for stem in [
        "gc-step-vs-bandwidth",
        "gc-speedup-vs-bandwidth",
        "gc-scaling-vs-workers",
    ] {
        assert!(
            out_dir.join(format!("{stem}.png")).exists()
                && out_dir.join(format!("{stem}.svg")).exists()
        );
    }
    let md = fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(
        md.to_lowercase().contains("break-even node bandwidth") && md.contains("powersgd:rank=4"),
        "{md}"
    );
    // A misspelt key is an error naming the study.
    fs::write(&sc, "[[study]]\ntechnique = \"gradcomp\"\nmodel = \"vgg-16\"\ninter_node_gbps = 10\nworkerz = 4\n").unwrap();
    let out = perfcast()
        .args(["run", "--quiet"])
        .arg(&sc)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("workerz"));
}

#[test]
fn calibrated_collectives_on_the_measured_cluster_only() {
    // 2×H200 on one node (the run-22 machine, graph-timed sweep): the fitted all-reduce, its
    // size regime for 512 MiB (the last one starting at or below it) with α and busbw from
    // models/calibration/h200-gradcomp.toml, so t(512 MiB) = α + 2²⁹/busbw; the label says so.
    let cal: toml::Table =
        toml::from_str(include_str!("../../models/calibration/h200-gradcomp.toml")).unwrap();
    let ar = cal["collective"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["op"].as_str() == Some("allreduce") && c["transport"].as_str() == Some("default")
        })
        .unwrap();
    let r = ar["regime"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|r| r["from_bytes"].as_float().unwrap() <= 536870912.0)
        .unwrap();
    let (alpha, bw) = (
        r["alpha_s"].as_float().unwrap(),
        r["busbw_bytes_per_s"].as_float().unwrap(),
    );
    let args = [
        "collective",
        "--op",
        "allreduce",
        "--bytes",
        "536870912",
        "--workers",
        "2",
        "--gpus-per-node",
        "2",
        "--inter-node-gbps",
        "100",
    ];
    let v = json(&[&args[..], &["--gpu", "h200"]].concat());
    assert_eq!(
        v["collectives"], "calibrated (2×H200 NVLink, run 22)",
        "{v}"
    );
    let want = alpha + 536870912.0 / bw;
    assert!((f(&v, "time_s") - want).abs() < 1e-12 * want, "{v}");
    // Measured on run 22 (graph-timed): 1.70194 ms; the fit is within 10% of it.
    assert!((f(&v, "time_s") / 1.701_94e-3 - 1.0).abs() < 0.10, "{v}");
    // Without --gpu, with another link, or on 4 ranks: the datasheet α–β formulas.
    let v = json(&args);
    assert_eq!(v["collectives"], "datasheet α–β");
    let v = json(&[&args[..], &["--gpu", "h200", "--intra-node-gbps", "800"]].concat());
    assert_eq!(v["collectives"], "datasheet α–β");
    let mut four = args;
    four[6] = "4";
    four[8] = "4";
    let v = json(&[&four[..], &["--gpu", "h200"]].concat());
    assert_eq!(v["collectives"], "datasheet α–β");
    // The DDP what-if on the measured cluster says where its collectives and codecs come from.
    let g = [
        "gradcomp",
        "--model",
        "resnet-50",
        "--gpu",
        "h200",
        "--workers",
        "2",
        "--gpus-per-node",
        "2",
        "--inter-node-gbps",
        "100",
    ];
    let v = json(&g);
    assert_eq!(
        v["collectives"], "calibrated (2×H200 NVLink, run 22)",
        "{v}"
    );
    assert_eq!(
        v["codec_costs"], "calibrated",
        "the committed h200-gradcomp.toml carries the run-17 codec fit"
    );
    let mut h100 = g;
    h100[4] = "h100";
    assert_eq!(json(&h100)["collectives"], "datasheet α–β");
}

#[test]
fn codec_rows_calibrate_validate_and_reach_the_what_if() {
    // Synthetic codec rows in the harness's contract (kind codec, model = method name, params
    // op;rows;cols;elems, metric time_s and wire_bytes), timed from known costs: calibrate writes
    // the [codec] section of h200-gradcomp.toml beside --out, recovering the costs (noise-free:
    // 1e-6); validate scores the codec set (exact: passes); the what-if reads it through
    // --catalog and says "calibrated".
    use perfcast::gradcomp::{BucketContent, CodecCost, Compressor, Method};
    let truth = CodecCost {
        launch_s: 4e-6,
        bw_bytes_per_s: 3.2e12,
        matmul_flops_per_s: 2.5e14,
        vector_flops_per_s: 4e13,
        cache_bytes: 0.0,
        cache_bw_bytes_per_s: 0.0,
        sync_s: 0.0,
        block_step_s: 0.0,
    };
    let mut csv = perfcast::measure::COLUMNS.join(",") + "\n";
    for m in [
        "fp16",
        "powersgd:rank=4",
        "powersgd:rank=64",
        "topk:density=0.01",
        "randomk:density=0.01",
        "signsgd",
        "qsgd:bits=8",
    ] {
        let method = Method::parse(m).unwrap();
        for (r, c) in [(256u64, 256u64), (1024, 1024), (4096, 1024), (4096, 4096)] {
            let b = BucketContent {
                matrices: vec![(r, c)],
                vector_elems: 0,
            };
            let mut work = Vec::new();
            method.codec_work(&b, 2, &mut work);
            for w in work {
                let t = truth.time_of(&w);
                let params = format!("op={};rows={r};cols={c};elems={}", w.op, r * c);
                let wire = method.wire_bytes(&b);
                for (metric, value, unit) in [("time_s", t, "s"), ("wire_bytes", wire, "bytes")] {
                    csv += &format!(
                        "gradcomp,synthetic-codec,codec,{m},,,2,,,,{params},{metric},{value:e},5,0.01,{unit},2026-11-29T00:00:00Z,NVIDIA H200 (synthetic),0,0,synthetic,tests/it/gradcomp_cli.rs\n"
                    );
                }
            }
        }
    }
    let d = tempfile::tempdir().unwrap();
    let rows = d.path().join("codec.csv");
    fs::write(&rows, csv).unwrap();
    let cat = d.path().join("cat/calibration");
    succeeded(
        perfcast()
            .args(["calibrate", "--gpu", "h200", "--results"])
            .arg(&rows)
            .arg("--out")
            .arg(cat.join("h200.toml"))
            .output()
            .unwrap(),
    );
    let file: toml::Table =
        toml::from_str(&fs::read_to_string(cat.join("h200-gradcomp.toml")).unwrap()).unwrap();
    let codec = &file["codec"];
    assert_eq!(codec["mode"].as_str(), Some("shared"), "{codec}");
    let got = &codec["shared"]["cost"];
    for (k, want) in [
        ("launch_s", truth.launch_s),
        ("bw_bytes_per_s", truth.bw_bytes_per_s),
        ("vector_flops_per_s", truth.vector_flops_per_s),
    ] {
        let g = got[k].as_float().unwrap();
        assert!((g / want - 1.0).abs() < 1e-6, "{k}: {g} vs {want}");
    }
    // No codec stage has matmul FLOPs (PowerSGD's fused kernels multiply on the CUDA cores):
    // the rate is not identified and stays the H200 datasheet's (tf32 × efficiency).
    let ds = perfcast::gradcomp::CodecCost::for_gpu(
        perfcast::catalog::Catalog::embedded()
            .unwrap()
            .gpu("h200")
            .unwrap(),
    );
    let g = got["matmul_flops_per_s"].as_float().unwrap();
    assert!(
        (g / ds.matmul_flops_per_s - 1.0).abs() < 1e-9,
        "matmul_flops_per_s {g}"
    );
    let o = perfcast()
        .args(["validate", "--no-plots", "--format", "json", "--results"])
        .arg(&rows)
        .arg("--out")
        .arg(d.path().join("report"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["set"], "synthetic-codec");
    assert!(v[0]["max_abs_pct_err"].as_f64().unwrap() < 1e-6, "{v}");
    // A payload that differs from the model's fails the set, naming the row.
    let text = fs::read_to_string(&rows).unwrap();
    let bad = text.replacen(",wire_bytes,", ",wire_bytes,1", 1);
    fs::write(&rows, bad).unwrap();
    let o = perfcast()
        .args(["validate", "--no-plots", "--results"])
        .arg(&rows)
        .arg("--out")
        .arg(d.path().join("report"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("wire_bytes measured 1"), "{out}");
    fs::write(&rows, text).unwrap();
    let what_if = [
        "gradcomp",
        "--model",
        "resnet-50",
        "--gpu",
        "h200",
        "--method",
        "powersgd:rank=4",
        "--inter-node-gbps",
        "25",
    ];
    let with = json(
        &[
            &["--catalog", d.path().join("cat").to_str().unwrap()],
            &what_if[..],
        ]
        .concat(),
    );
    assert_eq!(with["codec_costs"], "calibrated");
    // The embedded catalog carries the committed run-17 fit: the override's synthetic fit must
    // be the one that reaches the what-if.
    let without = json(&what_if);
    assert_eq!(without["codec_costs"], "calibrated");
    assert_ne!(
        with["codec_s"], without["codec_s"],
        "the override's fit must change codec time"
    );
}
