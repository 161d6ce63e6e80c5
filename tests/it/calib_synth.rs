//! Synthetic measurement sets generated from known latency parameters (+ seeded noise), in the
//! measurement-CSV contract. Used by the calibrate/validate tests; the committed fixture
//! `tests/fixtures/synthetic-specdec.csv` is this generator's output (checked by a test).

use perfcast::catalog::LatencyDefaults;
use perfcast::specdec::calib::validate::expected_rounds_static_batch;
use perfcast::specdec::{
    analytic, Acceptance, CostModel, ForwardModel, Gamma, HwRates, Params, Shape,
};
use perfcast::Catalog;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use rand_xoshiro::Xoshiro256PlusPlus;
use std::fmt::Write as _;

/// The parameters the synthetic data is generated from.
pub const TRUE: LatencyDefaults = LatencyDefaults {
    flops_efficiency: 0.55,
    bw_efficiency: 0.80,
    layer_overhead_s: 25e-6,
    step_overhead_s: 150e-6,
    host_layer_s: 60e-6,
    score_elem_s: 2e-12,
    attn_bw_efficiency: Some(0.3),
    multi_token_layer_s: 12e-6,
    multi_row_layer_s: 0.0,
    attn_stream_bw_bytes_per_s: Some(20e9),
    act_elem_s: 5e-11,
};

pub const HEADER: &str = "technique,set,kind,model,draft,gamma,batch,new_tokens,context_tokens,position,metric,value,repeats,spread,unit,date,gpu,driver,cuda,commit,command\n";
const PROV: &str =
    "2026-11-29T00:00:00Z,NVIDIA H200 (synthetic),0,0,synthetic,tests/it/calib_synth.rs";

const TARGET: &str = "llama-3.1-8b";
const DRAFT: &str = "llama-3.2-1b";

fn hw(cat: &Catalog) -> HwRates {
    HwRates::bf16(cat.gpu("h200").unwrap(), &TRUE)
}

fn model(cat: &Catalog, name: &str) -> ForwardModel {
    ForwardModel::new(cat.llm(name).unwrap().clone(), hw(cat), None).unwrap()
}

/// Forward rows over models × batch × new tokens × context, each × (1 + noise·N(0,1)).
pub fn forward_csv(noise: f64, seed: u64) -> String {
    let cat = Catalog::embedded().unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let n01 = Normal::new(0.0, 1.0).unwrap();
    let mut s = String::new();
    for m in [TARGET, DRAFT, "opt-125m"] {
        let fm = model(&cat, m);
        for b in [1u32, 4, 16, 64] {
            for n in [1u32, 4, 9, 128] {
                for c in [128u32, 2048] {
                    let t = fm.forward_s(Shape {
                        batch: f64::from(b),
                        new_tokens: f64::from(n),
                        context_tokens: f64::from(c),
                    });
                    let v = t * (1.0 + noise * n01.sample(&mut rng));
                    let _ = writeln!(s, "specdec,synthetic-forward,forward,{m},,,{b},{n},{c},,forward_s,{v:e},20,0.01,s,{PROV}");
                }
            }
        }
    }
    s
}

/// Acceptance + e2e rows: speculative points over γ × batch for a draft model and LayerSkip, and
/// autoregressive points, for static batches of 256 new tokens per sequence: tokens/s =
/// b·n/(E[rounds]·step_s) from the analytic step time at TRUE, × (1 + bias + noise·N(0,1)).
pub fn e2e_csv(set: &str, noise: f64, bias: f64, seed: u64) -> String {
    let cat = Catalog::embedded().unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let n01 = Normal::new(0.0, 1.0).unwrap();
    let mut s = String::new();
    let ctx = 600.0;
    for b in [1u32, 8, 32] {
        let t = model(&cat, TARGET).forward_s(Shape {
            batch: f64::from(b),
            new_tokens: 1.0,
            context_tokens: ctx,
        });
        let v = f64::from(b) / t * (1.0 + bias + noise * n01.sample(&mut rng));
        let _ = writeln!(s, "specdec,{set},e2e,{TARGET},none,0,{b},256,{ctx},,tokens_per_s,{v:e},5,0.01,tokens/s,{PROV}");
        for (draft, alpha) in [
            (DRAFT.to_string(), 0.75_f64),
            ("layerskip:E=8".to_string(), 0.6),
        ] {
            for g in [1u32, 2, 4, 8] {
                // A measured-looking survival curve: i.i.d. α with a per-position wobble.
                let surv: Vec<f64> = (1..=g)
                    .map(|i| alpha.powi(i as i32) * (1.0 - 0.02 * f64::from(i % 2)))
                    .collect();
                let acc = Acceptance::survival(surv.clone()).unwrap();
                for (i, sv) in surv.iter().enumerate() {
                    let _ = writeln!(s, "specdec,{set},acceptance,{TARGET},{draft},{g},{b},,,{},survival,{sv},4000,,fraction,{PROV}", i + 1);
                }
                let cost = match draft.strip_prefix("layerskip:E=") {
                    Some(e) => {
                        CostModel::early_exit(model(&cat, TARGET), e.parse().unwrap()).unwrap()
                    }
                    None => CostModel::DraftModel {
                        target: model(&cat, TARGET),
                        draft: model(&cat, &draft),
                    },
                };
                let p = Params {
                    draft_name: draft.clone(),
                    target_name: TARGET.into(),
                    acceptance: acc,
                    gamma: Gamma::Fixed(g),
                    batch: b,
                    context_tokens: ctx,
                    cost,
                    gpu_memory_bytes: None,
                    platform: perfcast::specdec::Platform::default(),
                };
                let m = analytic(&p).unwrap();
                let rounds = expected_rounds_static_batch(&p.acceptance, g, 256, b);
                let v = f64::from(b) * 256.0 / (rounds * m.step_s)
                    * (1.0 + bias + noise * n01.sample(&mut rng));
                let _ = writeln!(s, "specdec,{set},e2e,{TARGET},{draft},{g},{b},256,{ctx},,tokens_per_s,{v:e},5,0.02,tokens/s,{PROV}");
            }
        }
    }
    s
}

/// The committed fixture: forward grid with 1% noise and an e2e set with 1.5% noise.
pub fn fixture() -> String {
    format!(
        "{HEADER}{}{}",
        forward_csv(0.01, 1),
        e2e_csv("synthetic-e2e", 0.015, 0.0, 2)
    )
}
