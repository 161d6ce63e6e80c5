//! The fine-tuning loop with layer freezing and caching of the frozen prefix's output.
//!
//! **Iteration `t`** (0-based; `k` = frozen units during `t`, from the policy):
//! 1. the first `k` units run forward on weights detached from the masters (no backward graph
//!    is built for them: their output is a leaf), or their output comes from the cache;
//! 2. units `k..` run forward on the masters (bf16 casts under mixed precision), the head's f32
//!    logits give the cross-entropy loss, `backward` computes the gradients of units `k..` only;
//! 3. AdamW (candle-nn's, one optimizer per unit, decoupled weight decay 0.01, betas 0.9/0.999)
//!    steps the trainable units only: frozen units get no optimizer state updates;
//! 4. the loss is read to the host (the device synchronizes: every iteration ends there, as a
//!    loop that logs its loss does), and the iteration's wall time recorded.
//!
//! **Gradient norms.** With AutoFreeze (or `norm_interval`), each trainable unit's gradient L2
//! norm (over all its parameters) is accumulated on the device each iteration and, after every
//! `I` completed iterations, recorded at step = iterations completed (the library's trace
//! convention) and reset. AutoFreeze decides after recording, at steps `I, 2I, … < T`, from the
//! records at `t − I` and `t` ([`super::policy::autofreeze_decision`]), so the first decision
//! that can freeze is at `2I`; the decision applies from iteration `t` on.
//!
//! **Cache** (the library's `src/freeze/cost.rs` semantics). Entries are keyed by batch position
//! (the batch order is the same every epoch) and hold the output at a boundary `c` (the input of
//! unit `c`). With `k > 0` frozen: an entry with `0 < c ≤ k` is read and units `c..k` run
//! forward on it (the prefix-growth rewrite), else units `0..k` run; when `c ≠ k` and writing is
//! allowed (always, or with `lag` only in epochs that started with the current prefix already
//! frozen) the output at `k` replaces the entry. Tier `gpu` keeps the output tensor on the
//! device (no copy); tier `ram` copies it to host memory (candle's `to_device(Cpu)`, pageable
//! memory, not pinned) and back to the device when read.

use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};

use super::data::Dataset;
use super::model::Bert;
use super::policy::{autofreeze_decision, Norms, Policy, Timeline};
use super::ramstore::RamStore;

/// Where cached prefix outputs live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// No cache.
    None,
    /// Device memory.
    Gpu,
    /// Host memory (pageable).
    Ram,
}

impl Tier {
    /// Parses `none|gpu|ram`.
    ///
    /// # Errors
    /// Another name.
    pub fn parse(s: &str) -> std::result::Result<Tier, String> {
        match s {
            "none" => Ok(Tier::None),
            "gpu" => Ok(Tier::Gpu),
            "ram" => Ok(Tier::Ram),
            o => Err(format!("tier {o}: expected none, gpu or ram")),
        }
    }

    /// Lower-case name (the library's tier names).
    pub fn name(self) -> &'static str {
        match self {
            Tier::None => "none",
            Tier::Gpu => "gpu",
            Tier::Ram => "ram",
        }
    }
}

/// One run's settings.
#[derive(Clone, Debug)]
pub struct RunCfg {
    /// Samples per iteration.
    pub batch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Training samples used per epoch (at most; whole batches).
    pub max_samples: usize,
    /// Peak learning rate (linear warm-up over `warmup` iterations, then linear decay to 0).
    pub lr: f64,
    /// Warm-up iterations.
    pub warmup: usize,
    /// Freezing policy.
    pub policy: Policy,
    /// Cache tier.
    pub tier: Tier,
    /// AutoFreeze's one-epoch lag before cache writes.
    pub lag: bool,
    /// Record gradient norms every this many iterations even when the policy needs none.
    pub norm_interval: Option<u64>,
}

/// What one iteration did.
#[derive(Clone, Debug, PartialEq)]
pub struct IterRec {
    /// Iteration index.
    pub step: u64,
    /// Epoch.
    pub epoch: usize,
    /// Batch position in the epoch.
    pub pos: usize,
    /// Frozen units.
    pub frozen: usize,
    /// Boundary read from the cache (0: none).
    pub read: usize,
    /// Whether an entry was written.
    pub wrote: bool,
    /// Wall seconds (between device synchronizations).
    pub secs: f64,
    /// Training loss (nats).
    pub loss: f64,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct RunOut {
    /// Every iteration.
    pub iters: Vec<IterRec>,
    /// Iterations per epoch.
    pub iters_per_epoch: usize,
    /// The realised frozen-prefix timeline.
    pub timeline: Timeline,
    /// Recorded gradient norms per unit.
    pub norms: Norms,
    /// Norm recording interval (None: not recorded).
    pub norm_interval: Option<u64>,
    /// Largest cache size, bytes.
    pub cache_peak_bytes: f64,
    /// Bytes written to the cache.
    pub cache_written_bytes: f64,
    /// Bytes read from the cache.
    pub cache_read_bytes: f64,
}

impl RunOut {
    /// Seconds of each epoch.
    pub fn epoch_s(&self) -> Vec<f64> {
        let mut v = vec![0.0; self.iters.last().map_or(0, |r| r.epoch + 1)];
        for r in &self.iters {
            v[r.epoch] += r.secs;
        }
        v
    }

    /// Mean loss of each epoch.
    pub fn epoch_loss(&self) -> Vec<f64> {
        let mut v = vec![0.0; self.iters.last().map_or(0, |r| r.epoch + 1)];
        for r in &self.iters {
            v[r.epoch] += r.loss / self.iters_per_epoch as f64;
        }
        v
    }
}

/// Bytes of a tensor.
pub fn bytes(t: &Tensor) -> f64 {
    (t.elem_count() * t.dtype().size_in_bytes()) as f64
}

/// The per-unit AdamW optimizers of `m` (one per unit).
///
/// # Errors
/// A device error.
pub fn optimizers(m: &Bert, lr: f64) -> Result<Vec<AdamW>> {
    adamw_per_unit(&m.vars, lr)
}

/// One AdamW per unit's parameters (β 0.9/0.999, ε 1e-8, weight decay 0.01) at learning rate
/// `lr`: the harness's one optimizer set-up (freeze and gradcomp both train with it).
///
/// # Errors
/// A device error.
pub fn adamw_per_unit(vars: &[Vec<Var>], lr: f64) -> Result<Vec<AdamW>> {
    vars.iter()
        .map(|vs| {
            AdamW::new(
                vs.clone(),
                ParamsAdamW {
                    lr,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.01,
                },
            )
        })
        .collect()
}

/// L2 norm of unit `u`'s gradient as a device scalar (f32), if it has one.
///
/// # Errors
/// A device error.
pub fn grad_norm(
    m: &Bert,
    u: usize,
    grads: &candle_core::backprop::GradStore,
) -> Result<Option<Tensor>> {
    let mut sq: Option<Tensor> = None;
    for v in &m.vars[u] {
        if let Some(g) = grads.get(v.as_tensor()) {
            let s = g.to_dtype(DType::F32)?.sqr()?.sum_all()?;
            sq = Some(match sq {
                Some(a) => (a + s)?,
                None => s,
            });
        }
    }
    sq.map(|s| s.sqrt()).transpose()
}

/// Trains `m` on `data` under `rc` (see the module docs); `log` gets one line per epoch.
///
/// # Errors
/// Policy errors (a `fixed` k above the unit count), too few samples for one batch, device
/// errors.
pub fn run(
    m: &mut Bert,
    data: &Dataset,
    rc: &RunCfg,
    dev: &Device,
    log: &mut dyn FnMut(&str),
) -> Result<RunOut> {
    let units = m.cfg.units();
    let ipe = data.batches(rc.batch, rc.max_samples);
    if ipe == 0 || rc.epochs == 0 {
        candle_core::bail!(
            "batch {} epochs {}: no full batch of {} training samples (max {})",
            rc.batch,
            rc.epochs,
            data.train.len(),
            rc.max_samples
        )
    }
    let total = (ipe * rc.epochs) as u64;
    let mut timeline = rc
        .policy
        .planned(units, total)
        .map_err(candle_core::Error::msg)?;
    let af = match &rc.policy {
        Policy::AutoFreeze { percentile, .. } => Some(*percentile),
        _ => None,
    };
    let interval = rc.policy.interval(total).or(rc.norm_interval);
    let mut opts = optimizers(m, rc.lr)?;
    let mut norms = Norms::new(units);
    let mut acc: Vec<Option<Tensor>> = vec![None; units];
    // Cache entries per batch position: (boundary, device tensor for `gpu` / None for `ram`,
    // bytes); the `ram` tier's page-locked slots are allocated here, before the timed loop.
    let mut entries: Vec<Option<(usize, Option<Tensor>, f64)>> = vec![None; ipe];
    let mut ram = match rc.tier {
        Tier::Ram => Some(RamStore::new(
            ipe,
            rc.batch * data.seq * m.cfg.hidden * DType::F32.size_in_bytes(),
            dev,
        )?),
        _ => None,
    };
    let (mut peak, mut now, mut written, mut read_b) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut iters = Vec::with_capacity(total as usize);
    for epoch in 0..rc.epochs {
        let k_start = timeline.frozen_at((epoch * ipe) as u64);
        let t_epoch = Instant::now();
        #[allow(clippy::needless_range_loop)] // pos is also the batch index and the step
        for pos in 0..ipe {
            let step = (epoch * ipe + pos) as u64;
            let k = timeline.frozen_at(step);
            m.freeze_to(k)?;
            dev.synchronize()?;
            let t0 = Instant::now();
            let (ids, labels) = Dataset::batch(&data.train, pos, rc.batch, dev)?;
            let (mut rd, mut wrote) = (0, false);
            let x = if k == 0 {
                ids
            } else if rc.tier != Tier::None {
                let x = match &entries[pos] {
                    Some((c, t, nb)) if *c <= k => {
                        rd = *c;
                        read_b += nb;
                        let t = match (t, &ram) {
                            (Some(t), _) => t.clone(),
                            (None, Some(r)) => r.read(pos)?,
                            (None, None) => candle_core::bail!("cache entry {pos} has no data"),
                        };
                        m.run(*c, k, &t)?
                    }
                    _ => m.run(0, k, &ids)?,
                }
                .detach();
                let write_ok = !rc.lag || k == k_start;
                if rd != k && write_ok {
                    let old = entries[pos].as_ref().map_or(0.0, |e| e.2);
                    // `ram`: an asynchronous copy into this position's page-locked slot (`x`
                    // stays alive until the iteration's closing synchronization).
                    let (stored, nb) = match &mut ram {
                        Some(r) => (None, r.write(pos, &x.contiguous()?)? as f64),
                        None => (Some(x.clone()), bytes(&x)),
                    };
                    written += nb;
                    now += nb - old;
                    peak = peak.max(now);
                    entries[pos] = Some((k, stored, nb));
                    wrote = true;
                }
                x
            } else {
                m.run(0, k, &ids)?.detach()
            };
            let logits = m.run(k, units, &x)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
            let grads = loss.backward()?;
            let lr = if (step as usize) < rc.warmup {
                rc.lr * (step + 1) as f64 / rc.warmup as f64
            } else {
                rc.lr * (total - step) as f64
                    / (total - rc.warmup.min(total as usize) as u64).max(1) as f64
            };
            for (u, opt) in opts.iter_mut().enumerate().skip(k) {
                opt.set_learning_rate(lr);
                opt.step(&grads)?;
                if interval.is_some() {
                    if let Some(g) = grad_norm(m, u, &grads)? {
                        acc[u] = Some(match acc[u].take() {
                            Some(a) => (a + g)?,
                            None => g,
                        });
                    }
                }
            }
            drop(grads);
            let loss_v = f64::from(loss.to_scalar::<f32>()?);
            dev.synchronize()?;
            let secs = t0.elapsed().as_secs_f64();
            let done = step + 1;
            if let Some(i) = interval {
                if done % i == 0 {
                    for (u, a) in acc.iter_mut().enumerate() {
                        if let Some(t) = a.take() {
                            norms.by_unit[u].push((done, f64::from(t.to_scalar::<f32>()?)));
                        }
                    }
                    if let Some(p) = af {
                        if done < total {
                            let f = timeline.frozen_at(step);
                            let nf = autofreeze_decision(&norms, units, f, done, i, p);
                            if nf > f {
                                timeline.grow(done, nf);
                            }
                        }
                    }
                }
            }
            iters.push(IterRec {
                step,
                epoch,
                pos,
                frozen: k,
                read: rd,
                wrote,
                secs,
                loss: loss_v,
            });
        }
        let el = &iters[epoch * ipe..];
        log(&format!(
            "epoch {epoch}: mean loss {:.4}, frozen {}..{}, {:.3}s ({:.2} ms/iteration)",
            el.iter().map(|r| r.loss).sum::<f64>() / ipe as f64,
            el[0].frozen,
            el[el.len() - 1].frozen,
            t_epoch.elapsed().as_secs_f64(),
            el.iter().map(|r| r.secs).sum::<f64>() / ipe as f64 * 1e3
        ));
    }
    Ok(RunOut {
        iters,
        iters_per_epoch: ipe,
        timeline,
        norms,
        norm_interval: interval,
        cache_peak_bytes: peak,
        cache_written_bytes: written,
        cache_read_bytes: read_b,
    })
}

/// Held-out `(mean loss, accuracy)` of `m` over whole batches of `samples`.
///
/// # Errors
/// No full batch, device errors.
pub fn evaluate(
    m: &Bert,
    samples: &[(Vec<u32>, u32)],
    batch: usize,
    dev: &Device,
) -> Result<(f64, f64)> {
    let n = samples.len() / batch;
    if n == 0 {
        candle_core::bail!(
            "held-out set of {} samples has no batch of {batch}",
            samples.len()
        )
    }
    let (mut loss, mut right) = (0.0, 0.0);
    for pos in 0..n {
        let (ids, labels) = Dataset::batch(samples, pos, batch, dev)?;
        let lg = m.run(0, m.cfg.units(), &ids)?.detach();
        loss += f64::from(candle_nn::loss::cross_entropy(&lg, &labels)?.to_scalar::<f32>()?);
        let hit = lg
            .argmax(D::Minus1)?
            .eq(&labels)?
            .to_dtype(DType::F32)?
            .sum_all()?;
        right += f64::from(hit.to_scalar::<f32>()?);
    }
    Ok((loss / n as f64, right / (n * batch) as f64))
}

#[cfg(test)]
mod tests {
    use super::super::data::synthetic_corpus;
    use super::super::model::BertCfg;
    use super::super::policy::replay_autofreeze;
    use super::*;

    fn setup() -> (BertCfg, Dataset) {
        let text = synthetic_corpus(4, 400, 3);
        let cfg = BertCfg::preset("val-bert-tiny", 4).unwrap();
        let d = Dataset::new(&text, cfg.vocab, 4, 16, 0.2, 7).unwrap();
        (cfg, d)
    }

    fn rc(policy: &str, tier: Tier, epochs: usize) -> RunCfg {
        RunCfg {
            batch: 8,
            epochs,
            max_samples: 64,
            lr: 3e-3,
            warmup: 2,
            policy: Policy::parse(policy).unwrap(),
            tier,
            lag: false,
            norm_interval: None,
        }
    }

    fn train(policy: &str, tier: Tier, epochs: usize, dt: DType) -> (Bert, RunOut) {
        let (cfg, d) = setup();
        let mut m = Bert::new(&cfg, dt, &Device::Cpu, 1).unwrap();
        let out = run(
            &mut m,
            &d,
            &rc(policy, tier, epochs),
            &Device::Cpu,
            &mut |_| {},
        )
        .unwrap();
        (m, out)
    }

    /// The loss falls on the task: the last epoch's mean loss is below 60% of the first's, and
    /// held-out accuracy beats chance (25%) by a wide margin.
    #[test]
    fn loss_falls_and_held_out_accuracy_beats_chance() {
        let (cfg, d) = setup();
        let mut m = Bert::new(&cfg, DType::F32, &Device::Cpu, 1).unwrap();
        let out = run(
            &mut m,
            &d,
            &rc("none", Tier::None, 6),
            &Device::Cpu,
            &mut |_| {},
        )
        .unwrap();
        let el = out.epoch_loss();
        assert!(el[5] < 0.6 * el[0], "{el:?}");
        let (_, acc) = evaluate(&m, &d.held_out, 8, &Device::Cpu).unwrap();
        assert!(acc >= 0.6, "held-out accuracy {acc}");
    }

    /// Frozen units' masters stay bit-identical while the trainable ones move.
    #[test]
    fn frozen_weights_stay_bit_identical() {
        let (cfg, d) = setup();
        for dt in [DType::F32, DType::BF16] {
            let mut m = Bert::new(&cfg, dt, &Device::Cpu, 1).unwrap();
            let before: Vec<_> = (0..cfg.units()).map(|u| m.snapshot(u).unwrap()).collect();
            run(
                &mut m,
                &d,
                &rc("fixed:k=2", Tier::Gpu, 2),
                &Device::Cpu,
                &mut |_| {},
            )
            .unwrap();
            for (u, b) in before.iter().enumerate() {
                let same = &m.snapshot(u).unwrap() == b;
                assert_eq!(same, u < 2, "unit {u} {dt:?}");
            }
        }
    }

    /// With a cache (device or host tier, with prefix growth forcing rewrites), the loss
    /// trajectory equals the uncached run's exactly (f32 on the CPU), and the cache was used.
    #[test]
    fn cached_loss_trajectory_equals_uncached() {
        // FreezeOut linear t0 = 0.3 on 4 units over 24 iterations (8 per epoch): frozen 1 from
        // 8, 2 from 13, 3 from 19: each growth rewrites entries from the old boundary.
        let p = "freezeout:schedule=linear,t0=0.3";
        let (_, base) = train(p, Tier::None, 3, DType::F32);
        assert_eq!(
            base.timeline.changes,
            vec![(0, 0), (8, 1), (13, 2), (19, 3)]
        );
        for tier in [Tier::Gpu, Tier::Ram] {
            let (_, c) = train(p, tier, 3, DType::F32);
            let a: Vec<f64> = base.iters.iter().map(|r| r.loss).collect();
            let b: Vec<f64> = c.iters.iter().map(|r| r.loss).collect();
            assert_eq!(a, b, "{tier:?}");
            let reads: Vec<usize> = c.iters.iter().map(|r| r.read).collect();
            // Epoch 1 wrote boundary 1 at positions 0..5 (steps 8..12) and 2 at 5..8; epoch 2
            // reads them back (and rewrites at 2, then 3).
            assert_eq!(reads[16..], [1, 1, 1, 1, 1, 2, 2, 2]);
            assert!(c.cache_written_bytes > 0.0 && c.cache_peak_bytes > 0.0);
        }
        // Fixed k with bf16: equal too (the frozen prefix's bf16 output is cached as is).
        let (_, a) = train("fixed:k=2", Tier::None, 2, DType::BF16);
        let (_, b) = train("fixed:k=2", Tier::Ram, 2, DType::BF16);
        assert_eq!(
            a.iters.iter().map(|r| r.loss).collect::<Vec<_>>(),
            b.iters.iter().map(|r| r.loss).collect::<Vec<_>>()
        );
        assert!(b.iters[8..].iter().all(|r| r.read == 2));
    }

    /// AutoFreeze's online decisions equal the replay of its recorded norms through the
    /// library's rule, and it does freeze something on this task.
    #[test]
    fn autofreeze_online_equals_replay() {
        let (cfg, _) = setup();
        let (_, out) = train(
            "autofreeze:interval=2,percentile=50",
            Tier::Gpu,
            3,
            DType::F32,
        );
        let i = out.norm_interval.unwrap();
        let replay = replay_autofreeze(&out.norms, cfg.units(), 24, i, 50.0);
        assert_eq!(out.timeline, replay);
        assert!(out.timeline.changes.len() > 1, "{:?}", out.timeline);
        for r in &out.iters {
            assert_eq!(r.frozen, out.timeline.frozen_at(r.step));
        }
        // Every unit has records (step 2 precedes any freeze).
        assert!(out
            .norms
            .by_unit
            .iter()
            .all(|r| r.first().map(|x| x.0) == Some(2)));
    }
}
