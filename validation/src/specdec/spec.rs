//! Autoregressive and speculative decoding (Leviathan, Kalman & Matias 2023; Chen et al. 2023)
//! over the preallocated caches of [`super::model`], with per-sequence acceptance at batch > 1.
//!
//! State per sequence `b`: `len[b]` tokens are in the target's KV cache (positions
//! `0..len[b]`), `last[b]` is the newest emitted token (not yet in the cache, position
//! `len[b]`) and `prev[b]` the token at position `len[b] − 1`.
//!
//! One speculative round with a separate draft model:
//! 1. the draft reads `[prev, last]` at positions `len−1, len` (two tokens, so a sequence whose
//!    previous round accepted every drafted token gets the K/V of its last drafted token written;
//!    for the others it rewrites an identical entry), then drafts `d1..dγ` one token at a time;
//! 2. the target verifies `[last, d1..dγ]` at positions `len..len+γ` in one forward;
//! 3. acceptance per sequence gives `n ∈ 0..=γ`; the sequence emits `d1..dn` and one target
//!    token, and `len += n + 1`. That is the whole rollback of both caches: slots past `len` are
//!    masked and later overwritten (see [`super::model`]).
//!
//! The only host synchronization inside a round is the copy of the drafted and target tokens
//! needed for acceptance (sampling mode also copies the draft's distributions each draft step).
//! Sequences that have emitted their quota stop advancing (their `len` stays) but still ride
//! along in the batched forwards, as in static batching.
//!
//! LayerSkip self-speculation (Elhoushi et al. 2024): the draft is the target's first `E` layers,
//! its final norm and its LM head, sharing the target's cache for layers `< E`; verification runs the
//! first `E` layers only for `dγ` (the one drafted token the draft has not processed) and layers
//! `E..L` for all γ+1 positions, reusing the drafted exit-layer hidden states.

use candle_core::{DType, Result, Tensor};
use rand::RngExt;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::graph::Runner;
use super::model::{argmax, Head, KvCache, Model, Part, Step};

/// How drafted tokens are accepted.
pub enum Accept {
    /// Accept `d_j` iff it equals the target's argmax at that position; emit the target's argmax.
    Greedy,
    /// Cost-model runs: accept `d_j` (given `d_1..d_{j−1}` accepted) with probability
    /// `probs[j−1]`, drawn from a seeded generator; the emitted correction is the target's argmax.
    Synthetic {
        /// Per-position conditional acceptance probabilities (length ≥ γ).
        probs: Vec<f64>,
        /// Seeded generator.
        rng: Xoshiro256PlusPlus,
    },
    /// Speculative sampling at temperature 1: accept with probability `min(1, p(d)/q(d))`, on
    /// rejection sample from `norm(max(0, p − q))`, after full acceptance sample from `p`.
    Sample {
        /// Seeded generator.
        rng: Xoshiro256PlusPlus,
    },
}

impl Accept {
    /// Synthetic acceptance with a seed.
    pub fn synthetic(probs: Vec<f64>, seed: u64) -> Accept {
        Accept::Synthetic {
            probs,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }
    /// Sampling with a seed.
    pub fn sample(seed: u64) -> Accept {
        Accept::Sample {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }
    fn samples(&self) -> bool {
        matches!(self, Accept::Sample { .. })
    }
}

/// The draft of a speculative run.
pub enum Draft<'a> {
    /// A separate model with its own cache.
    Model(&'a Model, &'a KvCache),
    /// The target's first `exit` layers + LM head (LayerSkip).
    LayerSkip {
        /// Exit layer E.
        exit: usize,
    },
}

/// Decoding state of a batch (see the module docs).
#[derive(Clone, Debug)]
pub struct State {
    /// Tokens in the target cache per sequence.
    pub len: Vec<usize>,
    /// Newest emitted token per sequence (position `len`).
    pub last: Vec<u32>,
    /// Token at position `len − 1`.
    pub prev: Vec<u32>,
}

/// Output of a decoding run.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// Tokens emitted per sequence after the start state's `last` (exactly `n` each).
    pub tokens: Vec<Vec<u32>>,
    /// Accepted drafted tokens per (sequence, round) while the sequence was active.
    pub accepted: Vec<usize>,
    /// Speculative rounds run (0 for autoregressive): the batch runs until its slowest
    /// sequence has `n` tokens.
    pub rounds: usize,
    /// Per sequence, the round in which it reached `n` tokens (empty for autoregressive).
    pub seq_rounds: Vec<usize>,
}

/// Prefills `model`'s cache with `prompt` (`[B, P]` u32, positions `0..P`) in chunks of at most
/// `chunk` tokens; returns the last position's logits `[B, vocab]`.
pub fn prefill(model: &Model, cache: &KvCache, prompt: &Tensor, chunk: usize) -> Result<Tensor> {
    let (b, p) = prompt.dims2()?;
    let mut start = 0;
    let mut last = None;
    while start < p {
        let n = chunk.min(p - start);
        let step = Step::new(model, &vec![start; b], n, cache.capacity)?;
        last = Some(model.forward_last(&prompt.narrow(1, start, n)?, cache, &step)?);
        start += n;
    }
    last.ok_or_else(|| candle_core::Error::Msg("empty prompt".into()))
}

/// Prefills the target (and a separate draft) with `prompt` and returns the start state: the
/// first emitted token is the target's greedy choice after the prompt.
pub fn start(
    target: &Model,
    tcache: &KvCache,
    draft: Option<(&Model, &KvCache)>,
    prompt: &Tensor,
) -> Result<State> {
    let (b, p) = prompt.dims2()?;
    let logits = prefill(target, tcache, prompt, 256)?;
    if let Some((d, dc)) = draft {
        prefill(d, dc, prompt, 256)?;
    }
    let last = argmax(&logits)?.to_vec1::<u32>()?;
    let prev = prompt.narrow(1, p - 1, 1)?.reshape(b)?.to_vec1::<u32>()?;
    Ok(State {
        len: vec![p; b],
        last,
        prev,
    })
}

/// Greedy autoregressive decoding of `n` tokens per sequence: one forward per token, the argmax
/// stays on the device and feeds the next step; the host reads the tokens once at the end.
pub fn autoregressive(
    rt: &Runner,
    target: &Model,
    cache: &KvCache,
    st: &State,
    n: usize,
) -> Result<Output> {
    let b = st.len.len();
    let dev = target.device();
    let mut cur = Tensor::from_vec(st.last.clone(), (b, 1), dev)?;
    let mut toks = Vec::with_capacity(n);
    for s in 0..n {
        let pos: Vec<usize> = st.len.iter().map(|l| l + s).collect();
        // Greedy sampling inside the forward's graph.
        cur = target
            .run_tokens(rt, &cur, cache, &pos, Head::All, true)?
            .reshape((b, 1))?;
        toks.push(cur.clone());
    }
    let all = Tensor::cat(&toks, 1)?.to_vec2::<u32>()?;
    Ok(Output {
        tokens: all,
        accepted: Vec::new(),
        rounds: 0,
        seq_rounds: Vec::new(),
    })
}

/// Softmax of logits rows `[N, V]` to host f32 rows.
fn probs_host(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    candle_nn::ops::softmax_last_dim(&logits.to_dtype(DType::F32)?)?.to_vec2::<f32>()
}

fn sample_from(p: &[f32], rng: &mut Xoshiro256PlusPlus) -> u32 {
    let total: f64 = p.iter().map(|&x| f64::from(x)).sum();
    let mut r = rng.random::<f64>() * total;
    for (i, &x) in p.iter().enumerate() {
        r -= f64::from(x);
        if r <= 0.0 {
            return i as u32;
        }
    }
    (p.len() - 1) as u32
}

/// Accepted count and emitted correction/bonus token for one sequence by the speculative sampling
/// rule: `p[j]` target distribution at verify position j (0..=γ), `q[j]` draft distribution that
/// produced `d[j]` (0..γ).
pub fn speculative_sampling_accept(
    d: &[u32],
    p: &[Vec<f32>],
    q: &[Vec<f32>],
    rng: &mut Xoshiro256PlusPlus,
) -> (usize, u32) {
    for (j, &tok) in d.iter().enumerate() {
        let (pj, qj) = (p[j][tok as usize], q[j][tok as usize]);
        let r = rng.random::<f64>();
        if qj <= 0.0 || r >= (f64::from(pj) / f64::from(qj)).min(1.0) {
            let resid: Vec<f32> = p[j]
                .iter()
                .zip(&q[j])
                .map(|(a, b)| (a - b).max(0.0))
                .collect();
            let tok = if resid.iter().any(|&x| x > 0.0) {
                sample_from(&resid, rng)
            } else {
                sample_from(&p[j], rng)
            };
            return (j, tok);
        }
    }
    (d.len(), sample_from(&p[d.len()], rng))
}

/// Speculative decoding of `n` tokens per sequence with `gamma` drafted tokens per round.
#[allow(clippy::too_many_arguments)]
pub fn speculative(
    rt: &Runner,
    target: &Model,
    tcache: &KvCache,
    draft: &Draft,
    gamma: usize,
    st0: &State,
    n: usize,
    accept: &mut Accept,
) -> Result<Output> {
    if gamma == 0 {
        candle_core::bail!("gamma must be >= 1")
    }
    let b = st0.len.len();
    let dev = target.device();
    let mut st = st0.clone();
    let mut out = Output {
        tokens: vec![Vec::with_capacity(n + gamma + 1); b],
        seq_rounds: vec![0; b],
        ..Default::default()
    };
    let sampling = accept.samples();
    let mut sample_rng = Xoshiro256PlusPlus::seed_from_u64(0x5eed);
    // Greedy and synthetic runs take the draft's argmax inside its forward's graph (`out` is
    // then `[b]` u32 tokens); the sampling rule needs the logits on the host.
    let greedy = !sampling;
    let pick = |out: &Tensor,
                rng: &mut Xoshiro256PlusPlus,
                qs: &mut Vec<Vec<Vec<f32>>>|
     -> Result<Tensor> {
        if sampling {
            let q = probs_host(out)?;
            let toks: Vec<u32> = q.iter().map(|row| sample_from(row, rng)).collect();
            qs.push(q);
            Tensor::from_vec(toks, (out.dim(0)?, 1), out.device())
        } else {
            out.reshape((out.dim(0)?, 1))
        }
    };
    while out.tokens.iter().any(|t| t.len() < n) {
        out.rounds += 1;
        let active: Vec<bool> = out.tokens.iter().map(|t| t.len() < n).collect();
        let last_t = Tensor::from_vec(st.last.clone(), (b, 1), dev)?;
        let mut drafts: Vec<Tensor> = Vec::with_capacity(gamma);
        let mut qs: Vec<Vec<Vec<f32>>> = Vec::new(); // [step][seq][vocab]
        let logits = match draft {
            Draft::Model(dm, dc) => {
                let inp: Vec<u32> = st
                    .prev
                    .iter()
                    .zip(&st.last)
                    .flat_map(|(&p, &l)| [p, l])
                    .collect();
                let inp = Tensor::from_vec(inp, (b, 2), dev)?;
                let pos: Vec<usize> = st.len.iter().map(|l| l - 1).collect();
                let mut lg = dm.run_tokens(rt, &inp, dc, &pos, Head::Last, greedy)?;
                for i in 1..=gamma {
                    let d = pick(&lg, &mut sample_rng, &mut qs)?;
                    drafts.push(d.clone());
                    if i < gamma {
                        let pos: Vec<usize> = st.len.iter().map(|l| l + i).collect();
                        lg = dm.run_tokens(rt, &d, dc, &pos, Head::Last, greedy)?;
                    }
                }
                let inp = Tensor::cat(
                    &[std::slice::from_ref(&last_t), drafts.as_slice()].concat(),
                    1,
                )?;
                target.run_tokens(rt, &inp, tcache, &st.len, Head::All, greedy)?
            }
            Draft::LayerSkip { exit } => {
                let e = *exit;
                let mut hs = Vec::with_capacity(gamma + 1);
                let mut cur = last_t.clone();
                for i in 0..=gamma {
                    let pos: Vec<usize> = st.len.iter().map(|l| l + i).collect();
                    let part = Part {
                        from_tokens: true,
                        layers: 0..e,
                        head: if i < gamma { Head::All } else { Head::None },
                        hidden: true,
                        argmax: greedy,
                    };
                    let mut o = target
                        .run_part(rt, &cur, tcache, &pos, 1, &part)?
                        .into_iter();
                    let h = o.next().ok_or_else(|| {
                        candle_core::Error::Msg("draft part: no hidden rows".into())
                    })?;
                    hs.push(h);
                    if let Some(lg) = o.next() {
                        cur = pick(&lg, &mut sample_rng, &mut qs)?;
                        drafts.push(cur.clone());
                    }
                }
                let hd = target.cfg.hidden;
                let h = Tensor::stack(&hs, 1)?.reshape((b * (gamma + 1), hd))?;
                let part = Part {
                    from_tokens: false,
                    layers: e..target.cfg.layers,
                    head: Head::All,
                    hidden: false,
                    argmax: greedy,
                };
                let mut o = target.run_part(rt, &h, tcache, &st.len, gamma + 1, &part)?;
                o.pop()
                    .ok_or_else(|| candle_core::Error::Msg("verify part: no logits".into()))?
            }
        };
        // One host synchronization: drafted tokens and target choices (or distributions).
        let (dr, ys, ps) = if sampling {
            let dr = Tensor::cat(&drafts, 1)?.to_vec2::<u32>()?;
            let p = probs_host(&logits)?; // [(b, j)][vocab]
            (dr, Vec::new(), p)
        } else {
            let both = Tensor::cat(
                &[Tensor::cat(&drafts, 1)?, logits.reshape((b, gamma + 1))?],
                1,
            )?
            .to_vec2::<u32>()?;
            let dr: Vec<Vec<u32>> = both.iter().map(|r| r[..gamma].to_vec()).collect();
            let ys: Vec<Vec<u32>> = both.iter().map(|r| r[gamma..].to_vec()).collect();
            (dr, ys, Vec::new())
        };
        for s in 0..b {
            if !active[s] {
                continue;
            }
            let d = &dr[s];
            let (nacc, fix) = match accept {
                Accept::Greedy => {
                    let y = &ys[s];
                    let k = (0..gamma).take_while(|&j| d[j] == y[j]).count();
                    (k, y[k])
                }
                Accept::Synthetic { probs, rng } => {
                    let y = &ys[s];
                    let mut k = 0;
                    while k < gamma && rng.random::<f64>() < probs[k.min(probs.len() - 1)] {
                        k += 1;
                    }
                    (k, y[k])
                }
                Accept::Sample { rng } => {
                    let p: Vec<Vec<f32>> = (0..=gamma)
                        .map(|j| ps[s * (gamma + 1) + j].clone())
                        .collect();
                    let q: Vec<Vec<f32>> = (0..gamma).map(|j| qs[j][s].clone()).collect();
                    speculative_sampling_accept(d, &p, &q, rng)
                }
            };
            out.accepted.push(nacc);
            let toks = &mut out.tokens[s];
            toks.extend_from_slice(&d[..nacc]);
            toks.push(fix);
            st.prev[s] = if nacc > 0 { d[nacc - 1] } else { st.last[s] };
            st.last[s] = fix;
            st.len[s] += nacc + 1;
            if toks.len() >= n && out.seq_rounds[s] == 0 {
                out.seq_rounds[s] = out.rounds;
            }
        }
    }
    for t in &mut out.tokens {
        t.truncate(n);
    }
    Ok(out)
}

/// Cache slots per sequence a run of `n` new tokens after a `p`-token prompt needs at draft
/// length `gamma`: a sequence may finish up to γ tokens past `n` and still ride along in the
/// batch, verifying γ+1 more positions (`p + n + 2γ + 2`, with one slot of margin).
pub fn capacity_needed(p: usize, n: usize, gamma: usize) -> usize {
    p + n + 2 * gamma + 2
}

/// Survival curve from accepted counts: `s[i−1]` = fraction of (sequence, round) pairs with at
/// least `i` drafted tokens accepted, for i in 1..=gamma.
pub fn survival(accepted: &[usize], gamma: usize) -> Vec<f64> {
    let n = accepted.len().max(1) as f64;
    (1..=gamma)
        .map(|i| accepted.iter().filter(|&&a| a >= i).count() as f64 / n)
        .collect()
}

/// Tokens `[B, P]` drawn uniformly from `0..vocab` with a seeded generator.
pub fn random_prompt(
    b: usize,
    p: usize,
    vocab: usize,
    seed: u64,
    dev: &candle_core::Device,
) -> Result<Tensor> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let v: Vec<u32> = (0..b * p)
        .map(|_| rng.random_range(0..vocab as u32))
        .collect();
    Tensor::from_vec(v, (b, p), dev)
}

/// Index of the first position where two token lists differ (their common length if none).
pub fn first_divergence(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::specdec::model::preset;
    use candle_core::Device;

    fn pair(dt: DType) -> (Model, Model) {
        let dev = Device::Cpu;
        let t = Model::random(&preset("val-tiny-t").unwrap(), dt, &dev, 11).unwrap();
        let d = Model::random(&preset("val-tiny-d").unwrap(), dt, &dev, 12).unwrap();
        (t, d)
    }

    /// Greedy speculative decoding emits exactly the target's greedy tokens, for γ ∈ {1, 3, 8}, at
    /// batch 3 with per-sequence acceptance (f32; exact token equality).
    #[test]
    fn greedy_speculative_equals_target_greedy() {
        let (t, d) = pair(DType::F32);
        let dev = Device::Cpu;
        let rt = Runner::eager(&dev);
        let (b, p, n) = (3, 5, 16);
        let prompt = random_prompt(b, p, 97, 3, &dev).unwrap();
        let cap = capacity_needed(p, n, 8);
        let tc = KvCache::new(&t.cfg, b, cap, DType::F32, &dev).unwrap();
        let dc = KvCache::new(&d.cfg, b, cap, DType::F32, &dev).unwrap();
        let st = start(&t, &tc, Some((&d, &dc)), &prompt).unwrap();
        let ar = autoregressive(&rt, &t, &tc, &st, n).unwrap();
        // Attending bucketed slot ranges (what the CUDA-graph runner does) must change nothing:
        // the extra slots are masked.
        let bucketed = Runner::new(crate::specdec::graph::Exec::Graphs, &dev, 8);
        let greedy = |rt: &Runner, draft: &Draft, gamma: usize| {
            speculative(rt, &t, &tc, draft, gamma, &st, n, &mut Accept::Greedy).unwrap()
        };
        for gamma in [1, 3, 8] {
            let sp = greedy(&rt, &Draft::Model(&d, &dc), gamma);
            assert_eq!(sp.tokens, ar.tokens, "gamma {gamma}");
            assert!(sp.accepted.iter().all(|&a| a <= gamma));
            let ls = greedy(&rt, &Draft::LayerSkip { exit: 2 }, gamma);
            assert_eq!(ls.tokens, ar.tokens, "layerskip gamma {gamma}");
            let sb = greedy(&bucketed, &Draft::Model(&d, &dc), gamma);
            assert_eq!(sb.tokens, ar.tokens, "bucketed gamma {gamma}");
            // The batch runs until its slowest sequence is done.
            assert_eq!(sb.seq_rounds.iter().max(), Some(&sb.rounds));
            assert!(sb.seq_rounds.iter().all(|&r| r >= 1));
        }
        // Rollback really happens: a random tiny draft disagrees often, so some rounds reject.
        let sp = speculative(
            &rt,
            &t,
            &tc,
            &Draft::Model(&d, &dc),
            4,
            &st,
            n,
            &mut Accept::Greedy,
        )
        .unwrap();
        assert!(sp.accepted.iter().any(|&a| a < 4));
    }

    /// A draft identical to the target is always accepted in full: rounds = ceil(n / (γ+1)).
    #[test]
    fn self_draft_accepts_everything() {
        let (t, _) = pair(DType::F32);
        let dev = Device::Cpu;
        let rt = Runner::eager(&dev);
        let (b, p, n, gamma) = (2, 4, 15, 4);
        let prompt = random_prompt(b, p, 97, 5, &dev).unwrap();
        let tc = KvCache::new(&t.cfg, b, 40, DType::F32, &dev).unwrap();
        let dc = KvCache::new(&t.cfg, b, 40, DType::F32, &dev).unwrap();
        let st = start(&t, &tc, Some((&t, &dc)), &prompt).unwrap();
        let sp = speculative(
            &rt,
            &t,
            &tc,
            &Draft::Model(&t, &dc),
            gamma,
            &st,
            n,
            &mut Accept::Greedy,
        )
        .unwrap();
        assert!(sp.accepted.iter().all(|&a| a == gamma));
        assert_eq!(sp.rounds, n.div_ceil(gamma + 1));
        // LayerSkip with E = L is the target itself.
        let ls = speculative(
            &rt,
            &t,
            &tc,
            &Draft::LayerSkip { exit: t.cfg.layers },
            gamma,
            &st,
            n,
            &mut Accept::Greedy,
        )
        .unwrap();
        assert!(ls.accepted.iter().all(|&a| a == gamma));
    }

    /// Synthetic acceptance with probability 1 then 0 accepts exactly one token per round.
    #[test]
    fn synthetic_acceptance_follows_probabilities() {
        let (t, d) = pair(DType::F32);
        let dev = Device::Cpu;
        let rt = Runner::eager(&dev);
        let prompt = random_prompt(2, 4, 97, 9, &dev).unwrap();
        let tc = KvCache::new(&t.cfg, 2, 64, DType::F32, &dev).unwrap();
        let dc = KvCache::new(&d.cfg, 2, 64, DType::F32, &dev).unwrap();
        let st = start(&t, &tc, Some((&d, &dc)), &prompt).unwrap();
        let mut acc = Accept::synthetic(vec![1.0, 0.0, 0.0], 1);
        let sp = speculative(&rt, &t, &tc, &Draft::Model(&d, &dc), 3, &st, 20, &mut acc).unwrap();
        assert!(sp.accepted.iter().all(|&a| a == 1));
        assert_eq!(survival(&sp.accepted, 3), vec![1.0, 0.0, 0.0]);
    }

    /// The speculative sampling rule reproduces the target distribution: for one position with
    /// fixed p and q over 4 tokens, the emitted first token's frequencies over 200 000 trials match
    /// p within 0.005 (≈ 4.5 standard errors of a frequency near 0.4).
    #[test]
    fn speculative_sampling_rule_preserves_target_distribution() {
        let p = vec![vec![0.1f32, 0.4, 0.3, 0.2], vec![0.25; 4]];
        let q = vec![vec![0.4f32, 0.1, 0.3, 0.2]];
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(42);
        let mut draft_rng = Xoshiro256PlusPlus::seed_from_u64(43);
        let trials = 200_000;
        let mut counts = [0usize; 4];
        for _ in 0..trials {
            let d = sample_from(&q[0], &mut draft_rng);
            let (k, fix) = speculative_sampling_accept(&[d], &p, &q, &mut rng);
            let first = if k >= 1 { d } else { fix };
            counts[first as usize] += 1;
        }
        for (i, &c) in counts.iter().enumerate() {
            let f = c as f64 / trials as f64;
            assert!(
                (f - f64::from(p[0][i])).abs() < 0.005,
                "token {i}: {f} vs {}",
                p[0][i]
            );
        }
    }

    /// Speculative sampling with a draft identical to the target accepts every drafted token
    /// (p = q up to f32 rounding, so min(1, p/q) ≈ 1): γ tokens per round, ⌈n/(γ+1)⌉ rounds.
    /// (An always-accepting rule would pass this; the rule's output distribution, and so its
    /// rejections, is tested by `speculative_sampling_rule_preserves_target_distribution`.)
    #[test]
    fn sampling_with_self_draft_accepts_every_drafted_token() {
        let (t, _) = pair(DType::F32);
        let dev = Device::Cpu;
        let rt = Runner::eager(&dev);
        let prompt = random_prompt(2, 3, 97, 5, &dev).unwrap();
        let tc = KvCache::new(&t.cfg, 2, 48, DType::F32, &dev).unwrap();
        let sc = KvCache::new(&t.cfg, 2, 48, DType::F32, &dev).unwrap();
        let st = start(&t, &tc, Some((&t, &sc)), &prompt).unwrap();
        for g in [1, 3, 5] {
            let sp = speculative(
                &rt,
                &t,
                &tc,
                &Draft::Model(&t, &sc),
                g,
                &st,
                18,
                &mut Accept::sample(g as u64),
            )
            .unwrap();
            assert!(
                sp.accepted.iter().all(|&a| a == g),
                "γ={g}: {:?}",
                sp.accepted
            );
            assert_eq!(sp.rounds, 18usize.div_ceil(g + 1));
        }
    }

    /// Sampling-mode decoding runs end to end and emits valid tokens.
    #[test]
    fn sampling_mode_runs() {
        let (t, d) = pair(DType::F32);
        let dev = Device::Cpu;
        let rt = Runner::eager(&dev);
        let prompt = random_prompt(2, 3, 97, 2, &dev).unwrap();
        let tc = KvCache::new(&t.cfg, 2, 40, DType::F32, &dev).unwrap();
        let dc = KvCache::new(&d.cfg, 2, 40, DType::F32, &dev).unwrap();
        let st = start(&t, &tc, Some((&d, &dc)), &prompt).unwrap();
        let sp = speculative(
            &rt,
            &t,
            &tc,
            &Draft::Model(&d, &dc),
            3,
            &st,
            12,
            &mut Accept::sample(4),
        )
        .unwrap();
        assert!(sp
            .tokens
            .iter()
            .all(|v| v.len() == 12 && v.iter().all(|&x| x < 97)));
        let ls = speculative(
            &rt,
            &t,
            &tc,
            &Draft::LayerSkip { exit: 1 },
            3,
            &st,
            12,
            &mut Accept::sample(4),
        )
        .unwrap();
        assert!(ls.tokens.iter().all(|v| v.len() == 12));
    }
}
