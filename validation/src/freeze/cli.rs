//! `perfcast-gpu freeze {check,micro,e2e,train}`: argument parsing and the run of each mode.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use clap::Subcommand;

use super::bench::{self, Timing};
use super::data::{synthetic_corpus, Dataset};
use super::model::{Bert, BertCfg};
use super::policy::{replay_autofreeze, Policy};
use super::rows::{self, FRow};
use super::train::{self, RunCfg, Tier};
use crate::cli::{device, positive, Global};
use crate::measure::{provenance, Sink};

/// The H200's dense bf16 tensor-core peak (`models/gpus.toml`, NVIDIA datasheet: 1,979 TFLOP/s
/// with sparsity, half of it dense), FLOP/s.
pub const H200_BF16_PEAK: f64 = 989.5e12;

/// `freeze` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Correctness before timing (tiny model, f32 and bf16): frozen weights bit-identical,
    /// cached loss trajectory == uncached (GPU and host tiers, with prefix growth), AutoFreeze
    /// online == replay of its recorded norms. Exit 1 when one fails.
    Check,
    /// Per-unit forward/backward/optimizer times, whole iterations and cache bandwidths.
    Micro {
        #[arg(long, default_value = "val-bert-base")]
        model: String,
        #[arg(long, value_delimiter = ',', default_value = "16,32")]
        batches: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "128,256")]
        seqs: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "bf16,f32")]
        dtypes: Vec<String>,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 10)]
        repeats: usize,
        #[arg(long, default_value_t = 32)]
        classes: usize,
        #[arg(long, default_value = "h200-freeze-micro")]
        set: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// End-to-end runs: fixed k (no cache) for every k in --ks; fixed k for --cache-ks with each
    /// cache tier; each of --policies with each tier (none included).
    E2e {
        #[arg(long, default_value = "val-bert-base")]
        model: String,
        /// Corpus (the committed one); a synthetic corpus when absent (tests).
        #[arg(long)]
        corpus: Option<PathBuf>,
        #[arg(long, value_delimiter = ',', default_value = "16,32")]
        batches: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "128,256")]
        seqs: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "bf16,f32")]
        dtypes: Vec<String>,
        /// Frozen prefixes timed without a cache (units: embeddings, blocks, head).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "0,1,2,3,4,5,6,7,8,9,10,11,12,13"
        )]
        ks: Vec<usize>,
        /// Frozen prefixes timed with each cache tier.
        #[arg(long, value_delimiter = ',', default_value = "4,8,13")]
        cache_ks: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "gpu,ram")]
        tiers: Vec<String>,
        #[arg(
            long,
            value_delimiter = ';',
            default_value = "freezeout:schedule=linear,t0=0.5;autofreeze:interval=2"
        )]
        policies: Vec<String>,
        /// AutoFreeze's one-epoch lag before cache writes.
        #[arg(long)]
        lag: bool,
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        #[arg(long, default_value_t = 6)]
        iters_per_epoch: usize,
        #[arg(long, default_value_t = 1e-4)]
        lr: f64,
        #[arg(long, default_value_t = 32)]
        classes: usize,
        #[arg(long, default_value = "h200-freeze-e2e")]
        set: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// A real fine-tuning run: loss per epoch, held-out accuracy, the gradient-norm trace
    /// (`<set>-gradnorms.csv`, `step,layer,grad_norm`) and the realised timeline
    /// (`<set>-timeline.csv`).
    Train {
        #[arg(long, default_value = "val-bert-base")]
        model: String,
        #[arg(long)]
        corpus: Option<PathBuf>,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 128)]
        seq: usize,
        #[arg(long, default_value = "bf16")]
        dtype: String,
        #[arg(long, default_value = "autofreeze:interval=10")]
        policy: String,
        #[arg(long, default_value = "none")]
        tier: String,
        #[arg(long)]
        lag: bool,
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        #[arg(long, default_value_t = usize::MAX)]
        max_samples: usize,
        #[arg(long, default_value_t = 1e-4)]
        lr: f64,
        #[arg(long, default_value_t = 20)]
        warmup: usize,
        /// Record gradient norms every this many iterations when the policy needs none.
        #[arg(long)]
        norm_interval: Option<u64>,
        #[arg(long, default_value_t = 32)]
        classes: usize,
        #[arg(long, default_value = "h200-freeze-trace")]
        set: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn dtype(s: &str) -> Result<DType> {
    match s {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        o => bail!("--dtype {o}: expected f32 or bf16"),
    }
}

fn corpus(p: &Option<PathBuf>) -> Result<Vec<u8>> {
    match p {
        Some(p) => std::fs::read(p).with_context(|| format!("--corpus {}", p.display())),
        None => Ok(synthetic_corpus(40, 3000, 9)),
    }
}

fn sink(out: &Path, set: &str) -> Result<Sink> {
    Ok(Sink::open(out, set, provenance())
        .with_context(|| format!("--out {}", out.display()))?
        .with_technique("freeze"))
}

/// Runs the `freeze` subcommand.
///
/// # Errors
/// Bad arguments (one line naming the flag), I/O or device errors.
pub fn run(g: &Global, args: Args) -> Result<ExitCode> {
    let cpu = g.cpu;
    match args.mode {
        Mode::Check => check(&device(cpu)?),
        Mode::Micro {
            model,
            batches,
            seqs,
            dtypes,
            warmup,
            repeats,
            classes,
            set,
            out,
            seed,
        } => {
            positive("--batches", &batches)?;
            positive("--seqs", &seqs)?;
            positive("--repeats", &[repeats])?;
            let dts = dtypes
                .iter()
                .map(|d| dtype(d))
                .collect::<Result<Vec<_>>>()?;
            let cfg = BertCfg::preset(&model, classes)?;
            if let Some(s) = seqs.iter().find(|&&s| s > cfg.max_pos) {
                bail!(
                    "--seqs {s}: expected at most {} (positions of {model})",
                    cfg.max_pos
                );
            }
            let dev = device(cpu)?;
            let mut sk = sink(&out, &set)?;
            let t = Timing { warmup, repeats };
            for (&dt, dn) in dts.iter().zip(&dtypes) {
                let m = Bert::new(&cfg, dt, &dev, seed)?;
                for &b in &batches {
                    for &s in &seqs {
                        let base = FRow {
                            kind: "micro".into(),
                            model: model.clone(),
                            batch: b,
                            seq: s,
                            ..Default::default()
                        }
                        .with("dtype", dn);
                        let rs = bench::micro(&m, b, s, t, &dev, &base)?;
                        for r in &rs {
                            rows::write(&mut sk, &set, r)?;
                        }
                        let get = |u: &str, metric: &str| {
                            rs.iter()
                                .find(|r| r.param("unit") == Some(u) && r.metric == metric)
                                .map_or(f64::NAN, |r| r.value)
                        };
                        let it = rs
                            .iter()
                            .find(|r| r.metric == "tflops_per_s" && r.param("k") == Some("0"))
                            .map_or(f64::NAN, |r| r.value);
                        eprintln!(
                            "micro {model} {dn} batch {b} seq {s}: block fwd {:.3} ms, fwd+bwd {:.3} ms, opt {:.3} ms; iteration {:.2} ms = {it:.1} TFLOP/s ({:.1}% of bf16 peak); RAM write {:.1} GB/s read {:.1} GB/s",
                            get("block", "forward_s") * 1e3,
                            get("block", "fwd_bwd_both_s") * 1e3,
                            get("block", "optimizer_s") * 1e3,
                            get("all", "iter_s") * 1e3,
                            it * 1e12 / H200_BF16_PEAK * 100.0,
                            get("cache", "ram_write_bytes_per_s") / 1e9,
                            get("cache", "ram_read_bytes_per_s") / 1e9,
                        );
                    }
                }
            }
            eprintln!("micro: wrote {} rows to {}", sk.rows, sk.path().display());
            Ok(ExitCode::SUCCESS)
        }
        Mode::E2e {
            model,
            corpus: cp,
            batches,
            seqs,
            dtypes,
            ks,
            cache_ks,
            tiers,
            policies,
            lag,
            epochs,
            iters_per_epoch,
            lr,
            classes,
            set,
            out,
            seed,
        } => {
            positive("--batches", &batches)?;
            positive("--seqs", &seqs)?;
            positive("--epochs", &[epochs])?;
            positive("--iters-per-epoch", &[iters_per_epoch])?;
            let dts = dtypes
                .iter()
                .map(|d| dtype(d))
                .collect::<Result<Vec<_>>>()?;
            let cfg = BertCfg::preset(&model, classes)?;
            let tiers = tiers
                .iter()
                .map(|t| Tier::parse(t).map_err(anyhow::Error::msg))
                .collect::<Result<Vec<_>>>()?;
            let pols = policies
                .iter()
                .map(|p| Policy::parse(p).map_err(|e| anyhow::anyhow!("--policies: {e}")))
                .collect::<Result<Vec<_>>>()?;
            if let Some(k) = ks.iter().chain(&cache_ks).find(|&&k| k >= cfg.units()) {
                bail!(
                    "--ks {k}: expected 0..={} (units of {model} but the head, which always trains)",
                    cfg.units() - 1
                );
            }
            let text = corpus(&cp)?;
            let dev = device(cpu)?;
            // The grid: (policy, tier) per shape.
            let mut grid: Vec<(Policy, Tier)> = ks
                .iter()
                .map(|&k| (Policy::Fixed { k, from: 0 }, Tier::None))
                .collect();
            for &k in &cache_ks {
                for &t in tiers.iter().filter(|t| **t != Tier::None) {
                    grid.push((Policy::Fixed { k, from: 0 }, t));
                }
            }
            for p in &pols {
                grid.push((p.clone(), Tier::None));
                for &t in tiers.iter().filter(|t| **t != Tier::None) {
                    grid.push((p.clone(), t));
                }
            }
            let shapes = dts.len() * batches.len() * seqs.len();
            eprintln!(
                "e2e {set}: {} runs × {shapes} shapes × {} iterations = {} timed iterations (plus one untimed epoch per shape)",
                grid.len(),
                epochs * iters_per_epoch,
                grid.len() * shapes * epochs * iters_per_epoch
            );
            let mut sk = sink(&out, &set)?;
            for (&dt, dn) in dts.iter().zip(&dtypes) {
                let init = Bert::new(&cfg, dt, &dev, seed)?;
                for &s in &seqs {
                    let data = Dataset::new(&text, cfg.vocab, classes, s, 0.1, seed)?;
                    for &b in &batches {
                        let base = FRow {
                            kind: "e2e".into(),
                            model: model.clone(),
                            batch: b,
                            seq: s,
                            ..Default::default()
                        }
                        .with("dtype", dn)
                        .with("samples", b * iters_per_epoch);
                        let rc0 = RunCfg {
                            batch: b,
                            epochs,
                            max_samples: b * iters_per_epoch,
                            lr,
                            warmup: 2,
                            policy: Policy::None,
                            tier: Tier::None,
                            lag,
                            norm_interval: None,
                        };
                        if data.batches(b, rc0.max_samples) < iters_per_epoch {
                            bail!("--iters-per-epoch {iters_per_epoch}: the task has only {} batches of {b} at seq {s}", data.batches(b, usize::MAX));
                        }
                        // Untimed warm-up epoch (allocator, cuBLAS handles).
                        bench::e2e(
                            &init,
                            &data,
                            &RunCfg {
                                epochs: 1,
                                ..rc0.clone()
                            },
                            &dev,
                            &base,
                            &mut |_| {},
                        )?;
                        for (p, t) in &grid {
                            let rc = RunCfg {
                                policy: p.clone(),
                                tier: *t,
                                ..rc0.clone()
                            };
                            let (rs, o) = bench::e2e(&init, &data, &rc, &dev, &base, &mut |_| {})?;
                            for r in &rs {
                                rows::write(&mut sk, &set, r)?;
                            }
                            let es = o.epoch_s();
                            eprintln!(
                                "e2e {model} {dn} b{b} s{s} {} tier {}: epochs {:?} ms, timeline {:?}",
                                p.label(),
                                t.name(),
                                es.iter().map(|x| (x * 1e4).round() / 10.0).collect::<Vec<_>>(),
                                o.timeline.changes
                            );
                        }
                    }
                }
            }
            eprintln!("e2e: wrote {} rows to {}", sk.rows, sk.path().display());
            Ok(ExitCode::SUCCESS)
        }
        Mode::Train {
            model,
            corpus: cp,
            batch,
            seq,
            dtype: dn,
            policy,
            tier,
            lag,
            epochs,
            max_samples,
            lr,
            warmup,
            norm_interval,
            classes,
            set,
            out,
            seed,
        } => {
            positive("--batch", &[batch])?;
            positive("--epochs", &[epochs])?;
            let dt = dtype(&dn)?;
            let pol = Policy::parse(&policy).map_err(|e| anyhow::anyhow!("--policy: {e}"))?;
            let tier = Tier::parse(&tier).map_err(|e| anyhow::anyhow!("--{e}"))?;
            let cfg = BertCfg::preset(&model, classes)?;
            if seq > cfg.max_pos || seq < 2 {
                bail!("--seq {seq}: expected 2..={}", cfg.max_pos);
            }
            let text = corpus(&cp)?;
            let dev = device(cpu)?;
            let data = Dataset::new(&text, cfg.vocab, classes, seq, 0.1, seed)?;
            eprintln!(
                "train {model} {dn}: {} classes, {} training and {} held-out snippets of {seq} tokens, policy {}, tier {}",
                data.classes.len(),
                data.train.len(),
                data.held_out.len(),
                pol.label(),
                tier.name()
            );
            let mut m = Bert::new(&cfg, dt, &dev, seed)?;
            let (l0, a0) = train::evaluate(&m, &data.held_out, batch, &dev)?;
            let rc = RunCfg {
                batch,
                epochs,
                max_samples,
                lr,
                warmup,
                policy: pol.clone(),
                tier,
                lag,
                norm_interval,
            };
            let o = train::run(&mut m, &data, &rc, &dev, &mut |s| {
                eprintln!("train {model}: {s}")
            })?;
            let (l1, a1) = train::evaluate(&m, &data.held_out, batch, &dev)?;
            eprintln!(
                "train {model}: held-out loss {l0:.4} → {l1:.4}, accuracy {:.1}% → {:.1}% (chance {:.1}%), timeline {:?}",
                a0 * 100.0,
                a1 * 100.0,
                100.0 / classes as f64,
                o.timeline.changes
            );
            let mut sk = sink(&out, &set)?;
            let base = FRow {
                kind: "train".into(),
                model: model.clone(),
                batch,
                seq,
                ..Default::default()
            }
            .with("dtype", &dn)
            .with("policy", pol.label())
            .with("tier", tier.name())
            .with("lag", lag)
            .with("epochs", epochs)
            .with("iters_per_epoch", o.iters_per_epoch)
            .with("samples", o.iters_per_epoch * batch);
            let mut rs = vec![
                FRow::one(&base, "held_out_loss_initial", l0, "nats"),
                FRow::one(&base, "held_out_loss", l1, "nats"),
                FRow::one(&base, "held_out_accuracy_initial", a0, "fraction"),
                FRow::one(&base, "held_out_accuracy", a1, "fraction"),
                FRow {
                    repeats: o.iters.len(),
                    ..FRow::one(&base, "total_s", o.iters.iter().map(|r| r.secs).sum(), "s")
                },
            ];
            for (e, (es, el)) in o.epoch_s().iter().zip(o.epoch_loss()).enumerate() {
                rs.push(FRow::one(&base.with("epoch", e), "epoch_s", *es, "s"));
                rs.push(FRow::one(&base.with("epoch", e), "loss", el, "nats"));
            }
            for (s, k) in o.timeline.changes.iter().filter(|c| **c != (0, 0)) {
                rs.push(FRow::one(
                    &base.with("frozen", k),
                    "freeze_step",
                    *s as f64,
                    "iterations",
                ));
            }
            for r in &rs {
                rows::write(&mut sk, &set, r)?;
            }
            if o.norm_interval.is_some() {
                let p = out.join(format!("{set}-gradnorms.csv"));
                let head = format!(
                    "# perfcast-gpu freeze train: {model} {dn} batch {batch} seq {seq}, policy {}, per-unit gradient L2 norm accumulated over each interval of {} iterations, recorded at iterations completed; layers as perfcast's bert-base profile names them\n",
                    pol.label(),
                    o.norm_interval.unwrap_or(0)
                );
                std::fs::write(&p, head + &o.norms.to_csv(&cfg.unit_names()))
                    .with_context(|| p.display().to_string())?;
                eprintln!("train: wrote {}", p.display());
            }
            let p = out.join(format!("{set}-timeline.csv"));
            let mut tl = format!(
                "# realised frozen-prefix timeline of {}: total_steps {}\nstep,frozen_layers\n",
                pol.label(),
                o.timeline.total_steps
            );
            for (s, k) in &o.timeline.changes {
                tl.push_str(&format!("{s},{k}\n"));
            }
            std::fs::write(&p, tl).with_context(|| p.display().to_string())?;
            eprintln!(
                "train: wrote {} rows to {} and {}",
                sk.rows,
                sk.path().display(),
                p.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The correctness checks on `dev`; exit 1 when one fails.
fn check(dev: &Device) -> Result<ExitCode> {
    let text = synthetic_corpus(4, 400, 3);
    let cfg = BertCfg::preset("val-bert-tiny", 4)?;
    let data = Dataset::new(&text, cfg.vocab, 4, 16, 0.2, 7)?;
    let rc = |p: &str, tier: Tier, epochs: usize| RunCfg {
        batch: 8,
        epochs,
        max_samples: 64,
        lr: 3e-3,
        warmup: 2,
        policy: Policy::parse(p).expect("valid policy"),
        tier,
        lag: false,
        norm_interval: None,
    };
    let mut ok = true;
    let mut report = |name: &str, pass: bool, detail: String| {
        ok &= pass;
        println!(
            "check freeze {name}: {detail}: {}",
            if pass { "PASS" } else { "FAIL" }
        );
    };
    for (dt, dn) in [(DType::F32, "f32"), (DType::BF16, "bf16")] {
        let mut m = Bert::new(&cfg, dt, dev, 1)?;
        let before: Vec<_> = (0..cfg.units())
            .map(|u| m.snapshot(u))
            .collect::<candle_core::Result<_>>()?;
        train::run(
            &mut m,
            &data,
            &rc("fixed:k=2", Tier::Gpu, 2),
            dev,
            &mut |_| {},
        )?;
        let same: Vec<bool> = (0..cfg.units())
            .map(|u| m.snapshot(u).map(|s| s == before[u]))
            .collect::<candle_core::Result<_>>()?;
        report(
            &format!("frozen weights bit-identical ({dn}, fixed:k=2)"),
            same == [true, true, false, false],
            format!("unit unchanged {same:?}"),
        );
        let p = "freezeout:schedule=linear,t0=0.3";
        let base = train::run(
            &mut Bert::new(&cfg, dt, dev, 1)?,
            &data,
            &rc(p, Tier::None, 3),
            dev,
            &mut |_| {},
        )?;
        for tier in [Tier::Gpu, Tier::Ram] {
            let c = train::run(
                &mut Bert::new(&cfg, dt, dev, 1)?,
                &data,
                &rc(p, tier, 3),
                dev,
                &mut |_| {},
            )?;
            let diff = base
                .iters
                .iter()
                .zip(&c.iters)
                .map(|(a, b)| (a.loss - b.loss).abs())
                .fold(0.0, f64::max);
            let reads = c.iters.iter().filter(|r| r.read > 0).count();
            report(
                &format!("cached == uncached loss ({dn}, {p}, tier {})", tier.name()),
                diff <= 1e-5 && reads > 0,
                format!("max |Δloss| {diff:.2e} (tolerance 1e-5) over {} iterations, {reads} cache reads", c.iters.len()),
            );
        }
        let o = train::run(
            &mut Bert::new(&cfg, dt, dev, 1)?,
            &data,
            &rc("autofreeze:interval=2", Tier::Gpu, 3),
            dev,
            &mut |_| {},
        )?;
        let rep = replay_autofreeze(&o.norms, cfg.units(), o.timeline.total_steps, 2, 50.0);
        report(
            &format!("AutoFreeze online == replay of its norms ({dn})"),
            rep == o.timeline,
            format!("online {:?}, replay {:?}", o.timeline.changes, rep.changes),
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
