//! Closed-form throughput of speculative decoding (Leviathan et al. 2023, Theorem 3.8 generalised
//! to per-position acceptance): tokens/s = b · E(γ) / (γ · t_draft + t_verify + t_round_extra),
//! where `t_round_extra` is a separate draft's two-token first forward ([`StepTimes::round_extra_s`]).

use super::{Gamma, Metrics, Params, StepTimes, AUTO_GAMMA_MAX};
use crate::error::Result;

/// Evaluates one point at a fixed γ (no validation; callers validate once).
pub fn at_gamma(p: &Params, gamma: u32) -> Metrics {
    let b = f64::from(p.batch);
    let t: StepTimes = p.cost.step_times(b, gamma, p.context_tokens);
    let e = p.acceptance.expected_tokens(gamma);
    let step_s = t.round_s(gamma);
    let tokens_per_s = b * e / step_s;
    let baseline = b / t.baseline_step_s;
    Metrics {
        target: p.target_name.clone(),
        draft: p.draft_name.clone(),
        method: "analytic",
        gamma,
        alpha: p.acceptance.alpha(),
        acceptance_rate: p.acceptance.marginal_rate(gamma),
        batch: p.batch,
        tp: p.cost.tp(),
        context_tokens: p.context_tokens,
        expected_tokens_per_step: e,
        draft_step_s: t.draft_step_s,
        verify_step_s: t.verify_step_s,
        step_s,
        tokens_per_s,
        baseline_tokens_per_s: baseline,
        speedup: tokens_per_s / baseline,
        memory_bytes: p.memory_bytes(),
        fits_memory: p.fits_memory(),
        p50_token_latency_s: None,
        p90_token_latency_s: None,
        p99_token_latency_s: None,
        seed: None,
        gpu: p.platform.gpu.clone(),
        stack: p.platform.stack.clone(),
        latency_model: p.platform.latency_model.clone(),
    }
}

/// The γ in 1..=min(16, curve length) with the highest tokens/s (ties go to the smaller γ).
pub fn best_gamma(p: &Params) -> u32 {
    let hi = AUTO_GAMMA_MAX.min(p.acceptance.max_gamma());
    let mut best = (1, f64::NEG_INFINITY);
    for g in 1..=hi {
        let tps = at_gamma(p, g).tokens_per_s;
        if tps > best.1 * (1.0 + 1e-12) {
            best = (g, tps);
        }
    }
    best.0
}

/// Analytic prediction for `p` (resolving `Gamma::Auto`).
///
/// # Errors
/// Invalid parameters (see [`Params::validate`]).
pub fn analytic(p: &Params) -> Result<Metrics> {
    p.validate()?;
    let g = match p.gamma {
        Gamma::Fixed(g) => g,
        Gamma::Auto => best_gamma(p),
    };
    Ok(at_gamma(p, g))
}

/// Ranks several drafters (one `Params` each): analytic predictions, those that fit in GPU
/// memory first, each group sorted by tokens/s, best first ([`super::rank_order`]).
///
/// # Errors
/// The first invalid `Params`.
pub fn rank(ps: &[Params]) -> Result<Vec<Metrics>> {
    let mut out = ps.iter().map(analytic).collect::<Result<Vec<_>>>()?;
    out.sort_by(super::rank_order);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::specdec::{Acceptance, CostModel};

    fn raw(alpha: f64, gamma: Gamma, c: f64) -> Params {
        Params {
            draft_name: "raw".into(),
            target_name: "raw".into(),
            acceptance: Acceptance::iid(alpha).unwrap(),
            gamma,
            batch: 1,
            context_tokens: 0.0,
            cost: CostModel::from_cost_ratio(c, 0.02).unwrap(),
            gpu_memory_bytes: None,
            platform: crate::specdec::Platform::default(),
        }
    }

    #[test]
    fn leviathan_speedup_example() {
        // (1 − 0.7⁴)/((1 − 0.7)(3·0.1 + 1)) = 0.7599/0.39 = 1.948461538...; tolerance 1e-9.
        let m = analytic(&raw(0.7, Gamma::Fixed(3), 0.1)).unwrap();
        assert!((m.speedup - 0.7599 / 0.39).abs() < 1e-9, "{}", m.speedup);
        assert!((m.step_s - 0.02 * 1.3).abs() < 1e-15);
    }

    #[test]
    fn a_separate_draft_pays_a_two_token_first_forward_per_round() {
        use crate::specdec::{ForwardModel, HwRates, Shape};
        let cat = crate::Catalog::embedded().unwrap();
        let gpu = cat.gpu("h200").unwrap();
        let fm = |n: &str| {
            ForwardModel::new(
                cat.llm(n).unwrap().clone(),
                HwRates::bf16(gpu, &gpu.latency),
                None,
            )
            .unwrap()
        };
        let (t, d) = (fm("llama-3.1-8b"), fm("llama-3.2-1b"));
        let shape = |n: f64| Shape {
            batch: 4.0,
            new_tokens: n,
            context_tokens: 512.0,
        };
        let mut p = raw(0.7, Gamma::Fixed(4), 0.1);
        p.batch = 4;
        p.context_tokens = 512.0;
        p.cost = CostModel::DraftModel {
            target: t.clone(),
            draft: d.clone(),
        };
        let m = at_gamma(&p, 4);
        // Round = 3 one-token draft forwards + one two-token draft forward + verify(5 tokens).
        let want =
            3.0 * d.forward_s(shape(1.0)) + d.forward_s(shape(2.0)) + t.forward_s(shape(5.0));
        assert!(
            (m.step_s - want).abs() <= 1e-12 * want,
            "{} vs {want}",
            m.step_s
        );
        assert!(d.forward_s(shape(2.0)) > d.forward_s(shape(1.0)));
    }

    #[test]
    fn auto_gamma_is_the_argmax() {
        let p = raw(0.8, Gamma::Auto, 0.05);
        let best = analytic(&p).unwrap();
        for g in 1..=16 {
            assert!(at_gamma(&p, g).tokens_per_s <= best.tokens_per_s + 1e-9);
        }
        // Leviathan et al. Table/Figure 3 region: α = 0.8, c = 0.05 → optimal γ is 7 or 8 with
        // speedup ≈ 3.2 (hand-worked: γ = 7 gives (1 − 0.8⁸)/(0.2 · 1.35) = 3.1930).
        assert!((6..=9).contains(&best.gamma), "{}", best.gamma);
    }

    #[test]
    fn zero_acceptance_never_beats_baseline() {
        let m = analytic(&raw(0.0, Gamma::Fixed(4), 0.1)).unwrap();
        assert!(m.speedup < 1.0);
        assert!((m.speedup - 1.0 / 1.4).abs() < 1e-12);
    }

    #[test]
    fn rank_orders_by_tokens_per_s() {
        let ps = vec![
            raw(0.5, Gamma::Fixed(3), 0.1),
            raw(0.9, Gamma::Fixed(3), 0.1),
            raw(0.7, Gamma::Fixed(3), 0.1),
        ];
        let r = rank(&ps).unwrap();
        assert!(r.windows(2).all(|w| w[0].tokens_per_s >= w[1].tokens_per_s));
        assert_eq!(r[0].alpha, Some(0.9));
    }

    #[test]
    fn a_point_that_does_not_fit_is_never_ranked_above_one_that_does() {
        // Llama-3.1-8B target on a GPU of 20 GB: the faster draft (3B, α 0.95) needs 22.4 GB with
        // the target, the slower one (1B, α 0.3) 18.5 GB.
        let cat = crate::Catalog::embedded().unwrap();
        let gpu = cat.gpu("h200").unwrap();
        let fm = |n: &str| {
            crate::specdec::ForwardModel::new(
                cat.llm(n).unwrap().clone(),
                crate::specdec::HwRates::bf16(gpu, &gpu.latency),
                None,
            )
            .unwrap()
        };
        let with = |alpha: f64, draft: &str, gpu_bytes: f64| Params {
            cost: CostModel::DraftModel {
                target: fm("llama-3.1-8b"),
                draft: fm(draft),
            },
            gpu_memory_bytes: Some(gpu_bytes),
            ..raw(alpha, Gamma::Fixed(3), 0.1)
        };
        let big = with(0.95, "llama-3.2-3b", 20e9);
        let small = with(0.3, "llama-3.2-1b", 20e9);
        assert_eq!(big.fits_memory(), Some(false));
        assert_eq!(small.fits_memory(), Some(true));
        assert!(analytic(&big).unwrap().tokens_per_s > analytic(&small).unwrap().tokens_per_s);
        let r = rank(&[big, small]).unwrap();
        assert_eq!(r[0].fits_memory, Some(true));
        assert_eq!(r[0].alpha, Some(0.3));
    }
}
