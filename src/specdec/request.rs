//! Request-level metrics of speculative decoding: a request of `prompt_tokens` prompt tokens and
//! `output_tokens` generated tokens per sequence pays the prompt's prefill, which speculation
//! does not speed up, before it decodes.
//!
//! ```text
//! prefill_s           = t_target(b, P, 0)                 one forward over the prompt, context 0
//! draft_prefill_s     = t_draft(b, P, 0)                  separate draft model only (own KV cache)
//! ttft_s              = prefill_s + draft_prefill_s + step_s
//! baseline_request_s  = prefill_s + M · b / baseline_tokens_per_s
//! request_s           = prefill_s + draft_prefill_s + M · b / tokens_per_s
//! request_speedup     = baseline_request_s / request_s
//! ```
//!
//! With per-sequence rates `r = tokens_per_s / b` and no draft prefill this is
//! `(P_s + M / r_ar) / (P_s + M / r_spec)`: 1 ≤ `request_speedup` ≤ `speedup` when speculation
//! helps, equal to `speedup` for an empty prompt. Published tokens/s that count the prompt
//! (LayerSkip's summarization rows, Elhoushi et al. 2024, Table 3) compare to `request_speedup`;
//! decode-only figures to `speedup`.

use super::{CostModel, Metrics, Params};
use crate::check;
use crate::error::{Error, Result};
use serde::Serialize;

/// Largest prompt or output length accepted, tokens.
pub const MAX_REQUEST_TOKENS: i64 = 100_000_000;

/// The note every row with request metrics carries.
pub const REQUEST_NOTE: &str = "request_* include the prompt's prefill, which speculation does not speed up: published tokens/s that count the prompt (e.g. LayerSkip's summarization rows) correspond to request_speedup, decode-only figures to speedup";

/// One request: prompt and output length per sequence (CLI `--prompt-tokens`,
/// `--output-tokens`), and a given prefill time for raw step costs (`--prefill-s`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    /// Prompt tokens per sequence, in [0, 10^8].
    pub prompt_tokens: u64,
    /// Generated tokens per sequence, in [1, 10^8].
    pub output_tokens: u64,
    /// Given prefill time, seconds: only with raw step costs (they have no latency model).
    pub prefill_s: Option<f64>,
}

/// Request-level metrics of one point ([module docs](self) give the formulas).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RequestMetrics {
    /// Prompt tokens per sequence.
    pub prompt_tokens: u64,
    /// Generated tokens per sequence.
    pub output_tokens: u64,
    /// Target prefill of the prompt over the whole batch, seconds.
    pub prefill_s: f64,
    /// Separate draft model's prefill of the prompt, seconds (0 for LayerSkip and raw costs).
    pub draft_prefill_s: f64,
    /// Time to first token with speculation: prefills plus the first speculation round, seconds.
    pub ttft_s: f64,
    /// End-to-end time of the request with speculative decoding, seconds.
    pub request_s: f64,
    /// End-to-end time of the request with autoregressive decoding, seconds.
    pub baseline_request_s: f64,
    /// baseline_request_s / request_s.
    pub request_speedup: f64,
    /// Which speedup a published figure corresponds to ([`REQUEST_NOTE`]).
    pub request_note: &'static str,
}

/// Request-level metrics of the point `p` whose decode metrics are `m`.
///
/// # Errors
/// `prompt_tokens` or `output_tokens` out of range; raw step costs without a given `prefill_s`,
/// or a given `prefill_s` with a latency model; a negative `prefill_s`.
pub fn request_metrics(p: &Params, m: &Metrics, r: &Request) -> Result<RequestMetrics> {
    let prompt = check::int_in(
        "prompt_tokens",
        i64::try_from(r.prompt_tokens).unwrap_or(i64::MAX),
        0,
        MAX_REQUEST_TOKENS,
    )?;
    let out = check::int_in(
        "output_tokens",
        i64::try_from(r.output_tokens).unwrap_or(i64::MAX),
        1,
        MAX_REQUEST_TOKENS,
    )?;
    let b = f64::from(m.batch);
    let (prefill_s, draft_prefill_s) = match (p.cost.prefill_s(b, prompt as f64), r.prefill_s) {
        (Some(t), None) => t,
        (None, Some(given)) => (check::non_negative("prefill_s", given)?, 0.0),
        (Some(_), Some(given)) => {
            return Err(Error::range(
                "prefill_s",
                given,
                "absent unless the step costs are given (the latency model computes the prefill)",
            ))
        }
        (None, None) => {
            return Err(Error::range(
                "prefill_s",
                "missing",
                "given (seconds, ≥ 0) with raw step costs (--cost-ratio, --draft-step-s), which have no latency model of the prompt",
            ))
        }
    };
    debug_assert!(matches!(p.cost, CostModel::Raw { .. }) || r.prefill_s.is_none());
    let tokens = out as f64 * b;
    let baseline_request_s = prefill_s + tokens / m.baseline_tokens_per_s;
    let request_s = prefill_s + draft_prefill_s + tokens / m.tokens_per_s;
    Ok(RequestMetrics {
        prompt_tokens: prompt as u64,
        output_tokens: out as u64,
        prefill_s,
        draft_prefill_s,
        ttft_s: prefill_s + draft_prefill_s + m.step_s,
        request_s,
        baseline_request_s,
        request_speedup: baseline_request_s / request_s,
        request_note: REQUEST_NOTE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::specdec::{evaluate, DraftSpec, GammaSpec, Method, Spec};
    use crate::Catalog;

    fn point(spec: &Spec) -> (Params, Metrics) {
        let cat = Catalog::embedded().unwrap();
        let p = spec.resolve(&cat).unwrap();
        let m = evaluate(&p, Method::Analytic, 0).unwrap();
        (p.params, m)
    }

    fn req(prompt: u64, out: u64, prefill_s: Option<f64>) -> Request {
        Request {
            prompt_tokens: prompt,
            output_tokens: out,
            prefill_s,
        }
    }

    /// Leviathan's setting with given step times: α = 0.7, γ = 3, c = 0.1, target 10 ms.
    fn leviathan() -> Spec {
        Spec {
            draft: DraftSpec {
                alpha: Some(0.7),
                cost_ratio: Some(0.1),
                ..DraftSpec::default()
            },
            gamma: GammaSpec::Fixed(3),
            target_step_s: Some(0.01),
            ..Spec::new()
        }
    }

    #[test]
    fn hand_worked_request_speedup_with_given_costs() {
        // By hand: E = (1 − 0.7⁴)/(1 − 0.7) = 2.533 tokens per round; a round is 3 × 1 ms + 10 ms
        // = 13 ms. 100 tokens: AR 100 × 10 ms = 1 s, speculative 100 × 13 ms / 2.533 =
        // 0.513225 s. With a 0.5 s prefill: (0.5 + 1) / (0.5 + 0.513225) = 1.480420.
        let (p, m) = point(&leviathan());
        let r = request_metrics(&p, &m, &req(2000, 100, Some(0.5))).unwrap();
        let spec_decode = 100.0 * 0.013 / 2.533;
        assert!((r.request_s - (0.5 + spec_decode)).abs() < 1e-9, "{r:?}");
        assert!((r.baseline_request_s - 1.5).abs() < 1e-9, "{r:?}");
        assert!((r.request_speedup - 1.480420).abs() < 1e-6, "{r:?}");
        assert!((r.ttft_s - 0.513).abs() < 1e-12, "{r:?}");
        assert_eq!(r.draft_prefill_s, 0.0);
        // The closed form in per-sequence rates.
        let (r_ar, r_spec) = (m.baseline_tokens_per_s, m.tokens_per_s);
        let closed = (0.5 + 100.0 / r_ar) / (0.5 + 100.0 / r_spec);
        assert!((r.request_speedup - closed).abs() < 1e-12);
        assert!(r.request_speedup < m.speedup);
    }

    #[test]
    fn raw_costs_need_a_given_prefill_and_a_model_refuses_one() {
        let (p, m) = point(&leviathan());
        let e = request_metrics(&p, &m, &req(100, 10, None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("prefill_s") && e.contains("missing"), "{e}");
        let ls = layerskip(1);
        let (p, m) = point(&ls);
        let e = request_metrics(&p, &m, &req(100, 10, Some(0.1)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("prefill_s"), "{e}");
        let e = request_metrics(&p, &m, &req(100, 0, None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("output_tokens"), "{e}");
    }

    fn layerskip(batch: u32) -> Spec {
        Spec {
            target: "llama-3.1-8b".into(),
            batch,
            draft: DraftSpec {
                exit_layer: Some(8),
                alpha: Some(0.8),
                ..DraftSpec::default()
            },
            ..Spec::new()
        }
    }

    #[test]
    fn an_empty_prompt_gives_the_decode_speedup_and_a_long_one_less() {
        let (p, m) = point(&layerskip(1));
        assert!(m.speedup > 1.2, "{}", m.speedup);
        let r0 = request_metrics(&p, &m, &req(0, 256, None)).unwrap();
        assert_eq!(r0.prefill_s, 0.0);
        assert!((r0.request_speedup - m.speedup).abs() < 1e-12 * m.speedup);
        let long = request_metrics(&p, &m, &req(4096, 256, None)).unwrap();
        assert!(long.prefill_s > 0.0);
        assert!(
            long.request_speedup > 1.0 && long.request_speedup < m.speedup - 0.01,
            "{} vs {}",
            long.request_speedup,
            m.speedup
        );
        // Longer prompts dilute the speedup further; longer outputs restore it.
        let longer = request_metrics(&p, &m, &req(16384, 256, None)).unwrap();
        assert!(longer.request_speedup < long.request_speedup);
        let more_out = request_metrics(&p, &m, &req(4096, 4096, None)).unwrap();
        assert!(more_out.request_speedup > long.request_speedup);
    }

    #[test]
    fn prefill_is_one_compute_bound_target_forward_over_the_prompt() {
        // 8B parameters × 2 FLOPs × 4096 tokens ≈ 66 TFLOP: at the H200's ~989 TFLOP/s bf16
        // peak at least 66 ms, and the model's own forward over the prompt.
        let (p, m) = point(&layerskip(1));
        let r = request_metrics(&p, &m, &req(4096, 1, None)).unwrap();
        let CostModel::EarlyExit { target, .. } = &p.cost else {
            panic!("early exit expected")
        };
        let want = target.forward_s(crate::specdec::Shape {
            batch: 1.0,
            new_tokens: 4096.0,
            context_tokens: 0.0,
        });
        assert_eq!(r.prefill_s, want);
        let floor = 2.0 * 8.0e9 * 4096.0 / 989e12;
        assert!(
            r.prefill_s > floor && r.prefill_s < 10.0 * floor,
            "{}",
            r.prefill_s
        );
        // A separate draft model prefills the prompt too.
        let mut d = layerskip(1);
        d.draft = DraftSpec {
            model: Some("llama-3.2-1b".into()),
            alpha: Some(0.8),
            ..DraftSpec::default()
        };
        let (p, m) = point(&d);
        let r = request_metrics(&p, &m, &req(4096, 1, None)).unwrap();
        assert!(r.draft_prefill_s > 0.0 && r.draft_prefill_s < r.prefill_s);
        assert!((r.ttft_s - (r.prefill_s + r.draft_prefill_s + m.step_s)).abs() < 1e-15);
    }
}
