//! One data-parallel training step with gradients produced unit by unit in reverse order and
//! communicated per bucket as they become ready, as PyTorch DDP does (Li et al. 2020, VLDB).
//!
//! **Forward** ([`forward`]): unit `u` runs on a detached copy of unit `u−1`'s output held as a
//! [`Var`] (a leaf), so each unit's autograd graph stops at its input.
//!
//! **Backward** ([`backward_unit`]), for `u = U−1 … 0`: the head's root is the loss; unit `u <
//! U−1`'s root is `Σ out_u ⊙ g_u`, where `g_u` is the gradient of unit `u+1`'s input. Its
//! gradient with respect to unit `u`'s parameters and input is exactly the vector–Jacobian
//! product the whole-graph backward computes (`∂/∂θ Σ out ⊙ g = Jᵀ g`), so gradients become
//! ready unit by unit. A parameter used by a later unit too (GPT-2's tied token embedding)
//! accumulates both contributions and is ready after its own unit.
//!
//! **Step** ([`Engine::step`]): forward; backward unit by unit; after unit `u`'s backward every
//! bucket whose last gradient it produced is flattened and handed to the codec round
//! ([`super::codec::Codec::round`]) — on a separate communication device (same GPU, its own
//! stream) when one is given, so the round overlaps the remaining backward; then AdamW (candle-nn's,
//! one optimizer per unit, the freeze harness's settings: betas 0.9/0.999, ε 1e-8, decoupled weight
//! decay 0.01) on the averaged gradients, after every bucket's result is back on the compute
//! device.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, TensorId, Var};
use candle_nn::optim::{AdamW, Optimizer};

use super::bucket::Plan;
use super::codec::{Codec, Comm, Pending};
use super::models::{Batch, Net};

/// A forward pass kept for unit-by-unit backward.
pub struct Forward {
    /// Input of each unit: `None` for the embeddings (token ids), else a leaf [`Var`].
    pub inputs: Vec<Option<Var>>,
    /// Output of each unit (the head's is the scalar loss).
    pub outs: Vec<Tensor>,
}

impl Forward {
    /// The loss (the head's output).
    pub fn loss(&self) -> &Tensor {
        &self.outs[self.outs.len() - 1]
    }
}

/// Unit `u`'s forward on `x` (its input as a leaf [`Var`] unless `u == 0`).
///
/// # Errors
/// Shape or device errors.
pub fn forward_unit(
    net: &dyn Net,
    u: usize,
    x: &Tensor,
    batch: &Batch,
) -> Result<(Option<Var>, Tensor)> {
    if u == 0 {
        Ok((None, net.forward(0, x, batch)?))
    } else {
        let v = Var::from_tensor(&x.detach())?;
        let y = net.forward(u, v.as_tensor(), batch)?;
        Ok((Some(v), y))
    }
}

/// The whole forward, unit by unit.
///
/// # Errors
/// Shape or device errors.
pub fn forward(net: &dyn Net, batch: &Batch) -> Result<Forward> {
    let units = net.units();
    let mut inputs = Vec::with_capacity(units);
    let mut outs: Vec<Tensor> = Vec::with_capacity(units);
    for u in 0..units {
        let x = if u == 0 { &batch.ids } else { &outs[u - 1] };
        let (i, y) = forward_unit(net, u, x, batch)?;
        inputs.push(i);
        outs.push(y);
    }
    Ok(Forward { inputs, outs })
}

/// Backward of unit `u` given the gradient `g_out` of its output (`None` for the head, whose
/// output is the loss). Returns the store (parameter gradients, and the input's) and the
/// gradient of the unit's input (`None` for the embeddings).
///
/// # Errors
/// A missing output gradient for a non-head unit, or a device error.
pub fn backward_unit(
    fwd: &Forward,
    u: usize,
    g_out: Option<&Tensor>,
) -> Result<(GradStore, Option<Tensor>)> {
    let root = match g_out {
        None if u + 1 == fwd.outs.len() => fwd.outs[u].clone(),
        Some(g) => (&fwd.outs[u] * g)?.sum_all()?,
        None => candle_core::bail!("unit {u}: no output gradient"),
    };
    let mut gs = root.backward()?;
    let g_in = match &fwd.inputs[u] {
        Some(v) => gs.remove(v.as_tensor()),
        None => None,
    };
    Ok((gs, g_in))
}

/// What a step did, in order (for tests of the DDP order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Unit `u`'s backward finished.
    Backward(usize),
    /// Bucket `b`'s codec round was issued.
    Round(usize),
}

/// Per-unit AdamW with the freeze harness's settings (see the module docs) at learning rate `lr`.
///
/// # Errors
/// A device error.
pub fn optimizers(vars: &[Vec<Var>], lr: f64) -> Result<Vec<AdamW>> {
    crate::freeze::train::adamw_per_unit(vars, lr)
}

/// Learning rate of every step (constant; the step's cost does not depend on it).
pub const LR: f64 = 1e-4;

/// A training set-up: the model's buckets and its optimizers.
pub struct Engine {
    /// Buckets.
    pub plan: Plan,
    /// One AdamW per unit.
    pub opts: Vec<AdamW>,
}

impl Engine {
    /// Buckets of `net` with the first capped at `first_cap_bytes` (perfcast's and PyTorch's
    /// default: [`super::bucket::FIRST_BUCKET_BYTES`]) and the others at `cap_bytes`, and fresh
    /// optimizers.
    ///
    /// # Errors
    /// A zero cap, or a device error.
    pub fn new(net: &dyn Net, first_cap_bytes: usize, cap_bytes: usize) -> Result<Engine> {
        Ok(Engine {
            plan: Plan::new(net.vars(), first_cap_bytes, cap_bytes)?,
            opts: optimizers(net.vars(), LR)?,
        })
    }

    /// Forward and unit-by-unit backward with each bucket's round started as soon as it is
    /// ready ([`Codec::start`]: encode on the compute stream, then the collectives) and every
    /// round finished ([`Codec::finish`]: decode) after the last unit's backward. Where `comm`
    /// runs its collectives on a stream of its own, backward continues while they run and
    /// waits only where a kernel reads a collective's result (PowerSGD's inline second round;
    /// the decodes after backward). [`Comm::release`] is called after the last bucket. Returns
    /// the averaged gradients per unit, the loss and the event order.
    ///
    /// # Errors
    /// Device, codec or communication errors.
    pub fn gradients(
        &self,
        net: &dyn Net,
        batch: &Batch,
        codec: &mut dyn Codec,
        comm: &mut dyn Comm,
    ) -> Result<(Vec<GradStore>, Tensor, Vec<Event>)> {
        let vars = net.vars();
        let units = net.units();
        let fwd = forward(net, batch)?;
        let mut acc: HashMap<TensorId, Tensor> = HashMap::new();
        let mut grads: Vec<Vec<Option<Tensor>>> =
            vars.iter().map(|v| vec![None; v.len()]).collect();
        let mut results: Vec<Option<Pending>> =
            (0..self.plan.buckets.len()).map(|_| None).collect();
        let mut events = Vec::with_capacity(units + results.len());
        let mut next_bucket = 0;
        let mut g: Option<Tensor> = None;
        for u in (0..units).rev() {
            let (gs, g_in) = backward_unit(&fwd, u, g.as_ref())?;
            for v in vars[..=u].iter().flatten() {
                if let Some(x) = gs.get(v.as_tensor()) {
                    let t = match acc.remove(&v.as_tensor().id()) {
                        Some(a) => (a + x)?,
                        None => x.clone(),
                    };
                    acc.insert(v.as_tensor().id(), t);
                }
            }
            drop(gs);
            for (i, v) in vars[u].iter().enumerate() {
                grads[u][i] = acc.remove(&v.as_tensor().id());
            }
            events.push(Event::Backward(u));
            while next_bucket < self.plan.buckets.len()
                && self.plan.buckets[next_bucket].ready_unit == u
            {
                let b = next_bucket;
                let flat = self.plan.flatten(b, &mut grads)?;
                let shapes = self.plan.buckets[b].shapes();
                results[b] = Some(
                    codec
                        .start(b, &flat, &shapes, comm)
                        .map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?,
                );
                events.push(Event::Round(b));
                next_bucket += 1;
            }
            g = g_in;
        }
        if next_bucket != self.plan.buckets.len() {
            candle_core::bail!(
                "{} buckets never became ready",
                self.plan.buckets.len() - next_bucket
            )
        }
        comm.release()
            .map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?;
        let mut stores: Vec<GradStore> = (0..units).map(|_| GradStore::default()).collect();
        for (b, r) in results.into_iter().enumerate() {
            let r = codec
                .finish(r.expect("every bucket has a result"))
                .map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?;
            self.plan.scatter(b, &r, vars, &mut stores)?;
        }
        Ok((stores, fwd.loss().clone(), events))
    }

    /// One training step ([`Engine::gradients`], then every unit's AdamW). Returns the loss (on
    /// the device, not read) and the event order.
    ///
    /// # Errors
    /// Device, codec or communication errors.
    pub fn step(
        &mut self,
        net: &dyn Net,
        batch: &Batch,
        codec: &mut dyn Codec,
        comm: &mut dyn Comm,
    ) -> Result<(Tensor, Vec<Event>)> {
        let (stores, loss, events) = self.gradients(net, batch, codec, comm)?;
        for (opt, st) in self.opts.iter_mut().zip(&stores) {
            opt.step(st)?;
        }
        Ok((loss, events))
    }
}

/// Host copy of every parameter, concatenated in unit and parameter order (for bit-identity
/// checks across ranks).
///
/// # Errors
/// A device error.
pub fn host_params(net: &dyn Net) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(net.params());
    for v in net.vars().iter().flatten() {
        out.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::bucket::{Plan, FIRST_BUCKET_BYTES};
    use super::super::codec::{LocalComm, NoneCodec};
    use super::super::models::build;
    use super::*;
    use candle_core::Device;

    fn max_rel(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        let s = b.abs().unwrap().max_all().unwrap();
        d.to_scalar::<f32>().unwrap() / s.to_scalar::<f32>().unwrap().max(1e-30)
    }

    /// Unit-by-unit gradients equal the whole graph's `loss.backward()` for both families, within
    /// f32 rounding (max |Δ| ≤ 1e-5 of the tensor's max |g|), and every parameter gets one.
    #[test]
    fn unit_backward_equals_whole_graph_backward() {
        let dev = Device::Cpu;
        for name in ["val-bert-tiny", "val-gpt2-tiny"] {
            let net = build(name, &dev, 11).unwrap();
            let batch = net.batch(3, 12, 5, &dev).unwrap();
            // Whole graph: units chained without detaching.
            let mut h = batch.ids.clone();
            for u in 0..net.units() {
                h = net.forward(u, &h, &batch).unwrap();
            }
            let whole = h.backward().unwrap();
            let e = Engine::new(net.as_ref(), 1 << 30, 1 << 30).unwrap();
            let (stores, loss, _) = e
                .gradients(
                    net.as_ref(),
                    &batch,
                    &mut NoneCodec,
                    &mut LocalComm { world: 1 },
                )
                .unwrap();
            assert_eq!(
                loss.to_scalar::<f32>().unwrap(),
                h.to_scalar::<f32>().unwrap()
            );
            for (u, vs) in net.vars().iter().enumerate() {
                for (i, v) in vs.iter().enumerate() {
                    let a = stores[u].get(v.as_tensor()).unwrap();
                    let b = whole.get(v.as_tensor()).unwrap();
                    let r = max_rel(a, b);
                    assert!(r <= 1e-5, "{name} unit {u} param {i}: rel {r}");
                }
            }
        }
    }

    /// The library's buckets map onto every parameter exactly once, in reverse unit order; caps
    /// hold (a segment over the cap is alone); each round is issued right after the backward of
    /// its ready unit and before the next unit's backward.
    #[test]
    fn buckets_follow_the_library_and_backward_order() {
        let dev = Device::Cpu;
        for name in ["val-bert-tiny", "val-gpt2-tiny"] {
            let net = build(name, &dev, 2).unwrap();
            let (first, cap) = (2048, 8192);
            let plan = Plan::new(net.vars(), first, cap).unwrap();
            assert!(plan.buckets.len() >= 4, "{name}: {}", plan.buckets.len());
            let mut seen: Vec<(usize, usize)> = Vec::new();
            let mut last_unit = usize::MAX;
            for (b, bp) in plan.buckets.iter().enumerate() {
                let bytes = bp.elems() * 4;
                let c = if b == 0 { first } else { cap };
                assert!(bytes <= c || bp.segments.len() == 1, "{name} bucket {b}");
                for s in &bp.segments {
                    assert!(s.unit <= last_unit || last_unit == usize::MAX);
                    last_unit = s.unit;
                    seen.extend(s.vars.iter().map(|&i| (s.unit, i)));
                }
                assert_eq!(bp.ready_unit, bp.segments.last().unwrap().unit);
            }
            seen.sort_unstable();
            let all: Vec<(usize, usize)> = net
                .vars()
                .iter()
                .enumerate()
                .flat_map(|(u, v)| (0..v.len()).map(move |i| (u, i)))
                .collect();
            assert_eq!(seen, all, "{name}");
            // Default caps: one bucket per tiny model, capped only by the 1 MiB first bucket.
            let p = Plan::new(net.vars(), FIRST_BUCKET_BYTES, 25 << 20).unwrap();
            assert_eq!(p.buckets.len(), 1);

            let mut e = Engine::new(net.as_ref(), first, cap).unwrap();
            assert_eq!(e.plan, plan);
            let batch = net.batch(2, 8, 1, &dev).unwrap();
            let (_, ev) = e
                .step(
                    net.as_ref(),
                    &batch,
                    &mut NoneCodec,
                    &mut LocalComm { world: 2 },
                )
                .unwrap();
            let mut cur = None;
            let mut rounds = Vec::new();
            for x in ev {
                match x {
                    Event::Backward(u) => cur = Some(u),
                    Event::Round(b) => {
                        assert_eq!(Some(plan.buckets[b].ready_unit), cur, "{name} bucket {b}");
                        rounds.push(b);
                    }
                }
            }
            assert_eq!(rounds, (0..plan.buckets.len()).collect::<Vec<_>>());
        }
    }

    /// A step through the uncompressed codec over a local 2-rank reduction (sum of two equal
    /// gradients, halved: exact in f32) ends with the parameters of a plain whole-graph step with
    /// the same AdamW, within 1e-6 relative (the only difference is the unit-wise gradients'
    /// rounding); a 3-rank reduction differs from it by at most f32 rounding too.
    #[test]
    fn none_codec_step_equals_plain_step() {
        let dev = Device::Cpu;
        for name in ["val-bert-tiny", "val-gpt2-tiny"] {
            let reference = build(name, &dev, 4).unwrap();
            let batch = reference.batch(2, 10, 9, &dev).unwrap();
            let mut h = batch.ids.clone();
            for u in 0..reference.units() {
                h = reference.forward(u, &h, &batch).unwrap();
            }
            let g = h.backward().unwrap();
            for o in optimizers(reference.vars(), LR).unwrap().iter_mut() {
                o.step(&g).unwrap();
            }
            let want = host_params(reference.as_ref()).unwrap();
            for world in [2, 3] {
                let net = build(name, &dev, 4).unwrap();
                let before = host_params(net.as_ref()).unwrap();
                let mut e = Engine::new(net.as_ref(), 1024, 4096).unwrap();
                e.step(
                    net.as_ref(),
                    &batch,
                    &mut NoneCodec,
                    &mut LocalComm { world },
                )
                .unwrap();
                let got = host_params(net.as_ref()).unwrap();
                let moved = got.iter().zip(&before).filter(|(a, b)| a != b).count();
                assert!(moved > got.len() / 2, "{name}: only {moved} moved");
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs() / b.abs().max(1e-3))
                    .fold(0f32, f32::max);
                assert!(worst <= 1e-6, "{name} world {world}: {worst}");
            }
        }
    }
}
