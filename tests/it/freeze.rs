//! `perfcast freeze` end to end, and properties of the freeze cost model.

use crate::common::{f, perfcast, succeeded};
use perfcast::freeze::cost::{iteration_s, no_cache_total_s, simulate};
use perfcast::freeze::{Cache, IterCosts, LayerCost, Profile, RunShape, Tier, Timeline};
use proptest::prelude::*;

/// The `(step, frozen_layers)` changes of a freeze JSON row's `timeline`.
fn timeline(v: &serde_json::Value) -> Vec<(u64, u64)> {
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["step"].as_u64().unwrap(),
                c["frozen_layers"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn json(args: &[&str]) -> serde_json::Value {
    crate::common::json(&[&["freeze"], args].concat())
}

#[test]
fn worked_example_fixed_k6_of_12() {
    // 12 + 6 + 5 = 23 ms per iteration against 12 + 12 + 11 = 35 ms: speedup 35/23.
    let v = json(&["--model", "uniform:layers=12", "--policy", "fixed:k=6"]);
    assert!((f(&v, "iter_final_s") - 0.023).abs() < 1e-12);
    assert!((f(&v, "iter_unfrozen_s") - 0.035).abs() < 1e-12);
    // Tolerance 1e-12 relative: the same sum of 1 ms terms over every iteration.
    assert!((f(&v, "speedup") - 35.0 / 23.0).abs() < 1e-12, "{v}");
    let iters = f(&v, "iters_per_epoch") * f(&v, "epochs");
    assert!((f(&v, "total_s") - 0.023 * iters).abs() < 1e-9);
    assert!((f(&v, "baseline_s") - 0.035 * iters).abs() < 1e-9);
    assert_eq!(v["frozen_layers_final"], 6);
    assert_eq!(v["cache_bytes"].as_f64(), Some(0.0));
    assert_eq!(v["epoch_s"].as_array().unwrap().len(), 3);
    for k in [
        "total_s",
        "baseline_s",
        "speedup",
        "frozen_layers_final",
        "cache_bytes",
        "timeline",
        "break_even_epochs",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
}

#[test]
fn from_step_delays_the_freeze() {
    // 2 epochs × 10 iterations; k = 6 from step 5: 5 × 35 + 15 × 23 ms.
    let v = json(&[
        "--model",
        "uniform:layers=12",
        "--policy",
        "fixed:k=6,from=5",
        "--epochs",
        "2",
        "--samples",
        "10",
        "--batch",
        "1",
    ]);
    assert!(
        (f(&v, "total_s") - (5.0 * 0.035 + 15.0 * 0.023)).abs() < 1e-12,
        "{v}"
    );
    let e = v["epoch_s"].as_array().unwrap();
    assert!((e[0].as_f64().unwrap() - (5.0 * 0.035 + 5.0 * 0.023)).abs() < 1e-12);
}

#[test]
fn autofreeze_replays_a_hand_made_trace() {
    // The same hand-worked trace as the unit test in src/freeze/policy.rs: rates at step 10 are
    // 0.05, 0.5, 0.5, 0.5 (median 0.5 → freeze 1); at step 20 over layers 1..3: 0.02, 0.5, 0.5
    // (→ 2); at step 30 over layers 2, 3: 0.02, 0.6 (median 0.31 → 3).
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.csv");
    std::fs::write(
        &p,
        "step,layer,grad_norm\n0,0,1.0\n0,1,1.0\n0,2,1.0\n0,3,1.0\n10,0,0.95\n10,1,0.5\n10,2,0.5\n10,3,0.5\n20,0,0.94\n20,1,0.49\n20,2,0.25\n20,3,0.25\n30,0,0.93\n30,1,0.485\n30,2,0.245\n30,3,0.1\n",
    )
    .unwrap();
    let v = json(&[
        "--model",
        "uniform:layers=4",
        "--policy",
        "autofreeze:interval=10",
        "--grad-norms",
        p.to_str().unwrap(),
        "--epochs",
        "1",
        "--samples",
        "40",
        "--batch",
        "1",
    ]);
    let tl = timeline(&v);
    assert_eq!(tl, vec![(0, 0), (10, 1), (20, 2), (30, 3)]);
    // t(0) = 4 + 4 + 3 = 11, t(1) = 4 + 3 + 2 = 9, t(2) = 4 + 2 + 1 = 7, t(3) = 4 + 1 = 5 ms.
    assert!(
        (f(&v, "total_s") - 10.0 * (0.011 + 0.009 + 0.007 + 0.005)).abs() < 1e-12,
        "{v}"
    );
    assert_eq!(v["grad_norms"].as_str().unwrap(), p.to_str().unwrap());
    assert!(v["seed"].is_null());
}

#[test]
fn synthetic_norms_are_seeded_and_reported() {
    let a = json(&[
        "--model",
        "uniform:layers=12",
        "--policy",
        "autofreeze",
        "--seed",
        "7",
    ]);
    let b = json(&[
        "--model",
        "uniform:layers=12",
        "--policy",
        "autofreeze",
        "--seed",
        "7",
    ]);
    assert_eq!(a, b);
    assert_eq!(a["seed"], 7);
    assert!(a["grad_norms"]
        .as_str()
        .unwrap()
        .starts_with("synthetic:seed=7"));
    // The prefix only grows and never covers the last layer.
    let tl = a["timeline"].as_array().unwrap();
    let ks: Vec<u64> = tl
        .iter()
        .map(|c| c["frozen_layers"].as_u64().unwrap())
        .collect();
    assert!(
        ks.windows(2).all(|w| w[0] < w[1]) && *ks.last().unwrap() < 12,
        "{ks:?}"
    );
    assert!(f(&a, "speedup") > 1.0);
}

#[test]
fn emitted_norms_replay_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.csv");
    let args = [
        "--model",
        "uniform:layers=8",
        "--policy",
        "autofreeze:interval=50",
        "--samples",
        "3200",
        "--epochs",
        "2",
    ];
    let mut a1 = args.to_vec();
    a1.extend([
        "--seed",
        "3",
        "--synthetic",
        "noise=0.0",
        "--emit-grad-norms",
        p.to_str().unwrap(),
    ]);
    let a = json(&a1);
    let mut a2 = args.to_vec();
    a2.extend(["--grad-norms", p.to_str().unwrap()]);
    let b = json(&a2);
    // Norms are written with 6 decimals; without noise the replayed decisions are identical.
    assert_eq!(a["timeline"], b["timeline"]);
    assert_eq!(a["total_s"], b["total_s"]);
}

#[test]
fn caching_reports_bytes_and_break_even() {
    // BERT-base (dnn catalog, roofline on H200), 10 000 samples, fixed k = 6, GPU-memory cache.
    let v = json(&[
        "--model",
        "bert-base",
        "--policy",
        "fixed:k=6",
        "--cache",
        "gpu",
        "--samples",
        "10000",
    ]);
    // Output of block 5 per sample: 128 tokens × 768 × 2 bytes (bf16) = 196 608 bytes.
    assert_eq!(f(&v, "cache_bytes"), 10000.0 * 196_608.0);
    assert_eq!(v["cache_fits"], true);
    assert!(f(&v, "cache_saving_s") > 0.0 && f(&v, "total_s") < f(&v, "total_nocache_s"));
    // Break-even read bandwidth: bytes per epoch / prefix forward per epoch; HBM is far above it.
    assert!(f(&v, "break_even_read_bw_bytes_per_s") < f(&v, "cache_read_bw_bytes_per_s"));
    // A read bandwidth below break-even makes the cache cost time and never pay.
    let bw = f(&v, "break_even_read_bw_bytes_per_s") * 0.5;
    let slow = json(&[
        "--model",
        "bert-base",
        "--policy",
        "fixed:k=6",
        "--cache",
        "disk",
        "--cache-read-bw",
        &bw.to_string(),
        "--samples",
        "10000",
    ]);
    assert!(f(&slow, "cache_saving_s") < 0.0);
    assert!(slow["break_even_epochs"].is_null());
    // A cache larger than the tier is flagged.
    let big = json(&[
        "--model",
        "bert-base",
        "--policy",
        "fixed:k=6",
        "--cache",
        "gpu",
        "--samples",
        "1000000",
        "--epochs",
        "1",
        "--batch",
        "256",
    ]);
    assert_eq!(big["cache_fits"], false);
}

#[test]
fn every_issue_model_resolves() {
    for m in [
        "bert-base",
        "bert-large",
        "roberta-base",
        "gpt2-small",
        "vit-b-16",
        "resnet-50",
    ] {
        let v = json(&[
            "--model",
            m,
            "--policy",
            "freezeout",
            "--samples",
            "256",
            "--epochs",
            "1",
            "--batch",
            "32",
        ]);
        assert!(f(&v, "speedup") > 1.0, "{m}: {v}");
        assert!(f(&v, "iter_unfrozen_s") > 0.0);
    }
}

#[test]
fn timeline_plot_is_written() {
    let dir = tempfile::tempdir().unwrap();
    json(&[
        "--model",
        "uniform:layers=6",
        "--policy",
        "freezeout:schedule=linear",
        "--plot",
        dir.path().to_str().unwrap(),
    ]);
    assert!(dir.path().join("freeze-timeline.png").exists());
    assert!(dir.path().join("freeze-timeline.svg").exists());
}

#[test]
fn bad_input_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "step,layer,grad_norm\n0,0,1\n0,1,1\n10,0,1\n5,1,1\n").unwrap();
    let badname = dir.path().join("badname.csv");
    std::fs::write(&badname, "step,layer,grad_norm\n0,layer0,1\n0,layr1,1\n").unwrap();
    let b = bad.to_str().unwrap();
    let bn = badname.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--model", "uniform:layers=12", "--policy", "fixed:k=13"],
            "policy.fixed.k = 13: must be an integer in [0, 12]",
        ),
        (
            &[
                "--model",
                "uniform:layers=4",
                "--policy",
                "autofreeze:percentile=101",
            ],
            "policy.autofreeze.percentile = 101: must be in [0, 100]",
        ),
        (
            &[
                "--model",
                "uniform:layers=4",
                "--policy",
                "autofreeze:percentile=-5",
            ],
            "policy.autofreeze.percentile = -5",
        ),
        (
            &[
                "--model",
                "uniform:layers=2",
                "--policy",
                "autofreeze",
                "--grad-norms",
                b,
            ],
            "bad.csv:5: step = 5 after step 10",
        ),
        (
            &[
                "--model",
                "uniform:layers=2",
                "--policy",
                "autofreeze",
                "--grad-norms",
                bn,
            ],
            "badname.csv:3: unknown layer 'layr1' (did you mean 'layer1'?)",
        ),
        (
            &["--model", "bert-bas"],
            "unknown model 'bert-bas' (did you mean 'bert-base'?)",
        ),
        (
            &["--model", "uniform:layers=4", "--gpu", "h2000"],
            "unknown gpu 'h2000'",
        ),
        (
            &["--model", "uniform:layers=4", "--cache", "ssd"],
            "unknown cache tier 'ssd'",
        ),
        (
            &["--model", "uniform:layers=4", "--policy", "freezout"],
            "unknown policy 'freezout'",
        ),
        (
            &["--model", "uniform:layers=4", "--epochs", "0"],
            "epochs = 0",
        ),
        (
            &["--model", "uniform:layers=4", "--batch", "0"],
            "batch = 0",
        ),
        (&["--model", "uniform:layers=0"], "model.uniform.layers = 0"),
        (
            &[
                "--model",
                "uniform:layers=4",
                "--cache",
                "gpu",
                "--cache-read-bw",
                "-1",
            ],
            "cache_read_bw_bytes_per_s = -1",
        ),
        (
            &[
                "--model",
                "uniform:layers=4",
                "--policy",
                "autofreeze",
                "--synthetic",
                "noise=5",
            ],
            "synthetic.noise = 5",
        ),
        (
            &[
                "--model",
                "uniform:layers=4",
                "--policy",
                "autofreeze",
                "--grad-norms",
                "/nonexistent/g.csv",
            ],
            "/nonexistent/g.csv",
        ),
        (&["--model", "/nonexistent/p.toml"], "/nonexistent/p.toml"),
    ];
    for (args, needle) in cases {
        let out = perfcast().arg("freeze").args(*args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn scenario_study_runs() {
    let dir = tempfile::tempdir().unwrap();
    let sc = dir.path().join("s.toml");
    std::fs::write(
        &sc,
        "[[study]]\nname = \"fz\"\ntechnique = \"freeze\"\nmodel = \"uniform:layers=6\"\nepochs = 2\nbatch = 8\n[study.sweep]\nsamples = [80, 800]\npolicy = [\"none\", \"fixed:k=3\", \"autofreeze\"]\ncache = [\"none\", \"ram\"]\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    succeeded(
        perfcast()
            .args([
                "run",
                sc.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
                "--quiet",
            ])
            .output()
            .unwrap(),
    );
    let csv = std::fs::read_to_string(out_dir.join("fz.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 12);
    for f in ["fz-speedup.png", "fz-timeline.svg", "summary.md"] {
        assert!(out_dir.join(f).exists(), "{f}");
    }
    // Unknown keys in a freeze study name the study.
    std::fs::write(&sc, "[[study]]\nname = \"fz\"\ntechnique = \"freeze\"\nmodel = \"uniform:layers=6\"\nbogus = 1\n").unwrap();
    let out = perfcast()
        .args([
            "run",
            sc.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("study 'fz'"));
}

fn layer() -> impl Strategy<Value = LayerCost> {
    (
        0.0..1e-2f64,
        0.0..1e-2f64,
        0.0..1e-2f64,
        0.0..1e-3f64,
        0.0..1e6f64,
    )
        .prop_map(|(f, i, w, o, a)| LayerCost {
            name: String::new(),
            forward_s: f,
            input_grad_s: i,
            weight_grad_s: w,
            optimizer_s: o,
            params: 0,
            activation_bytes_per_sample: a,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Freezing more layers (a superset of frozen layers, any mask, not only prefixes) never
    /// costs more per iteration.
    #[test]
    fn more_frozen_never_costs_more(layers in prop::collection::vec(layer(), 1..40), seed in any::<u64>(), extra in any::<u64>()) {
        let n = layers.len();
        let frozen_a: Vec<bool> = (0..n).map(|i| (seed >> (i % 64)) & 1 == 1).collect();
        let frozen_b: Vec<bool> = (0..n).map(|i| frozen_a[i] || (extra >> (i % 64)) & 1 == 1).collect();
        let ta: Vec<bool> = frozen_a.iter().map(|f| !f).collect();
        let tb: Vec<bool> = frozen_b.iter().map(|f| !f).collect();
        prop_assert!(iteration_s(&layers, &tb) <= iteration_s(&layers, &ta) + 1e-15);
    }

    /// Prefix costs are monotone too, and a whole run without a cache costs more when fewer
    /// layers are frozen.
    #[test]
    fn prefix_runs_are_monotone(layers in prop::collection::vec(layer(), 1..30), k1 in 0usize..30, k2 in 0usize..30) {
        let mut named = layers.clone();
        for (i, l) in named.iter_mut().enumerate() { l.name = format!("l{i}"); }
        let p = Profile::new("p", "test", 4, named).unwrap();
        let (lo, hi) = (k1.min(k2).min(p.len()), k1.max(k2).min(p.len()));
        let ic = IterCosts::new(&p);
        prop_assert!(ic.base[hi] <= ic.base[lo] + 1e-15);
        let shape = RunShape::new(2, 40, 4).unwrap();
        let run = |k: usize| {
            let mut t = Timeline::new(shape.total_steps());
            t.grow(3, k);
            simulate(&ic, &t, &shape, &Cache::none()).total_s
        };
        prop_assert!(run(hi) <= run(lo) + 1e-12);
    }

    /// The per-iteration simulation without a cache equals the closed form over the timeline's
    /// segments (tolerance 1e-9 relative: different summation orders).
    #[test]
    fn simulation_matches_closed_form(layers in prop::collection::vec(layer(), 1..20), grows in prop::collection::vec((0u64..200, 0usize..20), 0..6), epochs in 1u32..4, samples in 1u64..100, batch in 1u32..9) {
        let mut named = layers.clone();
        for (i, l) in named.iter_mut().enumerate() { l.name = format!("l{i}"); }
        let p = Profile::new("p", "test", batch, named).unwrap();
        let ic = IterCosts::new(&p);
        let shape = RunShape::new(epochs, samples, batch).unwrap();
        let mut t = Timeline::new(shape.total_steps());
        let mut g = grows.clone();
        g.sort();
        for (s, k) in g { t.grow(s, k.min(p.len())); }
        let sim = simulate(&ic, &t, &shape, &Cache::none());
        let cf = no_cache_total_s(&ic, &t);
        prop_assert!((sim.total_s - cf).abs() <= 1e-9 * (1.0 + cf), "{} vs {}", sim.total_s, cf);
        let epochs_sum: f64 = sim.epoch_s.iter().sum();
        prop_assert!((epochs_sum - sim.total_s).abs() <= 1e-12 * (1.0 + cf));
    }

    /// With an infinitely fast cache every read epoch saves exactly the frozen prefix's forward.
    #[test]
    fn free_cache_saves_the_prefix_forward(layers in prop::collection::vec(layer(), 2..20), k in 1usize..20) {
        let mut named = layers.clone();
        for (i, l) in named.iter_mut().enumerate() { l.name = format!("l{i}"); }
        let p = Profile::new("p", "test", 4, named).unwrap();
        let k = k.min(p.len());
        let ic = IterCosts::new(&p);
        let shape = RunShape::new(3, 40, 4).unwrap();
        let mut t = Timeline::new(shape.total_steps());
        t.grow(0, k);
        let c = Cache { tier: Tier::Gpu, read_bw_bytes_per_s: f64::INFINITY, write_bw_bytes_per_s: f64::INFINITY, capacity_bytes: 1e18, lag: false };
        let with = simulate(&ic, &t, &shape, &c);
        let without = simulate(&ic, &t, &shape, &Cache::none());
        // Epoch 0 writes; epochs 1 and 2 read: saving = 2 epochs × 10 iterations × Σ_{i<k} fwd.
        let want = 20.0 * ic.fwd_prefix[k];
        prop_assert!((without.total_s - with.total_s - want).abs() <= 1e-9 * (1.0 + want));
    }
}

#[test]
fn replaying_the_measured_h200_trace_gives_the_real_runs_timeline() {
    // The committed gradient norms of a real H200 fine-tuning run (traces/README.md): AutoFreeze
    // replayed by the library freezes what the online rule froze on the GPU — 5 layers at step
    // 315 (validation/results/reference/h200-freeze-trace-timeline.csv).
    let o = succeeded(
        perfcast()
            .args([
                "freeze",
                "--model",
                "bert-base",
                "--gpu",
                "h200",
                "--policy",
                "autofreeze:interval=35",
                "--grad-norms",
                "traces/freeze-bert-base-h200-gradnorms.csv",
                "--epochs",
                "3",
                "--samples",
                "4480",
                "--batch",
                "32",
                "--format",
                "json",
            ])
            .output()
            .unwrap(),
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tl = timeline(&v);
    assert_eq!(tl, vec![(0, 0), (315, 5)]);
}

/// The committed H200 freeze calibration's shape `bf16 batch 32 seq 128`, read from the TOML.
fn h200_shape(dtype: &str, batch: i64, seq: i64) -> toml::Value {
    let text = std::fs::read_to_string("models/calibration/h200-freeze.toml").unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["dtype"].as_str() == Some(dtype)
                && s["batch"].as_integer() == Some(batch)
                && s["seq"].as_integer() == Some(seq)
        })
        .unwrap()
        .clone()
}

#[test]
fn what_if_at_the_calibrated_shape_uses_the_calibrated_unit_costs() {
    let s = h200_shape("bf16", 32, 128);
    let (sf, sb) = (
        s["forward_scale"].as_float().unwrap(),
        s["backward_scale"].as_float().unwrap(),
    );
    let u = |unit: &str, k: &str| s[unit][k].as_float().unwrap();
    // By hand from the TOML (cost semantics of freeze::cost): every forward × s_f; every unit's
    // weight gradient + AdamW step × s_b; the input gradient of every unit above the embeddings
    // × s_b (12 blocks + head).
    let fwd =
        u("embeddings", "forward_s") + 12.0 * u("block", "forward_s") + u("head", "forward_s");
    let train = |unit: &str| u(unit, "weight_grad_s") + u(unit, "optimizer_s");
    let rest = train("embeddings")
        + 12.0 * train("block")
        + train("head")
        + 12.0 * u("block", "input_grad_s")
        + u("head", "input_grad_s");
    let iter0 = sf * fwd + sb * rest;
    // All but the head frozen: forwards + the head's weight gradient and step.
    let iter13 = sf * fwd + sb * train("head");
    let v = json(&[
        "--model",
        "bert-base",
        "--gpu",
        "h200",
        "--batch",
        "32",
        "--seq",
        "128",
        "--policy",
        "fixed:k=13",
    ]);
    // Tolerance 1e-9 relative: the same sums in another order.
    assert!(
        (f(&v, "iter_unfrozen_s") - iter0).abs() < 1e-9 * iter0,
        "{v}"
    );
    assert!(
        (f(&v, "iter_final_s") - iter13).abs() < 1e-9 * iter13,
        "{v}"
    );
    // The fit reproduces the two measured whole iterations (iter_measured of the TOML).
    let m = s["iter_measured"].as_array().unwrap();
    let meas = |i: usize| m[i].as_array().unwrap()[1].as_float().unwrap();
    assert!((iter0 - meas(0)).abs() < 1e-9 * iter0 && (iter13 - meas(1)).abs() < 1e-9 * iter13);
    let costs = v["costs"].as_str().unwrap();
    assert!(
        costs.starts_with("calibrated (h200-freeze, measured MAPE ") && costs.contains("%, max "),
        "{costs}"
    );
    assert_eq!(v["dtype"], "bf16");
    // The same point on the roofline: the old, several-times-faster answer, labelled as such.
    let r = json(&[
        "--model",
        "bert-base",
        "--gpu",
        "h200",
        "--costs",
        "roofline",
    ]);
    assert_eq!(r["costs"], "roofline (uncalibrated)");
    assert!(f(&r, "iter_unfrozen_s") < 0.2 * iter0, "{r}");
    // f32 at its own calibrated shape.
    let s32 = h200_shape("f32", 16, 256);
    let v32 = json(&[
        "--model",
        "bert-base",
        "--dtype",
        "f32",
        "--batch",
        "16",
        "--seq",
        "256",
    ]);
    let m32 = s32["iter_measured"].as_array().unwrap()[0]
        .as_array()
        .unwrap()[1]
        .as_float()
        .unwrap();
    assert!(
        (f(&v32, "iter_unfrozen_s") - m32).abs() < 1e-9 * m32,
        "{v32}"
    );
}

#[test]
fn other_shapes_scale_the_calibration_and_other_gpus_stay_roofline() {
    // Between the measured batches and sequence lengths: scaled, interpolated, and between the
    // calibrated neighbours' iterations (b16 s128 and b32 s256).
    let v = json(&["--model", "bert-base", "--batch", "24", "--seq", "192"]);
    let c = v["costs"].as_str().unwrap();
    assert!(
        c.starts_with("calibrated scaling (h200-freeze bf16") && c.contains("interpolated"),
        "{c}"
    );
    let lo = h200_shape("bf16", 16, 128)["iter_measured"][0][1]
        .as_float()
        .unwrap();
    let hi = h200_shape("bf16", 32, 256)["iter_measured"][0][1]
        .as_float()
        .unwrap();
    let t = f(&v, "iter_unfrozen_s");
    assert!(lo < t && t < hi, "{lo} < {t} < {hi}");
    // Another architecture or batch: said to be extrapolated.
    for (args, needle) in [
        (
            vec!["--model", "bert-large"],
            "extrapolated: bert-large is not bert-base",
        ),
        (
            vec!["--model", "bert-base", "--batch", "64"],
            "extrapolated: batch 64 outside 16–32",
        ),
    ] {
        let v = json(&args);
        assert!(v["costs"].as_str().unwrap().contains(needle), "{v}");
    }
    // A GPU without a freeze calibration, and a layer kind the calibration has no unit for.
    let v = json(&["--model", "bert-base", "--gpu", "h100"]);
    assert_eq!(
        v["costs"],
        "roofline (uncalibrated); no freeze calibration for h100"
    );
    let v = json(&["--model", "resnet-50"]);
    assert!(
        v["costs"]
            .as_str()
            .unwrap()
            .starts_with("roofline (uncalibrated); layer conv1 is a conv layer"),
        "{v}"
    );
    let v = json(&["--model", "uniform:layers=4"]);
    assert_eq!(v["costs"], "given profile (uniform unit model)");
    assert!(v["dtype"].is_null());
}

#[test]
fn bad_dtype_seq_and_costs_are_one_line_exit_2() {
    for (args, needle) in [
        (
            vec!["--model", "bert-base", "--dtype", "f16"],
            "unknown dtype 'f16'",
        ),
        (
            vec!["--model", "bert-base", "--seq", "600"],
            "seq = 600: must be an integer in [1, 512]",
        ),
        (vec!["--model", "bert-base", "--seq", "0"], "seq = 0"),
        (vec!["--model", "resnet-50", "--seq", "128"], "seq = 128"),
        (
            vec!["--model", "bert-base", "--costs", "best"],
            "unknown costs 'best'",
        ),
        (
            vec![
                "--model",
                "bert-base",
                "--gpu",
                "h100",
                "--costs",
                "calibrated",
            ],
            "costs = calibrated: must be auto or roofline here: no freeze calibration for h100",
        ),
        (
            vec!["--model", "uniform:layers=4", "--dtype", "f32"],
            "dtype = f32: must be given only with a catalog model",
        ),
    ] {
        let out = perfcast().arg("freeze").args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn the_measured_trace_replays_from_any_directory() {
    // Outside the repository the path reads the embedded copy (the default scenario names it),
    // which is the committed file byte for byte.
    let (_, text) = perfcast::freeze::gradnorm::EMBEDDED_TRACES[0];
    assert_eq!(
        text,
        std::fs::read_to_string("traces/freeze-bert-base-h200-gradnorms.csv").unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = succeeded(
        perfcast()
            .current_dir(dir.path())
            .args([
                "freeze",
                "--model",
                "bert-base",
                "--policy",
                "autofreeze:interval=35",
                "--grad-norms",
                "traces/freeze-bert-base-h200-gradnorms.csv",
                "--samples",
                "4480",
                "--format",
                "json",
            ])
            .output()
            .unwrap(),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["grad_norms"],
        "traces/freeze-bert-base-h200-gradnorms.csv (embedded copy)"
    );
    assert_eq!(v["timeline"][1]["step"], 315);
    assert_eq!(v["timeline"][1]["frozen_layers"], 5);
    // The baseline trains every layer without computing AutoFreeze's norms: the calibrated
    // k = 0 iteration of the shape, 420 times.
    let m = h200_shape("bf16", 32, 128)["iter_measured"][0][1]
        .as_float()
        .unwrap();
    assert!(
        (f(&v, "baseline_s") - 420.0 * m).abs() < 1e-9 * 420.0 * m,
        "{v}"
    );
    assert!(f(&v, "iter_unfrozen_s") > m);
}
