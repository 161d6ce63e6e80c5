//! Timed measurements: per-unit micro-measurements (what `perfcast calibrate` fits) and
//! end-to-end runs (what `perfcast validate` predicts).
//!
//! **Protocol.** Every timed call runs between two device synchronizations, after `warmup`
//! untimed calls; the median and spread (`(p90 − p10) / median`) of `repeats` calls are
//! recorded.
//!
//! **Micro metrics** per `(batch, seq, dtype)` and unit kind (`embeddings`, one encoder block —
//! all blocks have the same shapes —, `head`), each with `unit` and `unit_index` parameters:
//! - `forward_s`: the trainable forward (master weights, bf16 casts under mixed precision);
//! - `forward_frozen_s`: the frozen forward (detached weights already in the activation dtype);
//! - `fwd_bwd_weight_s`: trainable forward + backward of `sum(y · r)` with a constant input
//!   (weight gradients only);
//! - `fwd_bwd_input_s`: frozen weights, input a variable (input gradient only; not for
//!   `embeddings`, whose input is token ids);
//! - `fwd_bwd_both_s`: trainable weights and a variable input (both gradients);
//! - `optimizer_s`: one AdamW step of the unit's parameters;
//! - `grad_norm_s`: the unit's gradient L2 norm accumulated on the device (AutoFreeze's cost);
//! - `iter_s` (unit `all`, parameter `k`): a whole training iteration (batch upload, forward,
//!   loss, backward, AdamW, loss read) with `k = 0` and with every unit but the head frozen,
//!   timed by the training loop itself ([`train::run`]) on seeded random tokens;
//! - cache tiers (unit `cache`): `gpu_copy_bytes_per_s` (device-to-device copy of one batch's
//!   hidden states), `ram_write_bytes_per_s` (device → page-locked host slot) and
//!   `ram_read_bytes_per_s` (slot → new device tensor), both through the training loop's own
//!   [`super::ramstore::RamStore`], with the bytes as parameter `bytes`.
//!
//! Under `backward` the micro metrics of unit kinds subtract: weight gradient ≈
//! `fwd_bwd_both_s − fwd_bwd_input_s + forward_frozen_s − forward_s`, and so on; the fit lives
//! in the library (`perfcast calibrate`).

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::optim::Optimizer;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::data::Dataset;
use super::model::Bert;
use super::rows::FRow;
use super::train::{self, bytes, grad_norm, optimizers, RunCfg, Tier};
use crate::measure::Stats;
use crate::timing::{synced, Repeats};

/// Warm-up and repeats of one timed call.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Untimed calls first.
    pub warmup: usize,
    /// Timed calls.
    pub repeats: usize,
}

/// Times `f` under the protocol (see the module docs; [`crate::timing`]).
///
/// # Errors
/// The first error of `f` or of a synchronization.
pub fn time(dev: &Device, t: Timing, mut f: impl FnMut() -> Result<()>) -> Result<Stats> {
    let v =
        Repeats::new(t.warmup, t.repeats.max(1)).run(|_| synced(dev, &mut f).map(|((), s)| s))?;
    Ok(Stats::of(&v))
}

/// Seeded random token ids `[b, s]` below `vocab` (first token `[CLS]`).
///
/// # Errors
/// A device error.
pub fn random_ids(b: usize, s: usize, vocab: usize, seed: u64, dev: &Device) -> Result<Tensor> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let v: Vec<u32> = (0..b * s)
        .map(|i| {
            if i % s == 0 {
                super::data::CLS
            } else {
                rng.random_range(2..vocab as u32)
            }
        })
        .collect();
    Tensor::from_vec(v, (b, s), dev)
}

fn seeded(shape: &[usize], seed: u64, dt: DType, dev: &Device) -> Result<Tensor> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, shape, dev)?.to_dtype(dt)
}

/// Micro-measurements of `m` at `(batch, seq)` (see the module docs); rows carry `base`'s
/// fields plus `unit`, `unit_index`.
///
/// # Errors
/// Device errors.
pub fn micro(
    m: &Bert,
    batch: usize,
    seq: usize,
    t: Timing,
    dev: &Device,
    base: &FRow,
) -> Result<Vec<FRow>> {
    let cfg = &m.cfg;
    let dt = m.dtype;
    let mut out = Vec::new();
    let ids = random_ids(batch, seq, cfg.vocab, 3, dev)?;
    let hid = seeded(&[batch, seq, cfg.hidden], 4, dt, dev)?;
    let head_u = cfg.units() - 1;
    for (u, kind) in [(0, "embeddings"), (1, "block"), (head_u, "head")] {
        let x = if u == 0 { ids.clone() } else { hid.clone() };
        let b = base.with("unit", kind).with("unit_index", u);
        let fw = m.detached_weights(u)?;
        let y0 = m.apply(u, &fw, &x)?;
        let r = seeded(y0.dims(), 5, DType::F32, dev)?;
        let obj = |y: Tensor| (y.to_dtype(DType::F32)? * &r)?.sum_all();
        let st = time(dev, t, || m.apply(u, &m.weights(u)?, &x).map(drop))?;
        out.push(FRow::stat(&b, "forward_s", &st, "s"));
        let st = time(dev, t, || m.apply(u, &fw, &x).map(drop))?;
        out.push(FRow::stat(&b, "forward_frozen_s", &st, "s"));
        let st = time(dev, t, || {
            obj(m.apply(u, &m.weights(u)?, &x)?)?.backward().map(drop)
        })?;
        out.push(FRow::stat(&b, "fwd_bwd_weight_s", &st, "s"));
        if u != 0 {
            let xv = Var::from_tensor(&x)?;
            let st = time(dev, t, || {
                obj(m.apply(u, &fw, xv.as_tensor())?)?.backward().map(drop)
            })?;
            out.push(FRow::stat(&b, "fwd_bwd_input_s", &st, "s"));
            let st = time(dev, t, || {
                obj(m.apply(u, &m.weights(u)?, xv.as_tensor())?)?
                    .backward()
                    .map(drop)
            })?;
            out.push(FRow::stat(&b, "fwd_bwd_both_s", &st, "s"));
        }
        // Optimizer steps on a throw-away copy (the model stays as it was).
        let scratch = m.duplicate()?;
        let grads = obj(scratch.apply(u, &scratch.weights(u)?, &x)?)?.backward()?;
        let mut opts = optimizers(&scratch, 1e-4)?;
        let st = time(dev, t, || opts[u].step(&grads))?;
        out.push(FRow::stat(&b, "optimizer_s", &st, "s"));
        let mut acc: Option<Tensor> = None;
        let st = time(dev, t, || {
            if let Some(n) = grad_norm(&scratch, u, &grads)? {
                acc = Some(match acc.take() {
                    Some(a) => (a + n)?,
                    None => n,
                });
            }
            Ok(())
        })?;
        out.push(FRow::stat(&b, "grad_norm_s", &st, "s"));
        out.push(FRow::one(&b, "params", cfg.unit_params(u) as f64, "count"));
        if u > 0 {
            out.push(FRow::one(
                &b,
                "activation_bytes_per_sample",
                bytes(&hid) / batch as f64,
                "bytes",
            ));
        }
    }
    // Whole iterations, nothing frozen and everything but the head frozen, timed by the
    // training loop itself (`train::run`, the code the end-to-end runs execute) on seeded random
    // token ids: the first `warmup` iterations are dropped, the median of the next `repeats`
    // recorded. (An earlier version timed a hand-written copy of the iteration in isolation; on
    // the H200 it read 14–18% above the loop's own iterations at k = 0.)
    let n_iters = t.warmup + t.repeats.max(1);
    let rows_host = ids.to_device(&Device::Cpu)?.to_vec2::<u32>()?;
    let data = super::data::Dataset {
        classes: (0..cfg.classes).map(|c| format!("class{c}")).collect(),
        seq,
        train: (0..n_iters * batch)
            .map(|i| (rows_host[i % batch].clone(), (i % cfg.classes) as u32))
            .collect(),
        held_out: Vec::new(),
    };
    for k in [0, head_u] {
        let mut mm = m.duplicate()?;
        let rc = RunCfg {
            batch,
            epochs: 1,
            max_samples: n_iters * batch,
            lr: 1e-4,
            warmup: 1,
            policy: super::policy::Policy::Fixed { k, from: 0 },
            tier: Tier::None,
            lag: false,
            norm_interval: None,
        };
        let run = train::run(&mut mm, &data, &rc, dev, &mut |_| {})?;
        let v: Vec<f64> = run.iters.iter().skip(t.warmup).map(|r| r.secs).collect();
        let st = Stats::of(&v);
        let b = base.with("unit", "all").with("k", k);
        out.push(FRow::stat(&b, "iter_s", &st, "s"));
        let fl = cfg.train_flops(batch, seq);
        out.push(FRow::one(
            &b,
            "tflops_per_s",
            fl / st.median / 1e12,
            "TFLOP/s",
        ));
    }
    // Cache tiers: one batch's hidden states.
    let nb = bytes(&hid);
    let b = base.with("unit", "cache").with("bytes", nb);
    let st = time(dev, t, || hid.copy().map(drop))?;
    out.push(FRow::stat(&b, "gpu_copy_s", &st, "s"));
    out.push(FRow::one(
        &b,
        "gpu_copy_bytes_per_s",
        nb / st.median,
        "bytes/s",
    ));
    // The `ram` tier's own store (page-locked slot, asynchronous copies on the compute stream),
    // exactly as the training loop uses it.
    let mut store = super::ramstore::RamStore::new(1, nb as usize, dev)?;
    let st = time(dev, t, || store.write(0, &hid).map(drop))?;
    out.push(FRow::stat(&b, "ram_write_s", &st, "s"));
    out.push(FRow::one(
        &b,
        "ram_write_bytes_per_s",
        nb / st.median,
        "bytes/s",
    ));
    let st = time(dev, t, || store.read(0).map(drop))?;
    out.push(FRow::stat(&b, "ram_read_s", &st, "s"));
    out.push(FRow::one(
        &b,
        "ram_read_bytes_per_s",
        nb / st.median,
        "bytes/s",
    ));
    Ok(out)
}

/// One end-to-end run of a copy of `init` under `rc`; rows (with `base`'s fields plus `policy`,
/// `tier`, `lag`, `epochs`, `iters_per_epoch`): `total_s`, per epoch `epoch_s` and `iter_s`
/// (median and spread over the epoch's iterations), `loss` per epoch, the realised timeline
/// (`freeze_step` with the new prefix as `frozen`), cache bytes, `tflops_per_s` of the first
/// epoch when nothing is frozen, and for AutoFreeze the recorded `grad_norm` of each unit
/// (`step`, `unit_index`) it decided from.
///
/// # Errors
/// Device errors, a bad policy for the model.
pub fn e2e(
    init: &Bert,
    data: &Dataset,
    rc: &RunCfg,
    dev: &Device,
    base: &FRow,
    log: &mut dyn FnMut(&str),
) -> Result<(Vec<FRow>, train::RunOut)> {
    let mut m = init.duplicate()?;
    let out = train::run(&mut m, data, rc, dev, log)?;
    let b = base
        .with("policy", rc.policy.label())
        .with("tier", rc.tier.name())
        .with("lag", rc.lag)
        .with("epochs", rc.epochs)
        .with("iters_per_epoch", out.iters_per_epoch);
    let mut rows = Vec::new();
    let total: f64 = out.iters.iter().map(|r| r.secs).sum();
    rows.push(FRow {
        repeats: out.iters.len(),
        ..FRow::one(&b, "total_s", total, "s")
    });
    let ipe = out.iters_per_epoch;
    for (e, es) in out.epoch_s().iter().enumerate() {
        let be = b.with("epoch", e);
        let it: Vec<f64> = out.iters[e * ipe..(e + 1) * ipe]
            .iter()
            .map(|r| r.secs)
            .collect();
        rows.push(FRow {
            repeats: ipe,
            ..FRow::one(&be, "epoch_s", *es, "s")
        });
        rows.push(FRow::stat(&be, "iter_s", &Stats::of(&it), "s"));
        rows.push(FRow::one(&be, "loss", out.epoch_loss()[e], "nats"));
        if e == 0 && out.iters[..ipe].iter().all(|r| r.frozen == 0) {
            let fl = m.cfg.train_flops(rc.batch, data.seq);
            rows.push(FRow::one(
                &be,
                "tflops_per_s",
                fl / Stats::of(&it).median / 1e12,
                "TFLOP/s",
            ));
        }
    }
    for (s, k) in out.timeline.changes.iter().filter(|c| **c != (0, 0)) {
        rows.push(FRow::one(
            &b.with("frozen", k),
            "freeze_step",
            *s as f64,
            "iterations",
        ));
    }
    // The gradient norms AutoFreeze decided from (so a prediction can replay them).
    if matches!(rc.policy, super::policy::Policy::AutoFreeze { .. }) {
        for (u, recs) in out.norms.by_unit.iter().enumerate() {
            for (s, g) in recs {
                let bu = b.with("step", s).with("unit_index", u);
                rows.push(FRow::one(&bu, "grad_norm", *g, "l2"));
            }
        }
    }
    if rc.tier != Tier::None {
        rows.push(FRow::one(
            &b,
            "cache_peak_bytes",
            out.cache_peak_bytes,
            "bytes",
        ));
        rows.push(FRow::one(
            &b,
            "cache_written_bytes",
            out.cache_written_bytes,
            "bytes",
        ));
        rows.push(FRow::one(
            &b,
            "cache_read_bytes",
            out.cache_read_bytes,
            "bytes",
        ));
    }
    Ok((rows, out))
}
