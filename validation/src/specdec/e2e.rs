//! `perfcast-gpu e2e`: end-to-end decoding throughput of autoregressive and speculative decoding
//! over γ × batch × draft (kind `e2e`, tokens/s), with the acceptance outcomes of the same runs
//! (kind `acceptance`: per-position survival, rounds). Decodes are timed by
//! [`crate::timing::synced_excluding`] (graph capture excluded) over [`crate::timing::Repeats`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use candle_core::DType;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::graph::Runner;
use super::model::{preset, KvCache, Model};
use super::spec::{self, Accept, Draft};
use super::train;
use crate::cli::{device, positive, Global};
use crate::measure::{n, provenance, Row, Sink, Stats};
use crate::timing::{self, Repeats};

/// Flags of `e2e`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    target: String,
    /// Draft models (catalog names) and/or `layerskip:E=<n>`.
    #[arg(long, value_delimiter = ',', required = true)]
    drafts: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,6,8")]
    gammas: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,32")]
    batches: Vec<usize>,
    #[arg(long, default_value_t = 512)]
    prompt: usize,
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// `greedy`, `synthetic` with --probs, or `sample` (speculative sampling at temperature 1:
    /// the drafts' and target's distributions go to the host each round; the autoregressive
    /// baseline stays greedy).
    #[arg(long, default_value = "greedy")]
    accept: String,
    /// Conditional acceptance probability of drafted position 1, 2, ... (last repeats).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.9,0.85,0.8,0.75,0.7,0.65,0.6,0.55"
    )]
    probs: Vec<f64>,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Folder of trained weights (`<name>.safetensors`); random weights otherwise.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Corpus for prompts (held-out tail); random tokens otherwise.
    #[arg(long)]
    corpus: Option<PathBuf>,
    #[arg(long)]
    set: String,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs `e2e`: writes `<set>.csv` rows under `--out` and one log line per point to stderr.
///
/// # Errors
/// A bad flag value, an unknown model, a draft whose vocabulary differs from the target's, no
/// device, a failed decode or write (one line each).
pub fn run(global: &Global, a: Args) -> Result<ExitCode> {
    let Args {
        target,
        drafts,
        gammas,
        batches,
        prompt,
        new_tokens,
        accept,
        probs,
        warmup,
        repeats,
        weights,
        corpus,
        set,
        out,
        seed,
    } = a;
    let reps = Repeats::new(warmup, repeats);
    positive("--repeats", &[repeats])?;
    positive("--batches", &batches)?;
    positive("--gammas", &gammas)?;
    positive("--new-tokens", &[new_tokens])?;
    if prompt < 2 {
        bail!("--prompt {prompt}: expected an integer >= 2");
    }
    if probs.is_empty() {
        bail!("--probs: expected at least one probability");
    }
    if let Some(p) = probs.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        bail!("--probs {p}: expected probabilities in [0, 1]");
    }
    let dev = device(global.cpu)?;
    let dt = if dev.is_cuda() {
        DType::BF16
    } else {
        DType::F32
    };
    let load = |name: &str, s: u64| -> Result<Model> {
        let cfg = preset(name)?;
        Ok(match &weights {
            Some(dir) => Model::load(&cfg, &dir.join(format!("{name}.safetensors")), dt, &dev)?,
            None => Model::random(&cfg, dt, &dev, s)?,
        })
    };
    let tm = load(&target, seed)?;
    let mut dms: Vec<(String, Option<Model>, usize)> = Vec::new();
    for (i, d) in drafts.iter().enumerate() {
        if let Some(e) = d.strip_prefix("layerskip:E=") {
            let e: usize = e
                .parse()
                .with_context(|| format!("--drafts {d}: E must be an integer"))?;
            if e == 0 || e >= tm.cfg.layers {
                bail!("--drafts {d}: E must be in 1..{}", tm.cfg.layers);
            }
            dms.push((d.clone(), None, e));
        } else {
            let m = load(d, seed + 1 + i as u64)?;
            if m.cfg.vocab != tm.cfg.vocab {
                bail!(
                    "--drafts {d}: vocab {} differs from the target's {}",
                    m.cfg.vocab,
                    tm.cfg.vocab
                );
            }
            dms.push((d.clone(), Some(m), 0));
        }
    }
    let (synthetic, sampling) = match accept.as_str() {
        "greedy" => (false, false),
        "synthetic" => (true, false),
        "sample" => (false, true),
        a => bail!("--accept {a}: expected greedy, synthetic or sample"),
    };
    if synthetic && dms.len() > 1 {
        bail!("--drafts: synthetic runs take one draft per command (their rows say draft=synthetic and the command names the model)");
    }
    let text = match &corpus {
        Some(p) => Some(std::fs::read(p).with_context(|| p.display().to_string())?),
        None => None,
    };
    let mut sink = Sink::open(&out, &set, provenance())?;
    let rt = Runner::new(global.exec, &dev, global.bucket);
    eprintln!(
        "e2e {set}: exec {} (attended-slot bucket {})",
        rt.exec(),
        rt.bucket()
    );
    let gmax = *gammas.iter().max().unwrap_or(&1);
    let ctx_mean = prompt + new_tokens / 2;
    for &b in &batches {
        rt.clear();
        let cap =
            spec::capacity_needed(prompt, new_tokens, gmax).div_ceil(rt.bucket()) * rt.bucket();
        let tc = KvCache::new(&tm.cfg, b, cap, dt, &dev)?;
        let ptoks = match &text {
            Some(t) => {
                let eval = &t[t.len() * 95 / 100..];
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ b as u64);
                train::windows(eval, b, prompt - 1, &mut rng, &dev)?
            }
            None => spec::random_prompt(b, prompt, tm.cfg.vocab, seed ^ b as u64, &dev)?,
        };
        let st = spec::start(&tm, &tc, None, &ptoks)?;
        // Autoregressive baseline.
        let mut ar_tokens = Vec::new();
        let times = reps.run(|r| -> Result<f64> {
            // Graph capture is one-time set-up, not decoding.
            let (o, el) = timing::synced_excluding(
                &dev,
                || rt.capture_s(),
                || spec::autoregressive(&rt, &tm, &tc, &st, new_tokens),
            )?;
            if r == 0 {
                ar_tokens = o.tokens;
            }
            Ok(el)
        })?;
        let s = Stats::of(&times);
        let tps = timing::rate((b * new_tokens) as f64, &times);
        eprintln!(
            "e2e {set} {target} batch {b} autoregressive: {:.1} tokens/s ({:.3} ms/token-step)",
            tps.median,
            s.median / new_tokens as f64 * 1e3
        );
        sink.write(&e2e_row(
            &set, &target, "none", 0, b, new_tokens, ctx_mean, &tps,
        ))?;
        for (dname, dm, exit) in &dms {
            rt.clear();
            let dc = match dm {
                Some(m) => {
                    let c = KvCache::new(&m.cfg, b, cap, dt, &dev)?;
                    spec::prefill(m, &c, &ptoks, 256)?;
                    Some(c)
                }
                None => None,
            };
            let dr = match (dm, &dc) {
                (Some(m), Some(c)) => Draft::Model(m, c),
                _ => Draft::LayerSkip { exit: *exit },
            };
            let draft_col = if synthetic {
                "synthetic".to_string()
            } else {
                dname.clone()
            };
            for &g in &gammas {
                let mut agree = (0usize, 0usize);
                let timed = reps.run(|r| -> Result<_> {
                    let run_seed = seed ^ ((b as u64) << 32) ^ ((g as u64) << 16) ^ r as u64;
                    let mut acc = if synthetic {
                        Accept::synthetic(probs.clone(), run_seed)
                    } else if sampling {
                        Accept::sample(run_seed)
                    } else {
                        Accept::Greedy
                    };
                    let c0 = rt.captures();
                    let (o, el) = timing::synced_excluding(
                        &dev,
                        || rt.capture_s(),
                        || spec::speculative(&rt, &tm, &tc, &dr, g, &st, new_tokens, &mut acc),
                    )?;
                    if r == 0 && !synthetic && !sampling {
                        for (x, y) in o.tokens.iter().zip(&ar_tokens) {
                            agree.0 += spec::first_divergence(x, y);
                            agree.1 += x.len();
                        }
                    }
                    Ok((el, o, rt.captures() - c0))
                })?;
                let times: Vec<f64> = timed.iter().map(|x| x.0).collect();
                let mut accepted = Vec::new();
                let mut rounds = Vec::new();
                let mut seq_rounds = Vec::new();
                let mut timed_captures = 0;
                for (_, o, captures) in &timed {
                    accepted.extend_from_slice(&o.accepted);
                    rounds.push(o.rounds as f64);
                    seq_rounds.extend(o.seq_rounds.iter().map(|&x| x as f64));
                    timed_captures += captures;
                }
                let tps = timing::rate((b * new_tokens) as f64, &times);
                // Acceptance outcomes of this (γ, batch): the survival curve, the
                // rounds the static batch ran (its slowest sequence) and the mean over
                // sequences of the round each finished in; no time.
                let acceptance_row = |metric: &str,
                                      position: Option<u32>,
                                      value: f64,
                                      repeats: usize,
                                      unit: &str| Row {
                    set: set.clone(),
                    kind: "acceptance".into(),
                    model: target.clone(),
                    draft: Some(draft_col.clone()),
                    gamma: n(g),
                    batch: n(b),
                    position,
                    metric: metric.into(),
                    value,
                    repeats: repeats as u64,
                    spread: None,
                    unit: unit.into(),
                    ..Default::default()
                };
                let surv = spec::survival(&accepted, g);
                for (i, v) in surv.iter().enumerate() {
                    sink.write(&acceptance_row(
                        "survival",
                        n(i + 1),
                        *v,
                        accepted.len(),
                        "fraction",
                    ))?;
                }
                for (metric, v) in [("rounds", &rounds), ("seq_rounds", &seq_rounds)] {
                    sink.write(&acceptance_row(
                        metric,
                        None,
                        v.iter().sum::<f64>() / v.len().max(1) as f64,
                        v.len(),
                        "rounds",
                    ))?;
                }
                sink.write(&e2e_row(
                    &set, &target, &draft_col, g, b, new_tokens, ctx_mean, &tps,
                ))?;
                let greedy_note = if synthetic || sampling {
                    String::new()
                } else {
                    format!("; greedy check: {}/{} tokens equal to autoregressive before first divergence", agree.0, agree.1)
                };
                eprintln!(
                    "e2e {set} {target}+{dname} γ={g} batch {b}: {:.1} tokens/s (x{:.2} vs AR), rounds {:.1} (mean per sequence {:.1}), graphs captured while timed {timed_captures}, mean accepted {:.2}, survival {:?}{greedy_note}",
                    tps.median,
                    tps.median * s.median / (b * new_tokens) as f64,
                    rounds.iter().sum::<f64>() / rounds.len().max(1) as f64,
                    seq_rounds.iter().sum::<f64>() / seq_rounds.len().max(1) as f64,
                    accepted.iter().sum::<usize>() as f64 / accepted.len().max(1) as f64,
                    surv.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
fn e2e_row(
    set: &str,
    target: &str,
    draft: &str,
    gamma: usize,
    b: usize,
    n: usize,
    ctx: usize,
    tps: &Stats,
) -> Row {
    Row {
        set: set.to_string(),
        kind: "e2e".into(),
        model: target.to_string(),
        draft: Some(draft.to_string()),
        gamma: self::n(gamma),
        batch: self::n(b),
        new_tokens: self::n(n),
        context_tokens: Some(ctx as f64),
        metric: "tokens_per_s".into(),
        value: tps.median,
        repeats: tps.n as u64,
        spread: Some(tps.spread()),
        unit: "tokens/s".into(),
        ..Default::default()
    }
}
