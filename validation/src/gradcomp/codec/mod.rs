//! Gradient compressors on the device (candle ops, plus three custom kernels in [`kernels`]),
//! one per method of `perfcast gradcomp` (names exactly as [`perfcast::gradcomp::Method`]
//! prints them), each following the cost model's assumptions in perfcast's
//! `src/gradcomp/compressor/*.rs`:
//!
//! | file | methods | collective |
//! | --- | --- | --- |
//! | [`cast`] | `fp16`, `bf16` (PyTorch DDP's `fp16_compress_hook` / `bf16_compress_hook`) | all-reduce, 2 bytes/element |
//! | [`powersgd`] | `powersgd:rank=R` (Vogels et al. 2019) | two all-reduces (P, Q) + one of the uncompressed tensors |
//! | [`sparse`] | `topk:density=D` (Aji & Heafield 2017; Stich et al. 2018), `randomk:density=D` | all-gather (values + u32 indices) / all-reduce (values) |
//! | [`signsgd`] | `signsgd` (Bernstein et al. 2019, majority vote) | all-gather of packed bits |
//! | [`qsgd`] | `qsgd:bits=B` (Alistarh et al. 2017) | all-gather of packed codes + norms |
//!
//! A DDP step calls [`Codec::start`] once per bucket as backward makes it ready (encode and the
//! collectives) and [`Codec::finish`] (decode) for every bucket after backward, with a [`Comm`]:
//! [`LocalComm`] on one GPU, NCCL across GPUs. PowerSGD runs its whole round in `start`. [`check`] holds the correctness checks run before anything is timed (CPU
//! unit tests at tiny sizes, `perfcast-gpu gradcomp codec-check` at real sizes), [`micro`] the
//! per-stage timings `perfcast calibrate` fits (`gradcomp codec-micro`).
//!
//! Every random draw is seeded: the seed is a constructor argument, and draws are derived from
//! (seed, bucket, round) by a counter-based hash ([`kernels::key`]), so every rank draws the same
//! numbers without communicating.

pub mod cast;
pub mod check;
pub mod graph;
pub mod kernels;
pub mod micro;
pub mod powersgd;
pub mod psgd;
pub mod qsgd;
pub mod signsgd;
pub mod sparse;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use perfcast::gradcomp::{Compressor, Method};

/// The collective a codec talks through: a local stand-in on one GPU, NCCL across GPUs.
pub trait Comm {
    /// Ranks.
    fn world(&self) -> usize;
    /// Sum over ranks, in place semantics: returns the summed tensor (same shape/dtype).
    fn all_reduce_sum(&mut self, t: &Tensor) -> Result<Tensor>;
    /// Concatenation over ranks along dim 0 (rank order).
    fn all_gather(&mut self, t: &Tensor) -> Result<Tensor>;
    /// End of a step's rounds: a communicator that kept its inputs alive (so that freeing them
    /// on the compute stream does not make that stream wait for the collective that reads them)
    /// lets them go.
    fn release(&mut self) -> Result<()> {
        Ok(())
    }
    /// Deferred mode on or off: while on, the results of collectives are read only after
    /// [`Comm::release`] (a communicator on its own stream then makes the compute stream wait
    /// once, there, instead of after every collective).
    fn deferred(&mut self, _on: bool) {}
    /// Waits until every collective issued so far has finished (the communicator's own stream,
    /// if it has one; the compute device is synchronized by the caller).
    ///
    /// # Errors
    /// A device error.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    /// Diagnostic (`gradcomp ddp --token-only 1`): while on, every collective moves one element
    /// (it still makes the ranks wait for each other, in the same order and on the same stream)
    /// and returns its input as the result (all-gather: `world` copies), as [`Comm`]s without
    /// communication do. Isolates the ranks' coupling from the data movement.
    fn token_only(&mut self, _on: bool) {}
}

/// A round issued up to its last collective ([`Codec::start`]); [`Codec::finish`] decodes it.
pub enum Pending {
    /// The whole round already ran (its average gradient).
    Done(Tensor),
    /// The collectives' results, still to be decoded.
    Decode {
        /// Bucket.
        bucket: usize,
        /// Elements of the bucket.
        n: usize,
        /// Shape of the gradient handed in.
        shape: candle_core::Shape,
        /// What the collectives delivered, one per payload.
        recv: Vec<Tensor>,
        /// Ranks.
        world: usize,
    },
}

/// One gradient compressor with its state (error feedback, PowerSGD's Q), per bucket.
pub trait Codec {
    /// Name exactly as perfcast's `Method::name()` prints it (`powersgd:rank=4`, `topk:density=0.01`, ...).
    fn name(&self) -> String;
    /// One DDP round for bucket `bucket`: compress the flat f32 gradient `grad` (whose matrices
    /// are `shapes`, row-major, packed in order, then `vector_elems` loose elements), communicate
    /// through `comm`, and return the decompressed *average* gradient (same shape as `grad`).
    fn round(
        &mut self,
        bucket: usize,
        grad: &Tensor,
        shapes: &[(usize, usize)],
        comm: &mut dyn Comm,
    ) -> Result<Tensor>;
    /// The round up to its last collective: encode and issue the collectives, leaving the
    /// decode to [`Codec::finish`], so a DDP step can defer every decode to the end of backward
    /// and keep the compute stream from waiting on a collective mid-backward (PyTorch runs a
    /// hook's post-collective work in a future's callback on a side stream instead). The
    /// default runs the whole [`Codec::round`] here (PowerSGD, whose second collective needs
    /// the first's result).
    ///
    /// # Errors
    /// As [`Codec::round`].
    fn start(
        &mut self,
        bucket: usize,
        grad: &Tensor,
        shapes: &[(usize, usize)],
        comm: &mut dyn Comm,
    ) -> Result<Pending> {
        Ok(Pending::Done(self.round(bucket, grad, shapes, comm)?))
    }
    /// The rest of a round [`Codec::start`] began: the average gradient, shaped as handed in.
    ///
    /// # Errors
    /// Decode errors; a `Decode` pending handed to a codec that never makes one.
    fn finish(&mut self, p: Pending) -> Result<Tensor> {
        match p {
            Pending::Done(t) => Ok(t),
            Pending::Decode { .. } => bail!("{}: no deferred decode", self.name()),
        }
    }
    /// After the step's synchronization (outside the timed window): what the codec flagged on
    /// the device ([`TwoStage::verify`]).
    ///
    /// # Errors
    /// The flagged fault; device errors.
    fn verify(&mut self) -> Result<()> {
        Ok(())
    }
    /// Every device tensor the codec holds across calls (error feedback, warm starts, drawn
    /// positions), as shared handles: what must stay alive while a call is captured as a CUDA
    /// graph (a stage that replaces its state would otherwise free memory allocated outside the
    /// capture inside it, which stream capture forbids; [`graph`]).
    fn state(&self) -> Vec<Tensor> {
        Vec::new()
    }
}

/// The single-GPU stand-in for the collective: every rank holds the same tensor, so an
/// all-reduce returns `world · t` and an all-gather `world` copies of `t` in a row. Both are
/// computed for real on the one device (a sum over a `world`-fold broadcast of `t`, a
/// concatenation of `world` copies), so they read (and the gather writes) the bytes the
/// collective would deliver; no link is modelled (the rows that use it say so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalComm {
    /// Ranks stood in for (≥ 1).
    pub world: usize,
}

impl Comm for LocalComm {
    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&mut self, t: &Tensor) -> Result<Tensor> {
        let mut dims = vec![self.world];
        dims.extend_from_slice(t.dims());
        Ok(t.unsqueeze(0)?.broadcast_as(dims)?.sum(0)?)
    }

    fn all_gather(&mut self, t: &Tensor) -> Result<Tensor> {
        let copies = vec![t.clone(); self.world];
        Ok(Tensor::cat(&copies, 0)?)
    }
}

/// Which collective a [`TwoStage`] codec's payload goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collective {
    /// Summed over ranks (payloads of every rank line up element by element).
    AllReduce,
    /// Concatenated over ranks (payloads differ in meaning between ranks).
    AllGather,
}

/// A codec whose round is encode → one collective per payload tensor → decode (every method
/// but PowerSGD, which talks twice in between; see [`powersgd::PowerSgd`]'s stages).
pub trait TwoStage {
    /// perfcast's method name.
    fn name(&self) -> String;
    /// The collective every payload tensor goes through.
    fn collective(&self) -> Collective;
    /// Everything before the collective: the payload tensors of flat f32 `grad` (`[n]`) in
    /// bucket `bucket` (error feedback is updated here), for `world` ranks.
    ///
    /// # Errors
    /// Shapes, dtypes, device errors.
    fn encode(&mut self, bucket: usize, grad: &Tensor, world: usize) -> Result<Vec<Tensor>>;
    /// Everything after it: the average gradient (f32 `[n]`) from the payloads as the
    /// collective delivered them (summed, or concatenated in rank order).
    ///
    /// # Errors
    /// Shapes, dtypes, device errors.
    fn decode(&mut self, bucket: usize, n: usize, recv: &[Tensor], world: usize) -> Result<Tensor>;
    /// Bytes one rank puts on the wire per round for an `n`-element bucket (its payload).
    fn wire_bytes(&self, n: usize) -> u64;
    /// Checks what the codec could only flag on the device during the step (Top-k: a
    /// non-finite gradient): call after the step's synchronization, outside the timed window.
    ///
    /// # Errors
    /// The flagged fault; device errors.
    fn verify(&mut self) -> Result<()> {
        Ok(())
    }
    /// As [`Codec::state`].
    fn state(&self) -> Vec<Tensor> {
        Vec::new()
    }
}

/// One round of a [`TwoStage`] codec through `comm`.
///
/// # Errors
/// As [`TwoStage::encode`] / [`TwoStage::decode`], or the collective's.
pub fn two_stage_round(
    c: &mut dyn TwoStage,
    bucket: usize,
    grad: &Tensor,
    comm: &mut dyn Comm,
) -> Result<Tensor> {
    let p = issue(c, bucket, grad, comm, false)?;
    two_stage_finish(c, p)
}

/// A [`TwoStage`] round up to its collectives (encode, issue them): the [`Pending::Decode`]
/// that [`TwoStage::decode`] finishes.
///
/// # Errors
/// As [`TwoStage::encode`], or the collective's.
pub fn two_stage_start(
    c: &mut dyn TwoStage,
    bucket: usize,
    grad: &Tensor,
    comm: &mut dyn Comm,
) -> Result<Pending> {
    issue(c, bucket, grad, comm, true)
}

/// Encode, then one collective per payload; `defer`: the results are read only after
/// [`Comm::release`] ([`Comm::deferred`] mode), else right away.
fn issue(
    c: &mut dyn TwoStage,
    bucket: usize,
    grad: &Tensor,
    comm: &mut dyn Comm,
    defer: bool,
) -> Result<Pending> {
    let world = comm.world();
    let flat = flat_f32(grad)?;
    let n = flat.elem_count();
    let sent = c.encode(bucket, &flat, world)?;
    comm.deferred(defer);
    let recv = sent
        .iter()
        .map(|t| match c.collective() {
            Collective::AllReduce => comm.all_reduce_sum(t),
            Collective::AllGather => comm.all_gather(t),
        })
        .collect::<Result<Vec<_>>>();
    comm.deferred(false);
    Ok(Pending::Decode {
        bucket,
        n,
        shape: grad.shape().clone(),
        recv: recv?,
        world,
    })
}

/// Decodes what [`two_stage_start`] left.
///
/// # Errors
/// As [`TwoStage::decode`].
pub fn two_stage_finish(c: &mut dyn TwoStage, p: Pending) -> Result<Tensor> {
    match p {
        Pending::Done(t) => Ok(t),
        Pending::Decode {
            bucket,
            n,
            shape,
            recv,
            world,
        } => Ok(c.decode(bucket, n, &recv, world)?.reshape(shape)?),
    }
}

/// `grad` as a contiguous flat f32 vector.
///
/// # Errors
/// `grad` is not f32.
pub fn flat_f32(grad: &Tensor) -> Result<Tensor> {
    if grad.dtype() != DType::F32 {
        bail!("gradient dtype {:?}: expected f32", grad.dtype());
    }
    Ok(grad.flatten_all()?.contiguous()?)
}

/// Wraps a [`TwoStage`] codec as a [`Codec`].
pub struct Staged<T: TwoStage>(pub T);

impl<T: TwoStage> Codec for Staged<T> {
    fn name(&self) -> String {
        self.0.name()
    }
    fn round(
        &mut self,
        bucket: usize,
        grad: &Tensor,
        _shapes: &[(usize, usize)],
        comm: &mut dyn Comm,
    ) -> Result<Tensor> {
        two_stage_round(&mut self.0, bucket, grad, comm)
    }
    fn start(
        &mut self,
        bucket: usize,
        grad: &Tensor,
        _shapes: &[(usize, usize)],
        comm: &mut dyn Comm,
    ) -> Result<Pending> {
        two_stage_start(&mut self.0, bucket, grad, comm)
    }
    fn finish(&mut self, p: Pending) -> Result<Tensor> {
        two_stage_finish(&mut self.0, p)
    }
    fn verify(&mut self) -> Result<()> {
        self.0.verify()
    }
    fn state(&self) -> Vec<Tensor> {
        self.0.state()
    }
}

/// A codec built from a method name, with its stages reachable (what [`micro`] times).
pub enum AnyCodec {
    /// PowerSGD (three stages: `p`, `q`, `decode`).
    PowerSgd(powersgd::PowerSgd),
    /// Every other method (`encode`, `decode`).
    Two(Box<dyn TwoStage>),
}

impl AnyCodec {
    /// The codec of `method` (perfcast's syntax: `fp16`, `powersgd:rank=4`, `topk:density=0.01`,
    /// ...), drawing its random numbers from `seed`.
    ///
    /// # Errors
    /// An unknown or malformed method (perfcast's message, naming the parameter and range);
    /// `none` (nothing to compress); QSGD bits other than 2, 4 or 8; PowerSGD ranks above 32.
    pub fn parse(method: &str, seed: u64) -> Result<AnyCodec> {
        let m = Method::parse(method).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(match m {
            Method::None => bail!("--method none: no codec (plain DDP all-reduces f32)"),
            Method::Cast16 { bf16 } => AnyCodec::Two(Box::new(cast::Cast16::new(bf16))),
            Method::PowerSgd { rank } => {
                if rank as usize > psgd::MAX_RANK {
                    bail!(
                        "--method {method}: rank = {rank}: the harness's fused PowerSGD kernels take 1..={} (perfcast's model takes any rank)",
                        psgd::MAX_RANK
                    );
                }
                AnyCodec::PowerSgd(powersgd::PowerSgd::new(rank as usize, seed))
            }
            Method::TopK { density } => AnyCodec::Two(Box::new(sparse::TopK::new(density)?)),
            Method::RandomK { density } => {
                AnyCodec::Two(Box::new(sparse::RandomK::new(density, seed)?))
            }
            Method::SignSgd => AnyCodec::Two(Box::new(signsgd::SignSgd::new())),
            Method::Qsgd { bits } => AnyCodec::Two(Box::new(qsgd::Qsgd::new(bits, seed)?)),
        })
    }

    /// perfcast's name of the method.
    pub fn name(&self) -> String {
        match self {
            AnyCodec::PowerSgd(p) => p.name(),
            AnyCodec::Two(t) => t.name(),
        }
    }
}

impl Codec for AnyCodec {
    fn name(&self) -> String {
        AnyCodec::name(self)
    }
    fn round(
        &mut self,
        bucket: usize,
        grad: &Tensor,
        shapes: &[(usize, usize)],
        comm: &mut dyn Comm,
    ) -> Result<Tensor> {
        match self {
            AnyCodec::PowerSgd(p) => p.round(bucket, grad, shapes, comm),
            AnyCodec::Two(t) => two_stage_round(t.as_mut(), bucket, grad, comm),
        }
    }
    fn start(
        &mut self,
        bucket: usize,
        grad: &Tensor,
        shapes: &[(usize, usize)],
        comm: &mut dyn Comm,
    ) -> Result<Pending> {
        match self {
            AnyCodec::PowerSgd(p) => Ok(Pending::Done(p.round(bucket, grad, shapes, comm)?)),
            AnyCodec::Two(t) => two_stage_start(t.as_mut(), bucket, grad, comm),
        }
    }
    fn finish(&mut self, p: Pending) -> Result<Tensor> {
        match self {
            AnyCodec::PowerSgd(_) => match p {
                Pending::Done(t) => Ok(t),
                Pending::Decode { .. } => bail!("powersgd: no deferred decode"),
            },
            AnyCodec::Two(t) => two_stage_finish(t.as_mut(), p),
        }
    }
    fn verify(&mut self) -> Result<()> {
        match self {
            AnyCodec::PowerSgd(_) => Ok(()),
            AnyCodec::Two(t) => t.verify(),
        }
    }
    fn state(&self) -> Vec<Tensor> {
        match self {
            AnyCodec::PowerSgd(p) => p.state_tensors(),
            AnyCodec::Two(t) => t.state(),
        }
    }
}

/// No compression (perfcast's `none`, plain DDP): all-reduce the f32 bucket, divide by the world
/// size.
pub struct NoneCodec;

impl Codec for NoneCodec {
    fn name(&self) -> String {
        "none".into()
    }

    fn round(
        &mut self,
        _bucket: usize,
        grad: &Tensor,
        _shapes: &[(usize, usize)],
        comm: &mut dyn Comm,
    ) -> Result<Tensor> {
        let w = comm.world() as f64;
        Ok((comm.all_reduce_sum(grad)? / w)?)
    }
    fn start(
        &mut self,
        bucket: usize,
        grad: &Tensor,
        _shapes: &[(usize, usize)],
        comm: &mut dyn Comm,
    ) -> Result<Pending> {
        comm.deferred(true);
        let sum = comm.all_reduce_sum(grad);
        comm.deferred(false);
        Ok(Pending::Decode {
            bucket,
            n: grad.elem_count(),
            shape: grad.shape().clone(),
            recv: vec![sum?],
            world: comm.world(),
        })
    }
    fn finish(&mut self, p: Pending) -> Result<Tensor> {
        match p {
            Pending::Done(t) => Ok(t),
            Pending::Decode { recv, world, .. } => match recv.as_slice() {
                [sum] => Ok((sum / world as f64)?),
                o => bail!("none: expected one summed tensor, got {}", o.len()),
            },
        }
    }
}

/// The codec of `method` (`none`: [`NoneCodec`]; otherwise see [`AnyCodec::parse`]) as a boxed
/// [`Codec`], the DDP step's entry.
///
/// # Errors
/// As [`AnyCodec::parse`].
pub fn build(method: &str, seed: u64) -> Result<Box<dyn Codec>> {
    if method == "none" {
        return Ok(Box::new(NoneCodec));
    }
    Ok(Box::new(AnyCodec::parse(method, seed)?))
}

/// perfcast's name of a parsed method (to check ours against).
pub fn perfcast_name(method: &str) -> Result<String> {
    Ok(Method::parse(method)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .name())
}

/// `t`'s elements as f32 on the host, flattened (any dtype, any device).
///
/// # Errors
/// A device or conversion error.
pub fn host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

/// A synthetic gradient on `dev`: `n` f32 values `10⁻³ · z₁ · exp(z₂ / 2)` with `z₁, z₂` standard
/// normal (Box–Muller over [`kernels::uniform`] streams of `seed`): zero-mean, heavy-tailed like
/// real gradients. Used by the checks and the micro-measurements (never all zeros).
///
/// # Errors
/// Device errors.
pub fn synthetic_gradient(dev: &Device, n: usize, seed: u64) -> Result<Tensor> {
    let z1 = normal(dev, n, kernels::key(seed, usize::MAX, 1))?;
    let z2 = normal(dev, n, kernels::key(seed, usize::MAX, 2))?;
    Ok(((z1 * 1e-3)? * z2.affine(0.5, 0.0)?.exp()?)?)
}

/// `n` standard normals (Box–Muller, Box & Muller 1958) of stream `key` on `dev`, f32.
///
/// # Errors
/// Device errors.
pub fn normal(dev: &Device, n: usize, key: u64) -> Result<Tensor> {
    let like = Tensor::zeros(1, DType::F32, dev)?;
    let u1 = kernels::uniform(&like, kernels::mix64(key ^ 1), n)?;
    let u2 = kernels::uniform(&like, kernels::mix64(key ^ 2), n)?;
    // 1 − u1 ∈ (0, 1]: the logarithm is finite.
    let r = u1.affine(-1.0, 1.0)?.log()?.affine(-2.0, 0.0)?.sqrt()?;
    let c = u2.affine(2.0 * std::f64::consts::PI, 0.0)?.cos()?;
    Ok((r * c)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_perfcast() {
        for m in [
            "fp16",
            "bf16",
            "powersgd:rank=4",
            "topk:density=0.01",
            "randomk:density=0.001",
            "signsgd",
            "qsgd:bits=4",
        ] {
            let c = AnyCodec::parse(m, 1).unwrap();
            assert_eq!(c.name(), perfcast_name(m).unwrap());
            assert_eq!(c.name(), m);
        }
        assert!(AnyCodec::parse("none", 1).is_err());
        let e = AnyCodec::parse("powersgd:rank=64", 1)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("rank = 64") && e.contains("1..=32"), "{e}");
        assert!(AnyCodec::parse("powersgd:rank=32", 1).is_ok());
        let e = AnyCodec::parse("qsgd:bits=3", 1).err().unwrap().to_string();
        assert!(e.contains("bits") && e.contains('3'), "{e}");
        let e = AnyCodec::parse("topk:density=2", 1)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("density"), "{e}");
    }

    #[test]
    fn local_comm_reduces_and_gathers_world_copies() {
        let dev = Device::Cpu;
        let t = Tensor::new(&[1f32, -2., 3.], &dev).unwrap();
        let mut c = LocalComm { world: 4 };
        let s = c.all_reduce_sum(&t).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(s, vec![4., -8., 12.]);
        let g = c.all_gather(&t).unwrap();
        assert_eq!(g.dims(), &[12]);
        assert_eq!(g.to_vec1::<f32>().unwrap()[9..], [1., -2., 3.]);
        let h = Tensor::new(&[1f32, 2.], &dev)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        let s = c.all_reduce_sum(&h).unwrap();
        assert_eq!(s.dtype(), DType::F16);
        assert_eq!(
            s.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap(),
            vec![4., 8.]
        );
    }

    #[test]
    fn four_equal_ranks_average_to_the_one_rank_result() {
        // LocalComm's ranks all hold the same gradient, so the average must equal the one-rank
        // round: exactly where scaling by 4 is exact (sums of four equal values, power-of-two
        // scales: PowerSGD's P is 4× larger, its normalized columns the same bits), within the
        // cast bound for fp16 (g/4 may go subnormal).
        let dev = Device::Cpu;
        let shapes = [(20, 16), (3, 5)];
        let n = 20 * 16 + 15 + 7;
        let g = synthetic_gradient(&dev, n, 8).unwrap();
        for m in [
            "fp16",
            "bf16",
            "powersgd:rank=3",
            "topk:density=0.05",
            "randomk:density=0.05",
            "signsgd",
            "qsgd:bits=2",
            "qsgd:bits=8",
        ] {
            let mut one = build(m, 4).unwrap();
            let mut four = build(m, 4).unwrap();
            for round in 0..3 {
                let a = one
                    .round(0, &g, &shapes, &mut LocalComm { world: 1 })
                    .unwrap();
                let b = four
                    .round(0, &g, &shapes, &mut LocalComm { world: 4 })
                    .unwrap();
                let (a, b) = (a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
                for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
                    let tol = match m {
                        "fp16" => x.abs() * 2f32.powi(-10) + 2f32.powi(-23),
                        _ => 0.0,
                    };
                    assert!(
                        (x - y).abs() <= tol,
                        "{m} round {round} element {i}: {x} vs {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn synthetic_gradient_is_seeded_and_not_degenerate() {
        let dev = Device::Cpu;
        let a = synthetic_gradient(&dev, 4096, 3)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = synthetic_gradient(&dev, 4096, 3)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let c = synthetic_gradient(&dev, 4096, 4)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|x| x.is_finite()));
        // Standard normal z: E|z| = √(2/π) ≈ 0.80; with the exp(z₂/2) factor (mean e^{1/8})
        // E|g| ≈ 0.80 · 1.13 · 10⁻³ ≈ 9.0·10⁻⁴; 4096 samples keep it within ±15%.
        let m = a.iter().map(|x| x.abs() as f64).sum::<f64>() / 4096.0;
        assert!((7.7e-4..1.04e-3).contains(&m), "{m}");
    }
}
