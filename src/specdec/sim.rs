//! Monte-Carlo simulation of speculative decoding over a batch of sequences.
//!
//! Every speculation step, each sequence of the batch draws how many of its γ drafted tokens the
//! target accepts (one Bernoulli per position from the acceptance model, until the first
//! rejection) and emits accepted + 1 tokens. The step's time comes from the cost model at the
//! batch's current mean context, and each sequence's context grows by the tokens it emitted. A
//! sequence that has emitted `gen_tokens` is replaced by a new request (continuous batching), whose
//! context starts at `context_tokens − gen_tokens/2`, so the long-run mean context equals the
//! analytic model's `context_tokens`. Per-token latency is a sequence's step time divided by the
//! tokens it emitted in that step.
//!
//! Guarantee: under i.i.d. acceptance and a context-independent cost, the mean tokens/s converges
//! to the analytic b·E/step_s (tested to within 1%). All draws come from one
//! `Xoshiro256PlusPlus` seeded with `seed`, so a run is bit-for-bit reproducible.

use super::{analytic, Gamma, Metrics, Params};
use crate::error::{Error, Result};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Simulation settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    /// Speculation steps to simulate (each advances every sequence of the batch).
    pub steps: u64,
    /// Tokens a request generates before it is replaced.
    pub gen_tokens: u32,
    /// Seed of the random draws.
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            steps: 20_000,
            gen_tokens: 256,
            seed: 0x5eed,
        }
    }
}

/// Simulates `p` (γ = auto resolves to the analytic optimum first).
///
/// # Errors
/// Invalid parameters, or `steps` = 0 / `gen_tokens` = 0.
pub fn simulate(p: &Params, cfg: SimConfig) -> Result<Metrics> {
    p.validate()?;
    if cfg.steps == 0 {
        return Err(Error::range("steps", 0, "an integer >= 1"));
    }
    if cfg.gen_tokens == 0 {
        return Err(Error::range("gen_tokens", 0, "an integer >= 1"));
    }
    let gamma = match p.gamma {
        Gamma::Fixed(g) => g,
        Gamma::Auto => analytic::best_gamma(p),
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let b = p.batch as usize;
    let gen = f64::from(cfg.gen_tokens);
    let start_ctx = (p.context_tokens - gen / 2.0).max(0.0);
    // Stagger the requests so the batch starts in its steady state.
    let mut emitted: Vec<u32> = (0..b)
        .map(|i| (i as u64 * u64::from(cfg.gen_tokens) / b as u64) as u32)
        .collect();
    let mut ctx: Vec<f64> = emitted.iter().map(|&e| start_ctx + f64::from(e)).collect();
    let mut ctx_sum: f64 = ctx.iter().sum();

    let mut latencies: Vec<f32> =
        Vec::with_capacity((cfg.steps as usize).saturating_mul(b).min(1 << 24));
    let mut weights_tokens: Vec<u8> = Vec::with_capacity(latencies.capacity());
    let mut total_time = 0.0;
    let mut total_tokens = 0u64;
    let mut total_steps_seq = 0u64;
    let mut draft_sum = 0.0;
    let mut verify_sum = 0.0;
    let mut baseline_time = 0.0;
    for _ in 0..cfg.steps {
        let mean_ctx = ctx_sum / b as f64;
        let t = p.cost.step_times(b as f64, gamma, mean_ctx);
        let step_s = t.round_s(gamma);
        total_time += step_s;
        draft_sum += t.draft_step_s;
        verify_sum += t.verify_step_s;
        baseline_time += t.baseline_step_s;
        for i in 0..b {
            let k = p.acceptance.sample_accepted(&mut rng, gamma) + 1;
            total_tokens += u64::from(k);
            total_steps_seq += 1;
            if latencies.len() < latencies.capacity() {
                latencies.push((step_s / f64::from(k)) as f32);
                weights_tokens.push(k as u8);
            }
            emitted[i] += k;
            if emitted[i] >= cfg.gen_tokens {
                ctx_sum += start_ctx - ctx[i];
                ctx[i] = start_ctx;
                emitted[i] = 0;
            } else {
                ctx[i] += f64::from(k);
                ctx_sum += f64::from(k);
            }
        }
    }
    let steps = cfg.steps as f64;
    let tokens_per_s = total_tokens as f64 / total_time;
    // Baseline: one token per sequence per target forward, at the same contexts.
    let baseline_tokens_per_s = b as f64 * steps / baseline_time;
    let (p50, p90, p99) = weighted_percentiles(&latencies, &weights_tokens);
    let mut m = analytic::at_gamma(p, gamma);
    m.method = "sim";
    m.expected_tokens_per_step = total_tokens as f64 / total_steps_seq as f64;
    m.draft_step_s = draft_sum / steps;
    m.verify_step_s = verify_sum / steps;
    m.step_s = total_time / steps;
    m.tokens_per_s = tokens_per_s;
    m.baseline_tokens_per_s = baseline_tokens_per_s;
    m.speedup = tokens_per_s / baseline_tokens_per_s;
    m.p50_token_latency_s = Some(p50);
    m.p90_token_latency_s = Some(p90);
    m.p99_token_latency_s = Some(p99);
    m.seed = Some(cfg.seed);
    Ok(m)
}

/// Percentiles (50, 90, 99) of per-token latency where each entry stands for `w` tokens.
fn weighted_percentiles(v: &[f32], w: &[u8]) -> (f64, f64, f64) {
    let mut idx: Vec<(f32, u8)> = v.iter().copied().zip(w.iter().copied()).collect();
    idx.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = idx.iter().map(|x| u64::from(x.1)).sum();
    let q = |frac: f64| -> f64 {
        let target = (frac * total as f64).ceil().max(1.0) as u64;
        let mut acc = 0u64;
        for (val, wt) in &idx {
            acc += u64::from(*wt);
            if acc >= target {
                return f64::from(*val);
            }
        }
        idx.last().map(|x| f64::from(x.0)).unwrap_or(0.0)
    };
    (q(0.5), q(0.9), q(0.99))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::specdec::{Acceptance, CostModel, ForwardModel, HwRates};

    fn params(alpha: f64, gamma: u32, batch: u32, cost: CostModel, ctx: f64) -> Params {
        Params {
            draft_name: "d".into(),
            target_name: "t".into(),
            acceptance: Acceptance::iid(alpha).unwrap(),
            gamma: Gamma::Fixed(gamma),
            batch,
            context_tokens: ctx,
            cost,
            gpu_memory_bytes: None,
            platform: crate::specdec::Platform::default(),
        }
    }

    #[test]
    fn agrees_with_analytic_under_iid_raw_costs() {
        for (alpha, gamma) in [(0.6, 2), (0.8, 5), (0.9, 8)] {
            let p = params(
                alpha,
                gamma,
                4,
                CostModel::from_cost_ratio(0.1, 0.01).unwrap(),
                512.0,
            );
            let a = analytic::analytic(&p).unwrap();
            let s = simulate(
                &p,
                SimConfig {
                    steps: 50_000,
                    gen_tokens: 128,
                    seed: 1,
                },
            )
            .unwrap();
            let err = (s.tokens_per_s - a.tokens_per_s).abs() / a.tokens_per_s;
            assert!(
                err < 0.01,
                "α={alpha} γ={gamma}: sim {} vs analytic {} ({:.3}%, tolerance 1%)",
                s.tokens_per_s,
                a.tokens_per_s,
                err * 100.0
            );
        }
    }

    #[test]
    fn agrees_with_analytic_with_context_growth() {
        let c = Catalog::embedded().unwrap();
        let gpu = c.gpu("h200").unwrap();
        let hw = HwRates::bf16(gpu, &gpu.latency);
        let target = ForwardModel::new(c.llm("llama-2-13b").unwrap().clone(), hw, None).unwrap();
        let draft = ForwardModel::new(c.llm("tinyllama-1.1b").unwrap().clone(), hw, None).unwrap();
        let p = params(0.75, 4, 8, CostModel::DraftModel { target, draft }, 2048.0);
        let a = analytic::analytic(&p).unwrap();
        let s = simulate(
            &p,
            SimConfig {
                steps: 20_000,
                gen_tokens: 512,
                seed: 3,
            },
        )
        .unwrap();
        let err = (s.tokens_per_s - a.tokens_per_s).abs() / a.tokens_per_s;
        assert!(
            err < 0.01,
            "sim {} vs analytic {} ({:.3}%, tolerance 1%)",
            s.tokens_per_s,
            a.tokens_per_s,
            err * 100.0
        );
        let p50 = s.p50_token_latency_s.unwrap();
        let p99 = s.p99_token_latency_s.unwrap();
        assert!(p50 <= s.p90_token_latency_s.unwrap() && s.p90_token_latency_s.unwrap() <= p99);
    }

    #[test]
    fn same_seed_same_result_other_seed_differs() {
        let p = params(
            0.7,
            3,
            2,
            CostModel::from_cost_ratio(0.1, 0.01).unwrap(),
            100.0,
        );
        let cfg = SimConfig {
            steps: 1000,
            gen_tokens: 64,
            seed: 9,
        };
        assert_eq!(simulate(&p, cfg).unwrap(), simulate(&p, cfg).unwrap());
        let other = simulate(&p, SimConfig { seed: 10, ..cfg }).unwrap();
        assert_ne!(other.tokens_per_s, simulate(&p, cfg).unwrap().tokens_per_s);
    }

    #[test]
    fn weighted_percentiles_hand_values() {
        // Values 1 (×1 token), 2 (×8 tokens), 10 (×1 token): P50 = 2, P90 = 2, P99 = 10.
        let (a, b, c) = weighted_percentiles(&[10.0, 1.0, 2.0], &[1, 1, 8]);
        assert_eq!((a, b, c), (2.0, 2.0, 10.0));
    }
}
