//! `perfcast-gpu gradcomp {step,layers,ddp}`: real data-parallel training steps (issue 14: one
//! GPU with the collective replaced by a local reduction; issue 15: one rank per GPU over NCCL).
//!
//! Rows (technique `gradcomp`, [`crate::measure`] contract, times in seconds, median over the
//! timed repeats of [`crate::timing`] with p10–p90 spread):
//! - `step` / `ddp`: `kind=step`, `model` the harness model, `batch` samples per rank, params
//!   `method=<codec>;bucket_bytes=<cap>;world=<ranks>;comm=local|nccl;dtype=f32;seq=<S>` (`ddp`
//!   adds `overlap=0|1` and any NCCL transport knob set), metric `step_s`: one whole step
//!   (forward, unit-by-unit backward with every bucket's codec round, AdamW), device synchronized
//!   before and after. `ddp` also writes metric `step_nocomm_s` (same params): the same step
//!   with the collectives replaced by no-ops, so `step_s − step_nocomm_s` is the communication
//!   the step exposes.
//! - `layers`: `kind=layer`, params `block=<u>;name=<embeddings|layer|head>;pass=forward|backward;
//!   seq=<S>;dtype=f32` (`u` in forward order: 0 the embeddings, 1..=L the blocks, L+1 the head,
//!   whose forward and backward include the loss), metric `time_s`, each unit timed alone between
//!   synchronizations; `kind=optimizer`, params `optimizer=adamw;seq=<S>;dtype=f32`, metric
//!   `time_s`: every unit's AdamW step.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use candle_core::Device;
use clap::{Args as ClapArgs, Subcommand};

use super::codec::{Codec, LocalComm};
use super::models::{build, Net};
use super::step::{backward_unit, forward_unit, optimizers, Engine, Forward, LR};
use crate::cli::{positive, Global};
use crate::measure::{n, provenance, Params, Row, Sink, Stats};
use crate::timing::{synced, Repeats};

/// `perfcast-gpu gradcomp …`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Flags every subcommand shares.
#[derive(ClapArgs, Debug, Clone)]
pub struct Common {
    /// Model: `bert` (val-bert-base), `gpt2` (val-gpt2), or a preset (`val-bert-tiny`,
    /// `val-gpt2-tiny` for CPU runs); comma-separated for several.
    #[arg(long, value_delimiter = ',', default_value = "bert")]
    pub model: Vec<String>,
    /// Samples per step (per rank); comma-separated for several.
    #[arg(long, value_delimiter = ',', default_value = "32")]
    pub batch: Vec<usize>,
    /// Tokens per sample.
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Untimed steps (or passes) first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Timed steps (or passes).
    #[arg(long, default_value_t = 10)]
    pub repeats: usize,
    /// Seed of the weights and batches.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Measurement set name (the CSV is `<out>/<set>.csv`).
    #[arg(long, default_value = "h200-gradcomp")]
    pub set: String,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// Flags of `step` and `ddp`.
#[derive(ClapArgs, Debug, Clone)]
pub struct StepArgs {
    /// Model, batch, timing and output flags.
    #[command(flatten)]
    pub common: Common,
    /// Codec (`none`, …); comma-separated for several.
    #[arg(long, value_delimiter = ',', default_value = "none")]
    pub method: Vec<String>,
    /// DDP bucket cap, bytes (default 25 MiB, PyTorch DDP's; the first bucket is capped at
    /// 1 MiB); comma-separated for several.
    #[arg(long, value_delimiter = ',', default_value = "26214400")]
    pub bucket_bytes: Vec<usize>,
    /// First bucket's cap, bytes (PyTorch DDP's and perfcast's 1 MiB; rows name it only when
    /// changed).
    #[arg(long, default_value_t = super::bucket::FIRST_BUCKET_BYTES)]
    pub first_bucket_bytes: usize,
    /// Ranks: `step` emulates them with a local reduction; `ddp` uses this many GPUs (default:
    /// every GPU).
    #[arg(long, value_delimiter = ',')]
    pub world: Vec<usize>,
    /// `ddp`: 1 runs the codec rounds on a communication stream overlapping backward, 0 on the
    /// compute stream in order.
    #[arg(long, default_value_t = 1)]
    pub overlap: u8,
    /// `ddp`: 1 also times every point with the collectives replaced by no-ops (metric
    /// `step_nocomm_s`; the step's exposed communication is the difference), 0 skips it.
    #[arg(long, default_value_t = 1)]
    pub nocomm: u8,
    /// `ddp` with `--overlap 1`: the communication stream's priority, `normal` (the default, as
    /// runs 19–28 measured) or `high` (the context's greatest stream priority, as PyTorch's
    /// `ProcessGroupNCCL.Options.is_high_priority_stream`): the block scheduler then starts a
    /// collective's (and the link emulation's) blocks ahead of queued compute blocks instead
    /// of after the running compute kernel drains. Rows say `comm_priority=high` when set.
    #[arg(long, default_value = "normal")]
    pub comm_priority: String,
    /// `ddp` diagnostic: 1 times every step with each collective moving one element (the ranks
    /// still wait for each other at every collective) and the local tensors standing in for the
    /// results; the checked step before timing communicates for real. Rows say `token_only=1`
    /// (not a DDP step: keep such rows out of validated sets).
    #[arg(long, default_value_t = 0)]
    pub token_only: u8,
    /// `ddp`: emulate a link of this many GB/s (10⁹ bytes/s) per rank: after each collective
    /// of nccl-tests size S the communication stream waits S·f / bandwidth (f: the bus factor,
    /// 2(p−1)/p for all-reduce, (p−1)/p for all-gather), delaying every later collective (rows
    /// say `link_bytes_per_s`). Unset: the GPUs' own links.
    #[arg(long)]
    pub link_gbps: Option<f64>,
}

#[cfg(test)]
#[test]
fn default_cap_is_the_library_default() {
    assert_eq!(26214400, super::bucket::DEFAULT_BUCKET_BYTES);
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The codecs alone: `codec-check`, `codec-micro`.
    #[command(flatten)]
    Codec(super::cli::Cmd),
    /// Whole single-GPU steps with the collective replaced by a local reduction (`comm=local`).
    Step(StepArgs),
    /// Calibration micro-measurements: per-unit forward and backward, and the optimizer.
    Layers(Common),
    /// Multi-GPU DDP steps over NCCL, one rank (thread) per GPU (`comm=nccl`; CUDA only).
    Ddp(StepArgs),
}

/// Runs `gradcomp …`.
///
/// # Errors
/// A bad flag value, a device, codec or write failure (one line each).
pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    match a.cmd {
        Cmd::Codec(c) => super::cli::run(g, c),
        Cmd::Step(s) => step(g, &s),
        Cmd::Layers(c) => layers(g, &c),
        Cmd::Ddp(s) => super::ddp::run(&s),
    }
}

/// The codec named `name`.
///
/// # Errors
/// An unknown name, listing the known ones.
pub fn codec_for(name: &str) -> Result<Box<dyn Codec>> {
    // Seed of the codecs' draws (Random-k positions, QSGD rounding, PowerSGD's Q); the same on
    // every rank, recorded in the rows as `codec_seed`.
    super::codec::build(name, CODEC_SEED)
}

/// Seed of every codec's random draws (rows carry it as `codec_seed`).
pub const CODEC_SEED: u64 = 1;

/// Checks the shared flags.
///
/// # Errors
/// A zero batch, seq, repeat count or bucket cap.
pub fn check(c: &Common) -> Result<()> {
    positive("--batch", &c.batch)?;
    positive("--seq", &[c.seq])?;
    positive("--repeats", &[c.repeats])?;
    Ok(())
}

/// The sink of `c` (technique `gradcomp`).
///
/// # Errors
/// The folder cannot be written.
pub fn sink(c: &Common) -> Result<Sink> {
    Ok(Sink::open(&c.out, &c.set, provenance())
        .with_context(|| format!("opening {}", c.out.display()))?
        .with_technique("gradcomp"))
}

/// `params` with `first_bucket_bytes` when it is not the default 1 MiB.
pub fn first_bucket_param(params: Params, first: usize) -> Params {
    if first == super::bucket::FIRST_BUCKET_BYTES {
        params
    } else {
        params.with("first_bucket_bytes", first)
    }
}

/// A `kind=step` row.
pub fn step_row(set: &str, model: &str, batch: usize, params: Params, st: &Stats) -> Row {
    time_row(set, "step", model, batch, params, "step_s", st)
}

/// A timed row (median seconds with repeats and spread) of `kind` and `metric`.
pub fn time_row(
    set: &str,
    kind: &str,
    model: &str,
    batch: usize,
    params: Params,
    metric: &str,
    st: &Stats,
) -> Row {
    Row {
        set: set.into(),
        kind: kind.into(),
        model: model.into(),
        batch: n(batch),
        params,
        metric: metric.into(),
        value: st.median,
        repeats: st.n as u64,
        spread: Some(st.spread()),
        unit: "s".into(),
        ..Row::default()
    }
}

fn step(g: &Global, a: &StepArgs) -> Result<ExitCode> {
    let c = &a.common;
    check(c)?;
    positive("--bucket-bytes", &a.bucket_bytes)?;
    positive("--first-bucket-bytes", &[a.first_bucket_bytes])?;
    let worlds = if a.world.is_empty() {
        vec![1]
    } else {
        a.world.clone()
    };
    positive("--world", &worlds)?;
    for m in &a.method {
        codec_for(m)?;
    }
    let dev = crate::cli::device(g.cpu)?;
    let mut sink = sink(c)?;
    println!(
        "{:>14} {:>5} {:>10} {:>10} {:>5} {:>7} {:>10} {:>7} {:>8}",
        "model", "batch", "method", "bucket_B", "world", "buckets", "step_ms", "spread", "TFLOP/s"
    );
    for name in &c.model {
        let net = build(name, &dev, c.seed)?;
        for &b in &c.batch {
            let batch = net.batch(b, c.seq, c.seed + 1, &dev)?;
            for m in &a.method {
                for &cap in &a.bucket_bytes {
                    for &w in &worlds {
                        let mut e = Engine::new(net.as_ref(), a.first_bucket_bytes, cap)?;
                        let mut codec = codec_for(m)?;
                        let mut comm = LocalComm { world: w };
                        let times = Repeats::new(c.warmup, c.repeats).run(|_| {
                            synced(&dev, || {
                                e.step(net.as_ref(), &batch, codec.as_mut(), &mut comm)
                                    .map(|_| ())
                            })
                            .map(|((), t)| t)
                        })?;
                        // Faults the codec flagged on the device, read after the clock.
                        codec.verify()?;
                        let st = Stats::of(&times);
                        println!(
                            "{:>14} {b:>5} {m:>10} {cap:>10} {w:>5} {:>7} {:>10.3} {:>7.3} {:>8.1}",
                            net.name(),
                            e.plan.buckets.len(),
                            st.median * 1e3,
                            st.spread(),
                            net.train_flops(b, c.seq) / st.median / 1e12
                        );
                        let params = Params::new()
                            .with("method", codec.name())
                            .with("codec_seed", CODEC_SEED)
                            .with("bucket_bytes", cap)
                            .with("world", w)
                            .with("comm", "local")
                            .with("dtype", "f32")
                            .with("seq", c.seq);
                        let params = first_bucket_param(params, a.first_bucket_bytes);
                        sink.write(&step_row(&c.set, &net.name(), b, params, &st))?;
                    }
                }
            }
        }
    }
    println!("wrote {} rows to {}", sink.rows, sink.path().display());
    Ok(ExitCode::SUCCESS)
}

/// Per-unit forward and backward seconds of every timed pass, and the optimizer's seconds.
pub struct LayerTimes {
    /// `[repeat][unit]` forward seconds.
    pub forward_s: Vec<Vec<f64>>,
    /// `[repeat][unit]` backward seconds.
    pub backward_s: Vec<Vec<f64>>,
    /// Optimizer seconds per repeat.
    pub optimizer_s: Vec<f64>,
}

/// Times each unit's forward and backward alone (device synchronized around each), and every
/// unit's AdamW step, over `reps` passes of `net` on `batch`.
///
/// # Errors
/// Device errors.
pub fn time_layers(
    net: &dyn Net,
    batch: &super::models::Batch,
    dev: &Device,
    reps: Repeats,
) -> Result<LayerTimes> {
    let units = net.units();
    let mut opts = optimizers(net.vars(), LR)?;
    let out = reps.run(|_| -> Result<(Vec<f64>, Vec<f64>, f64)> {
        let mut fwd = Forward {
            inputs: Vec::with_capacity(units),
            outs: Vec::with_capacity(units),
        };
        let mut tf = Vec::with_capacity(units);
        for u in 0..units {
            let x = if u == 0 { &batch.ids } else { &fwd.outs[u - 1] };
            let ((i, y), t) = synced(dev, || forward_unit(net, u, x, batch))?;
            fwd.inputs.push(i);
            fwd.outs.push(y);
            tf.push(t);
        }
        let mut tb = vec![0.0; units];
        let mut g = None;
        let mut all = candle_core::backprop::GradStore::default();
        for u in (0..units).rev() {
            let ((gs, g_in), t) = synced(dev, || backward_unit(&fwd, u, g.as_ref()))?;
            tb[u] = t;
            all.extend(gs)?;
            g = g_in;
        }
        let ((), to) = synced(dev, || -> candle_core::Result<()> {
            for o in opts.iter_mut() {
                candle_nn::optim::Optimizer::step(o, &all)?;
            }
            Ok(())
        })?;
        Ok((tf, tb, to))
    })?;
    Ok(LayerTimes {
        forward_s: out.iter().map(|x| x.0.clone()).collect(),
        backward_s: out.iter().map(|x| x.1.clone()).collect(),
        optimizer_s: out.iter().map(|x| x.2).collect(),
    })
}

fn layers(g: &Global, c: &Common) -> Result<ExitCode> {
    check(c)?;
    let dev = crate::cli::device(g.cpu)?;
    let mut sink = sink(c)?;
    for name in &c.model {
        let net = build(name, &dev, c.seed)?;
        for &b in &c.batch {
            let batch = net.batch(b, c.seq, c.seed + 1, &dev)?;
            let lt = time_layers(
                net.as_ref(),
                &batch,
                &dev,
                Repeats::new(c.warmup, c.repeats),
            )?;
            let mut sum = (0.0, 0.0);
            for u in 0..net.units() {
                for (pass, xs) in [("forward", &lt.forward_s), ("backward", &lt.backward_s)] {
                    let st = Stats::of(&xs.iter().map(|r| r[u]).collect::<Vec<_>>());
                    if pass == "forward" {
                        sum.0 += st.median;
                    } else {
                        sum.1 += st.median;
                    }
                    sink.write(&time_row(
                        &c.set,
                        "layer",
                        &net.name(),
                        b,
                        Params::new()
                            .with("block", u)
                            .with("name", net.kind(u).as_str())
                            .with("pass", pass)
                            .with("seq", c.seq)
                            .with("dtype", "f32"),
                        "time_s",
                        &st,
                    ))?;
                }
            }
            let st = Stats::of(&lt.optimizer_s);
            sink.write(&time_row(
                &c.set,
                "optimizer",
                &net.name(),
                b,
                Params::new()
                    .with("optimizer", "adamw")
                    .with("seq", c.seq)
                    .with("dtype", "f32"),
                "time_s",
                &st,
            ))?;
            println!(
                "{:>14} batch {b:>4}: forward {:.3} ms, backward {:.3} ms, optimizer {:.3} ms (sums of unit medians; {:.1} TFLOP/s over forward + backward)",
                net.name(),
                sum.0 * 1e3,
                sum.1 * 1e3,
                st.median * 1e3,
                net.train_flops(b, c.seq) / (sum.0 + sum.1) / 1e12
            );
        }
    }
    println!("wrote {} rows to {}", sink.rows, sink.path().display());
    Ok(ExitCode::SUCCESS)
}
