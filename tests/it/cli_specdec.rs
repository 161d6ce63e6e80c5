//! `perfcast specdec` end to end through the binary.

use crate::common::{fails, json};

#[test]
fn leviathan_example_speedup() {
    // (1 − 0.7⁴)/((1 − 0.7)(3·0.1 + 1)) = 1.948461538; printed to 4 decimals 1.9485.
    let v = json(&[
        "specdec",
        "--alpha",
        "0.7",
        "--gamma",
        "3",
        "--cost-ratio",
        "0.1",
    ]);
    let s = v["speedup"].as_f64().unwrap();
    assert!((s - 1.9485).abs() < 5e-5, "{s}");
    assert_eq!(v["gamma"], 3);
    assert!((v["expected_tokens_per_step"].as_f64().unwrap() - 2.533).abs() < 1e-9);
    for k in [
        "alpha",
        "draft_step_s",
        "verify_step_s",
        "step_s",
        "tokens_per_s",
        "baseline_tokens_per_s",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
}

#[test]
fn ranking_is_sorted_by_tokens_per_s() {
    let v = json(&[
        "specdec",
        "--target",
        "llama-2-13b",
        "--draft",
        "tinyllama-1.1b,llama-2-7b,sheared-llama-1.3b",
        "--alpha",
        "0.6,0.8,0.7",
        "--gamma",
        "auto",
    ]);
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 3);
    let t: Vec<f64> = a
        .iter()
        .map(|x| x["tokens_per_s"].as_f64().unwrap())
        .collect();
    assert!(t.windows(2).all(|w| w[0] >= w[1]), "{t:?}");
}

#[test]
fn sim_reports_seed_and_percentiles() {
    let v = json(&[
        "specdec",
        "--alpha",
        "0.8",
        "--gamma",
        "4",
        "--cost-ratio",
        "0.05",
        "--method",
        "sim",
        "--seed",
        "11",
        "--steps",
        "20000",
    ]);
    assert_eq!(v["seed"], 11);
    let a = json(&[
        "specdec",
        "--alpha",
        "0.8",
        "--gamma",
        "4",
        "--cost-ratio",
        "0.05",
    ]);
    let (s, e) = (
        v["tokens_per_s"].as_f64().unwrap(),
        a["tokens_per_s"].as_f64().unwrap(),
    );
    assert!(
        (s - e).abs() / e < 0.01,
        "sim {s} vs analytic {e} (tolerance 1%)"
    );
    assert!(
        v["p99_token_latency_s"].as_f64().unwrap() >= v["p50_token_latency_s"].as_f64().unwrap()
    );
}

#[test]
fn layerskip_and_chai_run() {
    let v = json(&[
        "specdec",
        "--target",
        "llama-2-7b",
        "--exit-layer",
        "8",
        "--alpha",
        "0.6",
        "--gamma",
        "3",
        "--chai-clusters",
        "8",
        "--context",
        "4096",
    ]);
    assert_eq!(v["draft"], "layerskip:E=8");
    let plain = json(&[
        "specdec",
        "--target",
        "llama-2-7b",
        "--exit-layer",
        "8",
        "--alpha",
        "0.6",
        "--gamma",
        "3",
        "--context",
        "4096",
    ]);
    assert!(v["tokens_per_s"].as_f64().unwrap() > plain["tokens_per_s"].as_f64().unwrap());
}

#[test]
fn marginal_rate_is_converted_not_used_as_alpha() {
    // ρ = 0.5904 at γ = 4 corresponds to α = 0.8.
    let v = json(&[
        "specdec",
        "--acceptance-rate",
        "0.5904",
        "--rate-gamma",
        "4",
        "--gamma",
        "4",
        "--cost-ratio",
        "0.05",
    ]);
    assert!((v["alpha"].as_f64().unwrap() - 0.8).abs() < 1e-6);
}

#[test]
fn bad_input_is_one_line_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "specdec",
                "--alpha",
                "1.5",
                "--gamma",
                "3",
                "--cost-ratio",
                "0.1",
            ],
            "alpha = 1.5: must be in [0, 1]",
        ),
        (
            &[
                "specdec",
                "--alpha",
                "NaN",
                "--gamma",
                "3",
                "--cost-ratio",
                "0.1",
            ],
            "alpha = NaN",
        ),
        (
            &[
                "specdec",
                "--alpha",
                "0.7",
                "--gamma",
                "0",
                "--cost-ratio",
                "0.1",
            ],
            "gamma = 0: must be an integer in [1, 64]",
        ),
        (
            &[
                "specdec",
                "--alpha",
                "0.7",
                "--gamma",
                "65",
                "--cost-ratio",
                "0.1",
            ],
            "gamma = 65",
        ),
        (
            &["specdec", "--alpha", "0.7", "--cost-ratio", "-1"],
            "cost_ratio = -1",
        ),
        (
            &["specdec", "--alpha", "0.7", "--draft", "llama-2-7bb"],
            "did you mean 'llama-2-7b'",
        ),
        (
            &[
                "specdec",
                "--alpha",
                "0.7",
                "--draft",
                "llama-2-7b",
                "--gpu",
                "h2000",
            ],
            "unknown gpu 'h2000'",
        ),
        (
            &[
                "specdec",
                "--alpha",
                "0.7",
                "--target",
                "llama-2-7b",
                "--exit-layer",
                "32",
            ],
            "exit_layer = 32: must be an integer in [1, 31]",
        ),
        (
            &[
                "specdec",
                "--alpha",
                "0.7",
                "--cost-ratio",
                "0.1",
                "--batch",
                "0",
            ],
            "batch = 0",
        ),
        (
            &[
                "specdec",
                "--alpha",
                "0.7",
                "--cost-ratio",
                "0.1",
                "--context",
                "-5",
            ],
            "context_tokens = -5",
        ),
        (&["specdec", "--cost-ratio", "0.1"], "alpha = missing"),
        (&["specdec", "--alpha", "0.7"], "--draft = missing"),
    ];
    for (args, needle) in cases {
        fails(args, needle);
    }
}
