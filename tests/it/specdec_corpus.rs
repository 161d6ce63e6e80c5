//! The specdec case corpus (`specdec_cases.toml`) against every predictor, and property tests.

use perfcast::specdec::{
    alpha_from_acceptance_rate, analytic, best_gamma, simulate, Acceptance, CostModel, Gamma,
    Params, SimConfig,
};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    alpha: Option<f64>,
    survival: Option<Vec<f64>>,
    conditional: Option<Vec<f64>>,
    gamma: u32,
    cost_ratio: f64,
    expected_tokens: f64,
    speedup: f64,
}

fn params(acceptance: Acceptance, gamma: u32, c: f64, batch: u32) -> Params {
    Params {
        draft_name: "d".into(),
        target_name: "t".into(),
        acceptance,
        gamma: Gamma::Fixed(gamma),
        batch,
        context_tokens: 0.0,
        cost: CostModel::from_cost_ratio(c, 0.01).unwrap(),
        gpu_memory_bytes: None,
        platform: perfcast::specdec::Platform::default(),
    }
}

fn case_params(c: &Case) -> Params {
    let acc = match (c.alpha, &c.survival, &c.conditional) {
        (Some(a), None, None) => Acceptance::iid(a).unwrap(),
        (None, Some(s), None) => Acceptance::survival(s.clone()).unwrap(),
        (None, None, Some(r)) => Acceptance::conditional(r.clone()).unwrap(),
        _ => panic!("{}: exactly one acceptance form", c.name),
    };
    params(acc, c.gamma, c.cost_ratio, 4)
}

#[test]
fn corpus_against_analytic_and_simulation() {
    let corpus: Corpus = toml::from_str(include_str!("specdec_cases.toml")).unwrap();
    assert!(corpus.case.len() >= 6);
    for c in &corpus.case {
        let p = case_params(c);
        let a = analytic(&p).unwrap();
        assert!(
            (a.expected_tokens_per_step - c.expected_tokens).abs() < 1e-9,
            "{}: E {}",
            c.name,
            a.expected_tokens_per_step
        );
        assert!(
            (a.speedup - c.speedup).abs() < 1e-9,
            "{}: speedup {} (tolerance 1e-9)",
            c.name,
            a.speedup
        );
        let s = simulate(
            &p,
            SimConfig {
                steps: 40_000,
                gen_tokens: 128,
                seed: 5,
            },
        )
        .unwrap();
        let err = (s.speedup - c.speedup).abs() / c.speedup;
        assert!(
            err < 0.01,
            "{}: sim speedup {} vs {} ({:.3}%, tolerance 1%)",
            c.name,
            s.speedup,
            c.speedup,
            err * 100.0
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn expected_tokens_bounds_and_monotonicity(alpha in 0.0f64..1.0, gamma in 1u32..32) {
        let e = Acceptance::Iid(alpha).expected_tokens(gamma);
        prop_assert!((1.0..=f64::from(gamma) + 1.0 + 1e-12).contains(&e));
        prop_assert!(Acceptance::Iid(alpha).expected_tokens(gamma + 1) >= e - 1e-12);
        prop_assert!(Acceptance::Iid((alpha + 0.01).min(1.0)).expected_tokens(gamma) >= e - 1e-12);
    }

    #[test]
    fn acceptance_rate_round_trips(alpha in 0.01f64..0.99, gamma in 1u32..16) {
        let rho = Acceptance::Iid(alpha).marginal_rate(gamma);
        let back = alpha_from_acceptance_rate(rho, gamma).unwrap();
        prop_assert!((back - alpha).abs() < 1e-7, "α {alpha} γ {gamma} → ρ {rho} → {back}");
        prop_assert!(rho <= alpha + 1e-12);
    }

    #[test]
    fn auto_gamma_beats_every_fixed_gamma(alpha in 0.0f64..1.0, c in 0.0f64..1.0) {
        let mut p = params(Acceptance::Iid(alpha), 1, c, 1);
        let g = best_gamma(&p);
        p.gamma = Gamma::Auto;
        let best = analytic(&p).unwrap();
        prop_assert_eq!(best.gamma, g);
        for gamma in 1..=16 {
            p.gamma = Gamma::Fixed(gamma);
            prop_assert!(analytic(&p).unwrap().tokens_per_s <= best.tokens_per_s * (1.0 + 1e-12));
        }
    }
}
