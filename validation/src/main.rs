//! `perfcast-gpu`: the GPU validation harness binary (glue; logic lives in the library).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::{Parser, Subcommand};
use perfcast_validation::graph::{Exec, Runner};
use perfcast_validation::measure::{Provenance, Row, Sink, Stats};
use perfcast_validation::model::{preset, presets, Head, KvCache, Model, Step};
use perfcast_validation::spec::{self, Accept, Draft};
use perfcast_validation::train::{self, TrainCfg};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Measured H200 device-to-device copy bandwidth (bytes/s), the roofline's memory rate
/// (shared/gpu/RECIPE.md).
const H200_COPY_BW: f64 = 4.28e12;

#[derive(Parser)]
#[command(
    name = "perfcast-gpu",
    about = "GPU validation harness of perfcast (speculative decoding on real transformers)"
)]
struct Cli {
    /// Run on the CPU (small sizes; what CI tests) instead of the CUDA GPU.
    #[arg(long, global = true)]
    cpu: bool,
    /// How forwards run on the GPU: `graphs` (each shape captured once as a CUDA graph and
    /// replayed, as production decoders do) or `eager` (one host launch per candle op).
    #[arg(long, global = true, default_value = "graphs")]
    exec: Exec,
    /// With graphs, attended KV slots are rounded up to a multiple of this (one graph per bucket
    /// of context lengths; the mask hides the extra slots).
    #[arg(long, global = true, default_value_t = 64)]
    bucket: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// DLRM training with a GPU embedding-row cache: `check`, `micro`, `e2e` (issue 16).
    Embcache(perfcast_validation::embcache::cli::Args),
    /// Print the `models/llms-validation.toml` entries of every preset (parameter counts read off
    /// tensors allocated on the device for models up to --alloc-max parameters, else off shapes).
    Catalog {
        /// Largest model (parameters) to allocate for the count.
        #[arg(long, default_value_t = 20_000_000)]
        alloc_max: usize,
    },
    /// Correctness before timing: cached vs full forward, and greedy speculative decoding (separate
    /// draft and LayerSkip, batch 3, γ 1..8) emitting exactly the target's greedy tokens (f32).
    Check,
    /// Per-forward latency grid: models × batch × new tokens × context.
    Forward {
        #[arg(long, value_delimiter = ',', required = true)]
        models: Vec<String>,
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
        batches: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "1,2,3,5,7,9")]
        new_tokens: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "128,512,1024,2048")]
        contexts: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 10)]
        repeats: usize,
        /// Forwards issued back to back per timed repeat (no synchronization between them, as in
        /// the decode loop); `forward_s` = elapsed / this. Each repeat also times one forward
        /// between two synchronizations (`forward_sync_s`).
        #[arg(long, default_value_t = 8)]
        pipeline: usize,
        #[arg(long, default_value = "h200-forward")]
        set: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// End-to-end decoding throughput: autoregressive and speculative over γ × batch × draft.
    E2e {
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
    },
    /// Train a byte-level model on a corpus and save its weights.
    Train {
        #[arg(long)]
        model: String,
        #[arg(long)]
        corpus: PathBuf,
        #[arg(long, default_value_t = 120.0)]
        secs: f64,
        #[arg(long, default_value_t = 3000)]
        max_steps: usize,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 256)]
        seq: usize,
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        #[arg(long, default_value_t = 100)]
        warmup: usize,
        /// Early-exit layers trained with their own loss (LayerSkip).
        #[arg(long, value_delimiter = ',')]
        exits: Vec<usize>,
        #[arg(long, default_value_t = 1.0)]
        exit_weight: f64,
        #[arg(long)]
        save: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// nccl-tests-style sweep (all-reduce sum / all-gather, f32) over every local GPU: tidy CSV
    /// `<set>.csv` (median time_s and busbw per size) and `<set>-<op>-busbw.csv` curves
    /// (`bytes,busbw_bytes_per_s`, what `perfcast collective --busbw-csv` reads).
    NcclSweep {
        #[arg(long, value_delimiter = ',', default_value = "allreduce,allgather")]
        ops: Vec<String>,
        /// Smallest size, bytes (all-gather: total output, as in nccl-tests).
        #[arg(long, default_value_t = 8)]
        min_bytes: u64,
        /// Largest size, bytes.
        #[arg(long, default_value_t = 1 << 30)]
        max_bytes: u64,
        /// Size multiplier between points.
        #[arg(long, default_value_t = 2)]
        step_factor: u64,
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Back-to-back operations per timed batch.
        #[arg(long, default_value_t = 20)]
        iters: usize,
        /// Timed batches per size (median and spread over these).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        #[arg(long, default_value = "h200x2-nccl")]
        set: String,
        #[arg(long)]
        out: PathBuf,
    },
}

fn device(cpu: bool) -> Result<Device> {
    if cpu {
        return Ok(Device::Cpu);
    }
    if !cfg!(feature = "cuda") {
        bail!("no GPU driver used: perfcast-gpu was built without the `cuda` feature (rebuild with --features cuda, or pass --cpu)");
    }
    let dev = Device::new_cuda(0).map_err(|e| {
        anyhow::anyhow!(
            "no CUDA GPU or driver found: {}",
            first_line(&e.to_string())
        )
    })?;
    // One stream: cudarc's per-allocation event pair (multi-stream bookkeeping, two
    // cuEventCreate per tensor) is pure host overhead here, and must not be captured in graphs.
    #[cfg(feature = "cuda")]
    if let Device::Cuda(cd) = &dev {
        // SAFETY: every tensor lives on candle's single stream of this device.
        unsafe { cd.disable_event_tracking() }
    }
    Ok(dev)
}

/// Fails naming `flag` unless every value is >= 1.
fn positive(flag: &str, values: &[usize]) -> Result<()> {
    match values.iter().find(|&&v| v == 0) {
        Some(v) => bail!("{flag} {v}: expected integers >= 1"),
        None => Ok(()),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("perfcast-gpu: {}", first_line(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.cmd {
        Cmd::Embcache(a) => Ok(ExitCode::from(perfcast_validation::embcache::cli::run(a, cli.cpu)?)),
        Cmd::Catalog { alloc_max } => {
            let dev = if cli.cpu { Device::Cpu } else { device(false)? };
            println!("# Architectures of the models the GPU validation harness (validation/, `perfcast-gpu`) builds and");
            println!("# times on real GPUs. Same schema as llms.toml; `published_params` is the parameter count the");
            println!("# harness reads off its own tensors. Names start with `val-`. Generated by `perfcast-gpu catalog`.");
            for c in presets() {
                let shapes = c.param_count();
                let (n, how) = if shapes <= alloc_max {
                    (
                        Model::random(&c, DType::F32, &dev, 0)?.param_count(),
                        "allocated tensors",
                    )
                } else {
                    (shapes, "tensor shapes (the allocated element count the H200 run logged is the same: validation/results/log-run1.txt)")
                };
                println!();
                print!("{}", c.toml_entry(n, &format!("perfcast-validation preset; count read off its {how} (validation/src/model.rs)")));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check => check(&device(cli.cpu)?),
        Cmd::NcclSweep {
            ops,
            min_bytes,
            max_bytes,
            step_factor,
            warmup,
            iters,
            repeats,
            set,
            out,
        } => nccl_sweep(
            &ops,
            (min_bytes, max_bytes, step_factor),
            (warmup, iters, repeats),
            &set,
            &out,
        ),
        Cmd::Forward {
            models,
            batches,
            new_tokens,
            contexts,
            warmup,
            repeats,
            pipeline,
            set,
            out,
            seed,
        } => {
            positive("--repeats", &[repeats])?;
            positive("--pipeline", &[pipeline])?;
            positive("--batches", &batches)?;
            positive("--new-tokens", &new_tokens)?;
            let dev = device(cli.cpu)?;
            let rt = Runner::new(cli.exec, &dev, cli.bucket);
            eprintln!(
                "forward: exec {} (attended-slot bucket {})",
                rt.exec(),
                rt.bucket()
            );
            let dt = if dev.is_cuda() {
                DType::BF16
            } else {
                DType::F32
            };
            let mut sink = Sink::open(&out, &set, Provenance::from_env())?;
            let mut roof = String::new();
            for name in &models {
                let cfg = preset(name)?;
                let m = Model::random(&cfg, dt, &dev, seed)?;
                eprintln!(
                    "forward {name}: {} parameters on the device ({:.3} GB)",
                    m.param_count(),
                    m.weight_bytes() as f64 / 1e9
                );
                let tmax = *new_tokens.iter().max().unwrap_or(&1);
                let cmax = *contexts.iter().max().unwrap_or(&1);
                for &b in &batches {
                    let cap = (cmax + tmax + 1).div_ceil(rt.bucket()) * rt.bucket();
                    let cache = KvCache::new(&cfg, b, cap, dt, &dev)?;
                    for &ctx in &contexts {
                        for &t in &new_tokens {
                            let toks = spec::random_prompt(
                                b,
                                t,
                                cfg.vocab,
                                seed ^ (b * 1000 + t) as u64,
                                &dev,
                            )?;
                            let pos = vec![ctx; b];
                            let mut times = Vec::with_capacity(repeats);
                            let mut synced = Vec::with_capacity(repeats);
                            // A decode step's forward: logits and their greedy tokens.
                            let step = || {
                                m.run_tokens(&rt, &toks, &cache, &pos, Head::All, true)
                                    .map(drop)
                            };
                            step()?; // untimed: captures the graph
                            for r in 0..warmup + repeats {
                                dev.synchronize()?;
                                let t0 = Instant::now();
                                for _ in 0..pipeline {
                                    step()?;
                                }
                                dev.synchronize()?;
                                let el = t0.elapsed().as_secs_f64() / pipeline as f64;
                                let t1 = Instant::now();
                                step()?;
                                dev.synchronize()?;
                                let el1 = t1.elapsed().as_secs_f64();
                                if r >= warmup {
                                    times.push(el);
                                    synced.push(el1);
                                }
                            }
                            rt.clear();
                            let s = Stats::of(&times);
                            for (metric, st) in
                                [("forward_s", s), ("forward_sync_s", Stats::of(&synced))]
                            {
                                sink.write(&Row {
                                    set: set.clone(),
                                    kind: "forward".into(),
                                    model: name.clone(),
                                    batch: b.to_string(),
                                    new_tokens: t.to_string(),
                                    context_tokens: ctx.to_string(),
                                    metric: metric.into(),
                                    value: st.median,
                                    repeats: st.n,
                                    spread: Some(st.spread()),
                                    unit: "s".into(),
                                    ..Default::default()
                                })?;
                            }
                            if b == 1 && t == 1 {
                                let bytes = m.weight_bytes() as f64
                                    + (ctx * cfg.kv_bytes_per_token(dt.size_in_bytes())) as f64;
                                let floor = bytes / H200_COPY_BW;
                                let line = format!(
                                    "| {name} | {} | {ctx} | {:.3} | {:.4} | {:.4} | {:.2} | {:.2} |",
                                    m.param_count(),
                                    bytes / 1e9,
                                    floor * 1e3,
                                    s.median * 1e3,
                                    s.median / floor,
                                    bytes / s.median / 1e12
                                );
                                eprintln!("roofline {line}");
                                roof.push_str(&line);
                                roof.push('\n');
                            }
                        }
                    }
                    eprintln!("forward {name}: batch {b} done ({} rows)", sink.rows);
                }
            }
            if !roof.is_empty() {
                let head = "| model | params | context | bytes (GB) | floor (ms) | measured (ms) | measured/floor | achieved TB/s |\n|---|---|---|---|---|---|---|---|\n";
                let path = out.join(format!("{set}-roofline.md"));
                let prev = std::fs::read_to_string(&path).unwrap_or_default();
                let text = if prev.is_empty() {
                    format!("{head}{roof}")
                } else {
                    format!("{prev}{roof}")
                };
                std::fs::write(&path, text).with_context(|| path.display().to_string())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::E2e {
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
        } => {
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
            let dev = device(cli.cpu)?;
            let dt = if dev.is_cuda() {
                DType::BF16
            } else {
                DType::F32
            };
            let load = |name: &str, s: u64| -> Result<Model> {
                let cfg = preset(name)?;
                Ok(match &weights {
                    Some(dir) => {
                        Model::load(&cfg, &dir.join(format!("{name}.safetensors")), dt, &dev)?
                    }
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
            let mut sink = Sink::open(&out, &set, Provenance::from_env())?;
            let rt = Runner::new(cli.exec, &dev, cli.bucket);
            eprintln!(
                "e2e {set}: exec {} (attended-slot bucket {})",
                rt.exec(),
                rt.bucket()
            );
            let gmax = *gammas.iter().max().unwrap_or(&1);
            let ctx_mean = prompt + new_tokens / 2;
            for &b in &batches {
                rt.clear();
                let cap = spec::capacity_needed(prompt, new_tokens, gmax).div_ceil(rt.bucket())
                    * rt.bucket();
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
                let mut times = Vec::new();
                for r in 0..warmup + repeats {
                    dev.synchronize()?;
                    let c0 = rt.capture_s();
                    let t0 = Instant::now();
                    let o = spec::autoregressive(&rt, &tm, &tc, &st, new_tokens)?;
                    dev.synchronize()?;
                    // Graph capture is one-time set-up, not decoding.
                    let el = t0.elapsed().as_secs_f64() - (rt.capture_s() - c0);
                    if r == 0 {
                        ar_tokens = o.tokens;
                    }
                    if r >= warmup {
                        times.push(el);
                    }
                }
                let s = Stats::of(&times);
                let tps = Stats::of(
                    &times
                        .iter()
                        .map(|t| (b * new_tokens) as f64 / t)
                        .collect::<Vec<_>>(),
                );
                eprintln!("e2e {set} {target} batch {b} autoregressive: {:.1} tokens/s ({:.3} ms/token-step)", tps.median, s.median / new_tokens as f64 * 1e3);
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
                        let mut times = Vec::new();
                        let mut accepted = Vec::new();
                        let mut agree = (0usize, 0usize);
                        let mut rounds = Vec::new();
                        let mut seq_rounds = Vec::new();
                        let mut timed_captures = 0;
                        for r in 0..warmup + repeats {
                            let run_seed =
                                seed ^ ((b as u64) << 32) ^ ((g as u64) << 16) ^ r as u64;
                            let mut acc = if synthetic {
                                Accept::synthetic(probs.clone(), run_seed)
                            } else if sampling {
                                Accept::sample(run_seed)
                            } else {
                                Accept::Greedy
                            };
                            dev.synchronize()?;
                            let c0 = rt.captures();
                            let cs0 = rt.capture_s();
                            let t0 = Instant::now();
                            let o = spec::speculative(
                                &rt, &tm, &tc, &dr, g, &st, new_tokens, &mut acc,
                            )?;
                            dev.synchronize()?;
                            let el = t0.elapsed().as_secs_f64() - (rt.capture_s() - cs0);
                            if r == 0 && !synthetic && !sampling {
                                for (x, y) in o.tokens.iter().zip(&ar_tokens) {
                                    agree.0 += spec::first_divergence(x, y);
                                    agree.1 += x.len();
                                }
                            }
                            if r >= warmup {
                                times.push(el);
                                accepted.extend_from_slice(&o.accepted);
                                rounds.push(o.rounds as f64);
                                seq_rounds.extend(o.seq_rounds.iter().map(|&x| x as f64));
                                timed_captures += rt.captures() - c0;
                            }
                        }
                        let tps = Stats::of(
                            &times
                                .iter()
                                .map(|t| (b * new_tokens) as f64 / t)
                                .collect::<Vec<_>>(),
                        );
                        // Acceptance outcomes of this (γ, batch): the survival curve, the
                        // rounds the static batch ran (its slowest sequence) and the mean over
                        // sequences of the round each finished in; no time.
                        let acceptance_row =
                            |metric: &str,
                             position: String,
                             value: f64,
                             repeats: usize,
                             unit: &str| Row {
                                set: set.clone(),
                                kind: "acceptance".into(),
                                model: target.clone(),
                                draft: draft_col.clone(),
                                gamma: g.to_string(),
                                batch: b.to_string(),
                                position,
                                metric: metric.into(),
                                value,
                                repeats,
                                spread: None,
                                unit: unit.into(),
                                ..Default::default()
                            };
                        let surv = spec::survival(&accepted, g);
                        for (i, v) in surv.iter().enumerate() {
                            sink.write(&acceptance_row(
                                "survival",
                                (i + 1).to_string(),
                                *v,
                                accepted.len(),
                                "fraction",
                            ))?;
                        }
                        for (metric, v) in [("rounds", &rounds), ("seq_rounds", &seq_rounds)] {
                            sink.write(&acceptance_row(
                                metric,
                                String::new(),
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
        Cmd::Train {
            model,
            corpus,
            secs,
            max_steps,
            batch,
            seq,
            lr,
            warmup,
            exits,
            exit_weight,
            save,
            seed,
        } => {
            positive("--batch", &[batch])?;
            positive("--seq", &[seq])?;
            positive("--max-steps", &[max_steps])?;
            if secs.is_nan() || secs <= 0.0 {
                bail!("--secs {secs}: expected seconds > 0");
            }
            let dev = device(cli.cpu)?;
            if dev.is_cuda() {
                candle_core::cuda::set_gemm_reduced_precision_f32(true);
            }
            let cfg = preset(&model)?;
            let text = std::fs::read(&corpus).with_context(|| corpus.display().to_string())?;
            let split = text.len() * 95 / 100;
            let tc = TrainCfg {
                batch,
                seq,
                lr,
                warmup,
                max_steps,
                max_secs: secs,
                exits,
                exit_weight,
                seed,
                log_every: 50,
            };
            let (m, rep) =
                train::train(&cfg, &text[..split], &text[split..], &tc, &dev, &mut |s| {
                    eprintln!("{s}")
                })?;
            std::fs::create_dir_all(&save)?;
            let path = save.join(format!("{model}.safetensors"));
            m.save(&path)?;
            eprintln!(
                "train {model}: {} parameters, {} steps in {:.1}s ({} tokens), final loss {:.4} nats/byte, held-out bits/byte {:?}; saved {}",
                m.param_count(),
                rep.steps,
                rep.secs,
                rep.steps * batch * seq,
                rep.loss,
                rep.eval_bpb.iter().map(|(l, v)| format!("{l}={v:.3}")).collect::<Vec<_>>(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
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
        draft: draft.to_string(),
        gamma: gamma.to_string(),
        batch: b.to_string(),
        new_tokens: n.to_string(),
        context_tokens: ctx.to_string(),
        metric: "tokens_per_s".into(),
        value: tps.median,
        repeats: tps.n,
        spread: Some(tps.spread()),
        unit: "tokens/s".into(),
        ..Default::default()
    }
}

/// Correctness checks on the chosen device; exit 1 when one fails.
fn check(dev: &Device) -> Result<ExitCode> {
    let mut ok = true;
    let t = Model::random(&preset("val-tiny-t")?, DType::F32, dev, 11)?;
    let d = Model::random(&preset("val-tiny-d")?, DType::F32, dev, 12)?;
    // Cached incremental forward vs full causal forward.
    let toks = spec::random_prompt(2, 9, t.cfg.vocab, 1, dev)?;
    let full = t.forward_train(&toks, &[])?.pop().unwrap();
    let cache = KvCache::new(&t.cfg, 2, 16, DType::F32, dev)?;
    let mut outs = Vec::new();
    let mut p = 0;
    for n in [4usize, 2, 3] {
        let step = Step::new(&t, &[p, p], n, 16)?;
        outs.push(t.forward(&toks.narrow(1, p, n)?, &cache, &step)?.reshape((
            2,
            n,
            t.cfg.vocab,
        ))?);
        p += n;
    }
    let inc = Tensor::cat(&outs, 1)?.reshape((18, t.cfg.vocab))?;
    let diff = (inc - &full)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let pass = diff < 1e-3;
    ok &= pass;
    println!(
        "check cached-vs-full forward (f32): max |diff| {diff:.2e} (tolerance 1e-3): {}",
        if pass { "PASS" } else { "FAIL" }
    );
    // The same incremental forward replayed from CUDA graphs (with bucketed attended slots)
    // must equal the eager one.
    if dev.is_cuda() {
        let rt = Runner::new(Exec::Graphs, dev, 8);
        let cache = KvCache::new(&t.cfg, 2, 32, DType::F32, dev)?;
        let mut outs = Vec::new();
        let mut p = 0;
        for n in [4usize, 2, 3] {
            // Twice per shape: the first call captures, the second replays.
            for _ in 0..2 {
                let x = toks.narrow(1, p, n)?;
                let lg = t.run_tokens(&rt, &x, &cache, &[p, p], Head::All, false)?;
                outs.push(lg.reshape((2, n, t.cfg.vocab))?);
            }
            p += n;
        }
        let inc = Tensor::cat(&[&outs[1], &outs[3], &outs[5]], 1)?.reshape((18, t.cfg.vocab))?;
        let diff = (inc - &full)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let pass = diff < 1e-3 && rt.captures() == 3;
        ok &= pass;
        println!(
            "check CUDA-graph replayed forward vs full forward (f32, {} graphs): max |diff| {diff:.2e} (tolerance 1e-3): {}",
            rt.captures(),
            if pass { "PASS" } else { "FAIL" }
        );
    }
    let mut runners = vec![Runner::eager(dev)];
    if dev.is_cuda() {
        runners.push(Runner::new(Exec::Graphs, dev, 8));
    }
    for rt in &runners {
        ok &= check_decoding(rt, &t, &d, dev)?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Greedy speculative decoding (separate draft and LayerSkip, γ 1–8) emits exactly the target's
/// greedy tokens, and a draft equal to the target is always fully accepted (greedy and
/// speculative sampling), under `rt`.
fn check_decoding(rt: &Runner, t: &Model, d: &Model, dev: &Device) -> Result<bool> {
    let mut ok = true;
    let x = rt.exec();
    let (b, p, n) = (3, 6, 24);
    let prompt = spec::random_prompt(b, p, 97, 3, dev)?;
    let cap = spec::capacity_needed(p, n, 8);
    let tc = KvCache::new(&t.cfg, b, cap, DType::F32, dev)?;
    let dc = KvCache::new(&d.cfg, b, cap, DType::F32, dev)?;
    let st = spec::start(t, &tc, Some((d, &dc)), &prompt)?;
    let ar = spec::autoregressive(rt, t, &tc, &st, n)?;
    for g in 1..=8 {
        let sp = spec::speculative(
            rt,
            t,
            &tc,
            &Draft::Model(d, &dc),
            g,
            &st,
            n,
            &mut Accept::Greedy,
        )?;
        let ls = spec::speculative(
            rt,
            t,
            &tc,
            &Draft::LayerSkip { exit: 2 },
            g,
            &st,
            n,
            &mut Accept::Greedy,
        )?;
        let pass = sp.tokens == ar.tokens && ls.tokens == ar.tokens;
        ok &= pass;
        println!(
            "check greedy speculative == target greedy ({x}, f32, batch {b}, γ={g}): draft rounds {} (mean accepted {:.2}), layerskip rounds {}: {}",
            sp.rounds,
            sp.accepted.iter().sum::<usize>() as f64 / sp.accepted.len() as f64,
            ls.rounds,
            if pass { "PASS" } else { "FAIL" }
        );
    }
    // A draft identical to the target: every drafted token accepted, rounds = ceil(n / (γ+1)),
    // under greedy verification and under speculative sampling (temperature 1: p = q up to the
    // f32 rounding between a one-token and a (γ+1)-token forward, so min(1, p/q) ≈ 1 and all but
    // vanishingly rarely every drafted token is accepted; this runs the sampling rule's
    // device→host path on this runner, and its tokens must be in the vocabulary).
    let sc = KvCache::new(&t.cfg, b, cap, DType::F32, dev)?;
    spec::prefill(t, &sc, &prompt, 256)?;
    for g in [1, 4, 8] {
        let run =
            |acc: &mut Accept| spec::speculative(rt, t, &tc, &Draft::Model(t, &sc), g, &st, n, acc);
        let sp = run(&mut Accept::Greedy)?;
        let pass = sp.tokens == ar.tokens
            && sp.accepted.iter().all(|&a| a == g)
            && sp.rounds == n.div_ceil(g + 1);
        ok &= pass;
        println!(
            "check self-draft accepts all ({x}, f32, batch {b}, γ={g}): rounds {}: {}",
            sp.rounds,
            if pass { "PASS" } else { "FAIL" }
        );
        let sp = run(&mut Accept::sample(11 + g as u64))?;
        let mean = sp.accepted.iter().sum::<usize>() as f64 / sp.accepted.len().max(1) as f64;
        let valid = sp
            .tokens
            .iter()
            .all(|v| v.len() == n && v.iter().all(|&x| (x as usize) < t.cfg.vocab));
        let pass = valid && mean >= g as f64 - 0.05;
        ok &= pass;
        println!(
            "check sampling self-draft accepts all ({x}, f32, batch {b}, γ={g}): mean accepted {mean:.3}, rounds {}: {}",
            sp.rounds,
            if pass { "PASS" } else { "FAIL" }
        );
    }
    rt.clear();
    Ok(ok)
}

#[cfg(not(feature = "cuda"))]
fn nccl_sweep(
    _ops: &[String],
    _sizes: (u64, u64, u64),
    _timing: (usize, usize, usize),
    _set: &str,
    _out: &std::path::Path,
) -> Result<ExitCode> {
    bail!("nccl-sweep: perfcast-gpu was built without the `cuda` feature (rebuild with --features cuda)")
}

/// `nccl-sweep`: times the collectives, writes the tidy CSV row by row and the busbw curves.
#[cfg(feature = "cuda")]
fn nccl_sweep(
    ops: &[String],
    (min_bytes, max_bytes, step_factor): (u64, u64, u64),
    (warmup, iters, repeats): (usize, usize, usize),
    set: &str,
    out: &std::path::Path,
) -> Result<ExitCode> {
    use perfcast_validation::nccl::{self, Coll};
    use std::fmt::Write as _;
    let colls = ops
        .iter()
        .map(|o| {
            Coll::parse(o)
                .ok_or_else(|| anyhow::anyhow!("--ops {o}: expected allreduce or allgather"))
        })
        .collect::<Result<Vec<_>>>()?;
    positive("--iters", &[iters])?;
    positive("--repeats", &[repeats])?;
    if min_bytes == 0 || min_bytes > max_bytes || step_factor < 2 {
        bail!("--min-bytes {min_bytes} --max-bytes {max_bytes} --step-factor {step_factor}: expected 1 <= min <= max and factor >= 2");
    }
    let n = cudarc::driver::CudaContext::device_count()
        .map_err(|e| anyhow::anyhow!("no CUDA GPU or driver found: {e}"))? as usize;
    let sizes = nccl::sizes(min_bytes, max_bytes, step_factor, n);
    if sizes.is_empty() {
        bail!("no size in {min_bytes}..={max_bytes} splits into whole f32 elements over {n} ranks");
    }
    let mut sink = Sink::open(out, set, Provenance::from_env())
        .with_context(|| format!("opening {}", out.display()))?
        .with_technique("gradcomp");
    println!(
        "{:>10} {:>12} {:>12} {:>10} {:>10} {:>8}",
        "op", "bytes", "time_us", "algbw_GB/s", "busbw_GB/s", "spread"
    );
    let points = nccl::sweep(&colls, &sizes, warmup, iters, repeats, |p| {
        let st = Stats::of(&p.times_s);
        let algbw = p.bytes as f64 / st.median;
        let busbw = algbw * p.coll.busbw_factor(p.ranks);
        println!(
            "{:>10} {:>12} {:>12.2} {:>10.2} {:>10.2} {:>8.3}",
            p.coll.as_str(),
            p.bytes,
            st.median * 1e6,
            algbw / 1e9,
            busbw / 1e9,
            st.spread()
        );
        let base = Row {
            set: set.to_string(),
            kind: "collective".into(),
            model: p.coll.as_str().into(),
            batch: p.ranks.to_string(),
            position: p.bytes.to_string(),
            repeats: p.times_s.len(),
            spread: Some(st.spread()),
            ..Row::default()
        };
        sink.write(&Row {
            metric: "time_s".into(),
            value: st.median,
            unit: "s".into(),
            ..base.clone()
        })?;
        sink.write(&Row {
            metric: "busbw_bytes_per_s".into(),
            value: busbw,
            unit: "bytes/s".into(),
            ..base
        })?;
        Ok(())
    })?;
    let prov = Provenance::from_env();
    for &c in &colls {
        let mut text = String::new();
        writeln!(text, "# perfcast-gpu nccl-sweep: {} (f32, nccl-tests busbw), set {set}, gpu {}, driver {}, cuda {}, commit {}, date {}", c.as_str(), prov.gpu, prov.driver, prov.cuda, prov.commit, perfcast_validation::measure::now_iso())?;
        writeln!(text, "bytes,busbw_bytes_per_s")?;
        for p in points.iter().filter(|p| p.coll == c) {
            let busbw = p.bytes as f64 / Stats::of(&p.times_s).median * c.busbw_factor(p.ranks);
            if busbw > 0.0 {
                writeln!(text, "{},{busbw:.6e}", p.bytes)?;
            }
        }
        let path = out.join(format!("{set}-{}-busbw.csv", c.as_str()));
        let tmp = path.with_extension("csv.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!("wrote {} rows to {}", sink.rows, sink.path().display());
    Ok(ExitCode::SUCCESS)
}
