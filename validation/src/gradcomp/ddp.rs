//! Multi-GPU data-parallel steps (issue 15): one rank per GPU, each a host thread with its own
//! candle CUDA device, an NCCL communicator per rank, every bucket's codec round issued as soon
//! as backward makes it ready (PyTorch DDP, Li et al. 2020, VLDB).
//!
//! **Rank loop** ([`rank_loop`], device-generic, CPU-tested with [`ThreadComm`]): every rank
//! builds the same weights (same seed) and its own batch (seed + 1000·rank); per point
//! (model × batch × method × bucket cap) it first runs one checked step: every rank's
//! parameters are copied to the host and compared with rank 0's — bit-identical for the
//! uncompressed `none` codec, else the run stops —; then `warmup` untimed and `repeats` timed
//! steps. With `--nocomm 1` the point is first timed with the collectives replaced by no-ops
//! ([`NoComm`]); every point starts from the initial weights (restored on the device). A timed step starts after a barrier once every rank's device is idle and ends at a
//! barrier after every rank synchronized its devices, so rank 0's clock measures the slowest
//! rank's step.
//!
//! **Overlap** (`--overlap 1`): the NCCL communicator runs on a second CUDA stream of the
//! compute stream's context; the codec's kernels stay on the compute stream, as a PyTorch DDP
//! communication hook's do. Each bucket's round is started when backward makes it ready
//! (encode, collectives) and finished (decode) after backward, so backward continues while a
//! bucket is all-reduced; PowerSGD's inline round waits for each of its collectives, so those go
//! in order on the compute stream through a second communicator (run 27: the side-stream round
//! trip cost ~140 µs per inline collective, 8 ms per BERT step, and overlapped nothing). The two
//! streams are ordered by explicit events (`NcclComm`, CUDA builds only); cudarc's automatic event tracking is
//! off on the rank's device (two events per allocation and a record per kernel argument are host
//! work, and these steps are host-bound). `--overlap 0`
//! issues the collectives on the compute stream itself, in order (rows say `overlap=0`). Run
//! 17's overlap path used a second candle device and copied buckets between the two; its ranks
//! ended up to 2e-4 apart, a race that design had.
//!
//! Rows: `kind=step` as `gradcomp step`'s with `comm=nccl`, `world` = GPUs, `overlap=0|1`, and
//! every NCCL transport knob set in the environment (`nccl_max_nchannels=1`, …, as `nccl-sweep`).
//!
//! NCCL (CUDA only): `NcclComm` calls `ncclAllReduce` (sum) / `ncclAllGather` on the tensor's
//! device memory (f32, f16, bf16, u8, u32, i64), communicators from `ncclCommInitRank` (one per
//! thread, shared unique id), `NCCL_NVLS_ENABLE=0` expected in the environment.

use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;

use candle_core::{DType, Device, Result, Tensor};

use super::cmd::{codec_for, StepArgs};
use super::codec::{Codec, Comm};
use super::models::{build, Batch, Net};
use super::step::{host_params, Engine};
use crate::timing::Repeats;

/// One point of a rank's loop.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Harness model name.
    pub model: String,
    /// Samples per rank.
    pub batch: usize,
    /// Codec name.
    pub method: String,
    /// Bucket cap, bytes.
    pub bucket_bytes: usize,
    /// Buckets formed.
    pub buckets: usize,
    /// Largest |Δ| of any parameter between a rank and rank 0 after the checked step.
    pub max_param_diff: f32,
    /// Whether every rank's parameters were bit-identical to rank 0's.
    pub identical: bool,
    /// Seconds of every timed step (rank 0's clock between barriers).
    pub times_s: Vec<f64>,
    /// Seconds of every timed step with the collectives replaced by no-ops ([`NoComm`]; empty
    /// unless asked for): `step − this` is the communication the step exposes.
    pub nocomm_s: Vec<f64>,
    /// Mean loss of the checked step over the ranks' own batches (rank 0's).
    pub loss: f32,
}

/// Host copies of every rank's parameters, for the cross-rank check.
pub struct ParamCheck {
    slots: Mutex<Vec<Option<Vec<f32>>>>,
    verdict: Mutex<(f32, bool)>,
}

impl ParamCheck {
    /// For `world` ranks.
    pub fn new(world: usize) -> ParamCheck {
        ParamCheck {
            slots: Mutex::new(vec![None; world]),
            verdict: Mutex::new((0.0, true)),
        }
    }
}

/// What a rank loop needs besides its devices and communicator.
pub struct Shared {
    /// Ranks.
    pub world: usize,
    /// Every rank waits here (step boundaries, the check).
    pub barrier: Barrier,
    /// The parameter check.
    pub check: ParamCheck,
}

impl Shared {
    /// For `world` ranks.
    pub fn new(world: usize) -> Arc<Shared> {
        Arc::new(Shared {
            world,
            barrier: Barrier::new(world),
            check: ParamCheck::new(world),
        })
    }
}

fn sync(dev: &Device, comm: &dyn Comm) -> Result<()> {
    dev.synchronize()?;
    comm.synchronize()
        .map_err(|e| candle_core::Error::Msg(format!("{e:#}")))
}

/// `warmup` + `repeats` steps of `e`, each started after a barrier with every rank's devices
/// idle and ended at a barrier after every rank synchronized: the timed steps' seconds.
#[allow(clippy::too_many_arguments)]
fn timed(
    shared: &Shared,
    dev: &Device,
    e: &mut Engine,
    net: &dyn Net,
    batch: &Batch,
    codec: &mut dyn Codec,
    comm: &mut dyn Comm,
    reps: Repeats,
) -> Result<Vec<f64>> {
    let times = reps.run(|_| {
        sync(dev, &*comm)?;
        shared.barrier.wait();
        let t0 = Instant::now();
        e.step(net, batch, codec, comm)?;
        sync(dev, &*comm)?;
        shared.barrier.wait();
        Ok::<f64, candle_core::Error>(t0.elapsed().as_secs_f64())
    })?;
    // What the codec flagged on the device (Top-k: a non-finite gradient), after the clock.
    codec
        .verify()
        .map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?;
    Ok(times)
}

/// The collectives as no-ops (the step's cost without communication): all-reduce returns the
/// local tensor, all-gather `world` local copies (one device copy).
pub struct NoComm {
    /// Ranks the codec believes in.
    pub world: usize,
}

impl Comm for NoComm {
    fn world(&self) -> usize {
        self.world
    }
    fn all_reduce_sum(&mut self, t: &Tensor) -> anyhow::Result<Tensor> {
        let r = || -> Result<Tensor> { Ok(t.clone()) };
        Ok(r()?)
    }
    fn all_gather(&mut self, t: &Tensor) -> anyhow::Result<Tensor> {
        let r = || -> Result<Tensor> { Tensor::cat(&vec![t.clone(); self.world], 0) };
        Ok(r()?)
    }
}

/// Returns the memory the device's pool kept to the driver between points (CUDA; nothing on
/// the CPU): see `cli::trim_freed_memory`.
fn trim(dev: &Device) -> Result<()> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(cd) = dev {
        crate::cli::trim_freed_memory(cd).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    }
    let _ = dev;
    Ok(())
}

/// Rank `rank`'s loop over every point of `a` (see the module docs). Returns the points (every
/// rank returns them; rank 0's times are the ones to report).
///
/// # Errors
/// A device, codec or communication error; the `none` codec leaving ranks with different
/// parameters.
pub fn rank_loop(
    rank: usize,
    shared: &Shared,
    dev: &Device,
    comm: &mut dyn Comm,
    a: &StepArgs,
) -> Result<Vec<Point>> {
    let c = &a.common;
    let reps = Repeats::new(c.warmup, c.repeats);
    let mut out = Vec::new();
    for name in &c.model {
        let net = build(name, dev, c.seed)?;
        // Every point starts from these weights (identical on every rank).
        let initial: Vec<Tensor> = net
            .vars()
            .iter()
            .flatten()
            .map(|v| v.as_tensor().copy())
            .collect::<Result<_>>()?;
        for &b in &c.batch {
            let batch = net.batch(b, c.seq, c.seed + 1 + 1000 * rank as u64, dev)?;
            for m in &a.method {
                for &cap in &a.bucket_bytes {
                    for (v, s0) in net.vars().iter().flatten().zip(initial.iter()) {
                        v.set(s0)?;
                    }
                    let new_codec =
                        || codec_for(m).map_err(|e| candle_core::Error::Msg(e.to_string()));
                    // Without communication first (collectives replaced by no-ops), from the
                    // initial weights, which are restored afterwards.
                    let nocomm = if a.nocomm == 1 {
                        let mut e = Engine::new(net.as_ref(), a.first_bucket_bytes, cap)?;
                        let mut nc = NoComm {
                            world: shared.world,
                        };
                        let mut codec = new_codec()?;
                        let t = timed(
                            shared,
                            dev,
                            &mut e,
                            net.as_ref(),
                            &batch,
                            codec.as_mut(),
                            &mut nc,
                            reps,
                        )?;
                        for (v, s0) in net.vars().iter().flatten().zip(initial.iter()) {
                            v.set(s0)?;
                        }
                        drop((e, codec));
                        trim(dev)?;
                        t
                    } else {
                        Vec::new()
                    };
                    let mut e = Engine::new(net.as_ref(), a.first_bucket_bytes, cap)?;
                    let mut codec = new_codec()?;
                    // Checked step: every rank's parameters against rank 0's.
                    let (loss, _) = e.step(net.as_ref(), &batch, codec.as_mut(), comm)?;
                    let loss = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
                    sync(dev, &*comm)?;
                    codec
                        .verify()
                        .map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?;
                    let mine = host_params(net.as_ref())?;
                    shared.check.slots.lock().expect("check lock")[rank] = Some(mine);
                    shared.barrier.wait();
                    if rank == 0 {
                        let slots = shared.check.slots.lock().expect("check lock");
                        let r0 = slots[0].as_ref().expect("rank 0 params");
                        let mut worst = 0f32;
                        let mut same = true;
                        for p in slots.iter().skip(1).flatten() {
                            for (x, y) in p.iter().zip(r0) {
                                if x.to_bits() != y.to_bits() {
                                    same = false;
                                    worst = worst.max((x - y).abs());
                                }
                            }
                        }
                        *shared.check.verdict.lock().expect("verdict lock") = (worst, same);
                    }
                    shared.barrier.wait();
                    shared.check.slots.lock().expect("check lock")[rank] = None;
                    let (worst, same) = *shared.check.verdict.lock().expect("verdict lock");
                    if m == "none" && !same {
                        candle_core::bail!(
                            "ddp check failed: {} batch {b} bucket {cap}: ranks end the uncompressed step with different parameters (max |Δ| {worst:e})",
                            net.name()
                        )
                    }
                    comm.token_only(a.token_only == 1);
                    let times = timed(
                        shared,
                        dev,
                        &mut e,
                        net.as_ref(),
                        &batch,
                        codec.as_mut(),
                        comm,
                        reps,
                    );
                    comm.token_only(false);
                    let times = times?;
                    out.push(Point {
                        model: net.name(),
                        batch: b,
                        method: codec.name(),
                        bucket_bytes: cap,
                        buckets: e.plan.buckets.len(),
                        max_param_diff: worst,
                        identical: same,
                        times_s: times,
                        nocomm_s: nocomm,
                        loss,
                    });
                    drop((e, codec));
                    trim(dev)?;
                }
            }
        }
    }
    Ok(out)
}

/// A host-memory communicator between threads (CPU tests of the rank loop): every rank
/// deposits its f32 tensor, waits for the others, and sums (or concatenates) them in rank
/// order, so every rank gets bit-identical results, as NCCL's all-reduce gives.
pub struct ThreadComm {
    /// This rank.
    pub rank: usize,
    /// Shared slots and barrier.
    pub ex: Arc<Exchange>,
}

/// The slots [`ThreadComm`] ranks share.
pub struct Exchange {
    slots: Mutex<Vec<Vec<f32>>>,
    barrier: Barrier,
    world: usize,
}

impl Exchange {
    /// For `world` ranks.
    pub fn new(world: usize) -> Arc<Exchange> {
        Arc::new(Exchange {
            slots: Mutex::new(vec![Vec::new(); world]),
            barrier: Barrier::new(world),
            world,
        })
    }
}

impl ThreadComm {
    fn exchange(&mut self, t: &Tensor) -> Result<Vec<Vec<f32>>> {
        let host = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        self.ex.slots.lock().expect("slots")[self.rank] = host;
        self.ex.barrier.wait();
        let all = self.ex.slots.lock().expect("slots").clone();
        self.ex.barrier.wait();
        Ok(all)
    }
}

impl Comm for ThreadComm {
    fn world(&self) -> usize {
        self.ex.world
    }

    fn all_reduce_sum(&mut self, t: &Tensor) -> anyhow::Result<Tensor> {
        let mut r = || -> Result<Tensor> {
            let all = self.exchange(t)?;
            let mut acc = all[0].clone();
            for x in &all[1..] {
                for (a, b) in acc.iter_mut().zip(x) {
                    *a += b;
                }
            }
            Tensor::from_vec(acc, t.shape(), t.device())?.to_dtype(t.dtype())
        };
        Ok(r()?)
    }

    fn all_gather(&mut self, t: &Tensor) -> anyhow::Result<Tensor> {
        let mut r = || -> Result<Tensor> {
            let all = self.exchange(t)?;
            let mut dims = t.dims().to_vec();
            if dims.is_empty() {
                dims.push(1);
            }
            dims[0] *= self.ex.world;
            Tensor::from_vec(all.concat(), dims, t.device())?.to_dtype(t.dtype())
        };
        Ok(r()?)
    }
}

#[cfg(feature = "cuda")]
pub use gpu::{run, NcclComm};

/// Runs `gradcomp ddp` (needs the `cuda` feature).
///
/// # Errors
/// Always without `cuda`: one line saying so.
#[cfg(not(feature = "cuda"))]
pub fn run(_a: &StepArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("gradcomp ddp: perfcast-gpu was built without the `cuda` feature (rebuild with --features cuda)")
}

#[cfg(feature = "cuda")]
mod gpu {
    use super::{rank_loop, Point, Shared};
    use crate::gradcomp::cmd::{check, codec_for, first_bucket_param, sink, step_row, StepArgs};
    use crate::gradcomp::codec::Comm;
    use crate::measure::{Params, Stats};
    use anyhow::{anyhow, bail};
    use candle_core::cuda_backend::{CudaDType, CudaStorage};
    use candle_core::op::BackpropOp;
    use candle_core::{DType, Device, Result, Storage, Tensor};
    use cudarc::driver::DeviceRepr;
    use cudarc::nccl::safe::{Comm as Nccl, Id, NcclType, ReduceOp};
    use std::process::ExitCode;

    /// An NCCL communicator whose results are tensors of `dev`, the compute device. The
    /// communicator runs on the compute stream (`--overlap 0`) or on a second stream of the same
    /// CUDA context (`--overlap 1`). cudarc's event tracking is off (host work in a host-bound
    /// step), so with a second stream the order is explicit: the communication stream waits for an event
    /// recorded on the compute stream before each collective; results are allocated on the
    /// compute stream (so they are freed in its order); the compute stream waits for the
    /// completion event of the newest collective in [`Comm::deferred`] mode once, in
    /// [`Comm::release`], after which the kept inputs go. Inline rounds (PowerSGD) use
    /// [`NcclComm::inline`], in order on the compute stream.
    pub struct NcclComm {
        /// The communicator (on the side stream with `--overlap 1`).
        pub comm: Nccl,
        /// With `--overlap 1`, a second communicator on the compute stream for inline rounds
        /// (collectives outside [`Comm::deferred`] mode, whose results the next kernel reads):
        /// issued in order there, without the two cross-stream events.
        pub inline: Option<Nccl>,
        /// The compute device (results are its tensors).
        pub dev: Device,
        /// Inputs of this step's collectives, kept alive until [`Comm::release`] (a free on
        /// the compute stream must follow the communication stream's read).
        pub keep: Vec<Tensor>,
        /// Whether the communicator has a stream of its own (`--overlap 1`).
        pub side: bool,
        /// Deferred mode ([`Comm::deferred`]).
        pub defer: bool,
        /// Completion event of the newest deferred collective.
        pub last: Option<cudarc::driver::CudaEvent>,
        /// Emulated link (`--link-gbps`): the delay kernel (one module of the context, so it
        /// launches on either stream) and the bandwidth, bytes/s.
        pub link: Option<(cudarc::driver::CudaFunction, f64)>,
        /// [`Comm::token_only`] mode.
        pub token: bool,
    }

    fn msg(e: impl std::fmt::Debug) -> candle_core::Error {
        candle_core::Error::Msg(format!("NCCL/CUDA error {e:?}"))
    }

    impl NcclComm {
        fn launch<T: CudaDType + NcclType + DeviceRepr>(
            &mut self,
            t: &Tensor,
            gather: bool,
        ) -> Result<Tensor> {
            let t = t.contiguous()?;
            self.keep.push(t.clone());
            if self.token {
                // One element through the same communicator and stream order; the input is the
                // result (see `Comm::token_only`).
                let one = t.flatten_all()?.narrow(0, 0, 1)?;
                self.token = false;
                let r = self.launch::<T>(&one, false);
                self.token = true;
                // The one-element result is written on the communication stream: keep it until
                // `release` has made the compute stream wait (dropped here, its memory went back
                // to the compute stream's pool while NCCL could still write it, and the next
                // allocation there was corrupted: run 44/45's Top-k token steps).
                self.keep.push(r?);
                return if gather {
                    Tensor::cat(&vec![t; self.comm.world_size()], 0)
                } else {
                    Ok(t)
                };
            }
            let n = t.elem_count();
            let world = self.comm.world_size();
            let compute = self.dev.as_cuda_device()?.cuda_stream();
            // SAFETY: every element is written by the collective before any read.
            let mut out =
                unsafe { compute.alloc::<T>(if gather { n * world } else { n }) }.map_err(msg)?;
            // An inline collective with a compute-stream communicator goes there, in order.
            let inline = if self.side && !self.defer {
                self.inline.as_ref()
            } else {
                None
            };
            let side = self.side && inline.is_none();
            let comm = inline.unwrap_or(&self.comm);
            if side {
                let ready = compute.record_event(None).map_err(msg)?;
                comm.stream().wait(&ready).map_err(msg)?;
            }
            {
                let (st, lay) = t.storage_and_layout();
                let Storage::Cuda(cs) = &*st else {
                    candle_core::bail!("NCCL: tensor not on a CUDA device")
                };
                let off = lay.start_offset();
                let src = cs.as_cuda_slice::<T>()?.slice(off..off + n);
                if gather {
                    comm.all_gather(&src, &mut out).map_err(msg)?;
                } else {
                    comm.all_reduce(&src, &mut out, &ReduceOp::Sum)
                        .map_err(msg)?;
                }
            }
            if let Some((f, bw)) = &self.link {
                // nccl-tests size S (all-gather: the gathered output) times the bus factor.
                let p = world as f64;
                let elem = std::mem::size_of::<T>() as f64;
                let wire = if gather {
                    (n * world) as f64 * elem * (p - 1.0) / p
                } else {
                    n as f64 * elem * 2.0 * (p - 1.0) / p
                };
                let ns = (wire / bw * 1e9).round() as u64;
                crate::gradcomp::codec::kernels::delay(&comm.stream(), f, ns)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            }
            if side {
                let done = comm.stream().record_event(None).map_err(msg)?;
                if self.defer {
                    self.last = Some(done);
                } else {
                    compute.wait(&done).map_err(msg)?;
                }
            }
            let mut dims = t.dims().to_vec();
            if gather {
                if dims.is_empty() {
                    dims.push(1);
                }
                dims[0] *= world;
            }
            let cdev = self.dev.as_cuda_device()?.clone();
            let storage = CudaStorage::wrap_cuda_slice(out, cdev);
            Ok(Tensor::from_storage(
                Storage::Cuda(storage),
                dims,
                BackpropOp::none(),
                false,
            ))
        }

        fn dispatch(&mut self, t: &Tensor, gather: bool) -> Result<Tensor> {
            match t.dtype() {
                DType::F32 => self.launch::<f32>(t, gather),
                DType::F16 => self.launch::<half::f16>(t, gather),
                DType::BF16 => self.launch::<half::bf16>(t, gather),
                DType::U8 => self.launch::<u8>(t, gather),
                DType::U32 => self.launch::<u32>(t, gather),
                DType::I64 => self.launch::<i64>(t, gather),
                o => candle_core::bail!("NCCL: dtype {o:?} not supported"),
            }
        }
    }

    impl Comm for NcclComm {
        fn world(&self) -> usize {
            self.comm.world_size()
        }
        fn all_reduce_sum(&mut self, t: &Tensor) -> anyhow::Result<Tensor> {
            let mut r = || -> Result<Tensor> { self.dispatch(t, false) };
            Ok(r()?)
        }
        fn all_gather(&mut self, t: &Tensor) -> anyhow::Result<Tensor> {
            let mut r = || -> Result<Tensor> { self.dispatch(t, true) };
            Ok(r()?)
        }
        fn deferred(&mut self, on: bool) {
            self.defer = on;
        }
        fn token_only(&mut self, on: bool) {
            self.token = on;
        }
        fn release(&mut self) -> anyhow::Result<()> {
            if let Some(done) = self.last.take() {
                let compute = self.dev.as_cuda_device()?.cuda_stream();
                compute.wait(&done).map_err(msg)?;
            }
            self.keep.clear();
            Ok(())
        }
        fn synchronize(&self) -> anyhow::Result<()> {
            self.comm.stream().synchronize().map_err(msg)?;
            Ok(())
        }
    }

    fn rank_main(
        rank: usize,
        (id, id_inline): (Id, Id),
        shared: &Shared,
        a: &StepArgs,
    ) -> Result<Vec<Point>> {
        let dev = Device::new_cuda_with_stream(rank)?;
        let cd = dev.as_cuda_device()?;
        // SAFETY: ordering between the two streams is explicit in `NcclComm` (see there);
        // everything else runs on the compute stream.
        unsafe { cd.disable_event_tracking() };
        crate::cli::keep_freed_memory(cd).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let compute = cd.cuda_stream();
        compute.context().bind_to_thread().map_err(msg)?;
        // `--overlap 1`: the collectives on a second stream of the compute stream's context
        // (one context, so cudarc's event tracking orders them against the compute kernels).
        let stream = if a.overlap == 1 && a.comm_priority == "high" {
            // Lower numbers are higher priorities: (least, greatest).
            let (_, greatest) =
                cudarc::driver::result::stream::get_priority_range().map_err(msg)?;
            compute
                .context()
                .new_stream_with_priority(greatest)
                .map_err(msg)?
        } else if a.overlap == 1 {
            compute.context().new_stream().map_err(msg)?
        } else {
            compute.clone()
        };
        let link = match a.link_gbps {
            Some(g) => Some((
                crate::gradcomp::codec::kernels::delay_function(&stream)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?,
                g * 1e9,
            )),
            None => None,
        };
        let comm = Nccl::from_rank(stream, rank, shared.world, id).map_err(msg)?;
        // Inline rounds' collectives (the compute stream waits for each right away) go on a
        // second communicator of the compute stream itself: with `--overlap 1` a round trip
        // through the side stream cost ~140 µs per collective and gained nothing (run 27:
        // PowerSGD BERT 178.1 ms on the side stream, 171.1 ms in order, twins 170.0 / 172.6).
        // Every rank creates both communicators in the same order; only for methods with inline
        // rounds (PowerSGD), the others need one. (Run 28's GPT-2 out-of-memory was not this
        // communicator: run 34 filled the device with GPT-2 PowerSGD and its twin either way.)
        let inline_rounds = a.method.iter().any(|m| m.starts_with("powersgd"));
        let inline = if a.overlap == 1 && inline_rounds {
            Some(Nccl::from_rank(compute.clone(), rank, shared.world, id_inline).map_err(msg)?)
        } else {
            None
        };
        let mut nc = NcclComm {
            comm,
            inline,
            dev: dev.clone(),
            keep: Vec::new(),
            side: a.overlap == 1,
            defer: false,
            last: None,
            link,
            token: false,
        };
        rank_loop(rank, shared, &dev, &mut nc, a)
    }

    /// `gradcomp ddp`: one thread per GPU (the first `--world` GPUs, default all).
    ///
    /// # Errors
    /// A bad flag, no GPU, a device, NCCL or check failure (a failing rank ends the process
    /// with exit code 2 so the others do not wait forever).
    pub fn run(a: &StepArgs) -> anyhow::Result<ExitCode> {
        let c = &a.common;
        check(c)?;
        crate::cli::positive("--bucket-bytes", &a.bucket_bytes)?;
        for m in &a.method {
            codec_for(m)?;
        }
        if let Some(g) = a.link_gbps {
            if !(g.is_finite() && g > 0.0 && g <= 1e4) {
                bail!("--link-gbps {g}: expected a number in (0, 10000] GB/s");
            }
        }
        if !matches!(a.comm_priority.as_str(), "normal" | "high") {
            bail!(
                "--comm-priority {:?}: expected normal or high",
                a.comm_priority
            );
        }
        if a.token_only > 1 {
            bail!("--token-only {}: expected 0 or 1", a.token_only);
        }
        if a.overlap > 1 || a.nocomm > 1 {
            bail!(
                "--overlap {} --nocomm {}: expected 0 or 1 each",
                a.overlap,
                a.nocomm
            );
        }
        let gpus = cudarc::driver::CudaContext::device_count()
            .map_err(|e| anyhow!("no CUDA GPU or driver found: {e:?}"))?
            as usize;
        let world = match a.world.as_slice() {
            [] => gpus,
            [w] if (1..=gpus).contains(w) => *w,
            o => bail!("--world {o:?}: expected one value in 1..={gpus} (GPUs on this host)"),
        };
        println!(
            "gradcomp ddp: {world} rank(s) of {gpus} GPU(s), overlap {}",
            a.overlap
        );
        let id = Id::new().map_err(|e| anyhow!("ncclGetUniqueId failed: {e:?}"))?;
        let id_inline = Id::new().map_err(|e| anyhow!("ncclGetUniqueId failed: {e:?}"))?;
        let shared = Shared::new(world);
        let handles: Vec<_> = (0..world)
            .map(|r| {
                let shared = shared.clone();
                let a = a.clone();
                std::thread::spawn(move || match rank_main(r, (id, id_inline), &shared, &a) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!(
                            "perfcast-gpu: gradcomp ddp rank {r}: {}",
                            crate::cli::first_line(&e.to_string())
                        );
                        std::process::exit(2)
                    }
                })
            })
            .collect();
        let mut points = Vec::new();
        for (r, h) in handles.into_iter().enumerate() {
            let p = h.join().map_err(|_| anyhow!("rank {r} panicked"))?;
            if r == 0 {
                points = p;
            }
        }
        let mut sink = sink(c)?;
        println!(
            "{:>14} {:>5} {:>10} {:>10} {:>7} {:>10} {:>7} {:>9} {:>8}",
            "model",
            "batch",
            "method",
            "bucket_B",
            "buckets",
            "step_ms",
            "spread",
            "identical",
            "loss"
        );
        for p in &points {
            let st = Stats::of(&p.times_s);
            println!(
                "{:>14} {:>5} {:>10} {:>10} {:>7} {:>10.3} {:>7.3} {:>9} {:>8.4}",
                p.model,
                p.batch,
                p.method,
                p.bucket_bytes,
                p.buckets,
                st.median * 1e3,
                st.spread(),
                if p.identical {
                    "yes".to_string()
                } else {
                    format!("{:.1e}", p.max_param_diff)
                },
                p.loss
            );
            let params = Params::new()
                .with("method", &p.method)
                .with("codec_seed", crate::gradcomp::cmd::CODEC_SEED)
                .with("bucket_bytes", p.bucket_bytes)
                .with("world", world)
                .with("comm", "nccl")
                .with("dtype", "f32")
                .with("seq", c.seq)
                .with("overlap", a.overlap);
            let params = if a.token_only == 1 {
                params.with("token_only", 1)
            } else {
                params
            };
            let params = if a.comm_priority == "high" && a.overlap == 1 {
                params.with("comm_priority", "high")
            } else {
                params
            };
            let params = match a.link_gbps {
                Some(g) => params.with("link_bytes_per_s", g * 1e9),
                None => params,
            };
            let params = first_bucket_param(params, a.first_bucket_bytes);
            // NCCL settings that restrict the transport (slow-link emulation), as nccl-sweep.
            let params = crate::gradcomp::sweep::NCCL_KNOBS
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_ascii_lowercase(), v)))
                .fold(params, |ps, (k, v)| ps.with(&k, v));
            sink.write(&step_row(&c.set, &p.model, p.batch, params.clone(), &st))?;
            if !p.nocomm_s.is_empty() {
                let st0 = Stats::of(&p.nocomm_s);
                println!(
                    "{:>14} {:>5} {:>10} {:>10} {:>7} {:>10.3} {:>7.3}  (no communication; exposed {:.3} ms)",
                    "", "", "", "", "", st0.median * 1e3, st0.spread(), (st.median - st0.median) * 1e3
                );
                let mut r = step_row(&c.set, &p.model, p.batch, params, &st0);
                r.metric = "step_nocomm_s".into();
                sink.write(&r)?;
            }
        }
        println!("wrote {} rows to {}", sink.rows, sink.path().display());
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::super::cmd::Common;
    use super::*;

    fn args(model: &str, caps: Vec<usize>) -> StepArgs {
        StepArgs {
            common: Common {
                model: vec![model.into()],
                batch: vec![2],
                seq: 8,
                warmup: 0,
                repeats: 2,
                seed: 3,
                set: "t".into(),
                out: std::env::temp_dir(),
            },
            method: vec!["none".into()],
            bucket_bytes: caps,
            first_bucket_bytes: 2048,
            world: vec![],
            overlap: 0,
            nocomm: 1,
            comm_priority: "normal".into(),
            token_only: 0,
            link_gbps: None,
        }
    }

    /// Three CPU ranks with different batches: after the uncompressed step every rank's
    /// parameters are bit-identical (the check passes), the parameters moved, and each rank's
    /// averaged gradient equals the mean of the three ranks' local gradients.
    #[test]
    fn ranks_end_bit_identical_and_average_gradients() {
        for model in ["val-bert-tiny", "val-gpt2-tiny"] {
            let world = 3;
            let shared = Shared::new(world);
            let ex = Exchange::new(world);
            let a = args(model, vec![4096, 1 << 20]);
            let hs: Vec<_> = (0..world)
                .map(|r| {
                    let (shared, ex, a) = (shared.clone(), ex.clone(), a.clone());
                    std::thread::spawn(move || {
                        let mut comm = ThreadComm { rank: r, ex };
                        rank_loop(r, &shared, &Device::Cpu, &mut comm, &a).unwrap()
                    })
                })
                .collect();
            let pts: Vec<Vec<Point>> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            for p in &pts[0] {
                assert!(p.identical, "{model}: {p:?}");
                assert_eq!((p.times_s.len(), p.nocomm_s.len()), (2, 2));
            }
            // Every point starts from the initial weights (restored after the no-communication
            // steps and the previous point): the checked step's loss is the same at both caps.
            assert_eq!(pts[0][0].loss, pts[0][1].loss);
            assert!(pts[0][0].buckets > pts[0][1].buckets);
            // The three ranks saw different batches (different losses).
            assert_ne!(pts[0][0].loss, pts[1][0].loss);

            // Averaging: each rank's round result = mean of local gradients (within f32 rounding).
            let net = build(model, &Device::Cpu, 3).unwrap();
            let e = Engine::new(net.as_ref(), 2048, 4096).unwrap();
            let local: Vec<_> = (0..world)
                .map(|r| {
                    let b = net.batch(2, 8, 4 + 1000 * r as u64, &Device::Cpu).unwrap();
                    let (st, _, _) = e
                        .gradients(
                            net.as_ref(),
                            &b,
                            &mut super::super::codec::NoneCodec,
                            &mut super::super::codec::LocalComm { world: 1 },
                        )
                        .unwrap();
                    st
                })
                .collect();
            let ex = Exchange::new(world);
            let hs: Vec<_> = (0..world)
                .map(|r| {
                    let ex = ex.clone();
                    let model = model.to_string();
                    std::thread::spawn(move || {
                        let net = build(&model, &Device::Cpu, 3).unwrap();
                        let e = Engine::new(net.as_ref(), 2048, 4096).unwrap();
                        let b = net.batch(2, 8, 4 + 1000 * r as u64, &Device::Cpu).unwrap();
                        let mut comm = ThreadComm { rank: r, ex };
                        let (st, _, _) = e
                            .gradients(
                                net.as_ref(),
                                &b,
                                &mut super::super::codec::NoneCodec,
                                &mut comm,
                            )
                            .unwrap();
                        let v = &net.vars()[1][0];
                        st[1]
                            .get(v.as_tensor())
                            .unwrap()
                            .flatten_all()
                            .unwrap()
                            .to_vec1::<f32>()
                            .unwrap()
                    })
                })
                .collect();
            let got: Vec<Vec<f32>> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            let v = &net.vars()[1][0];
            let locals: Vec<Vec<f32>> = local
                .iter()
                .map(|s| {
                    let g = s[1].get(v.as_tensor()).unwrap();
                    g.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                })
                .collect();
            let mean: Vec<f32> = (0..got[0].len())
                .map(|i| locals.iter().map(|l| l[i]).sum::<f32>() / world as f32)
                .collect();
            assert_eq!(got[0], got[1]);
            assert_eq!(got[0], got[2]);
            let scale = mean.iter().fold(0f32, |m, x| m.max(x.abs()));
            for (a, b) in got[0].iter().zip(&mean) {
                assert!((a - b).abs() <= 1e-6 * scale, "{model}: {a} vs {b}");
            }
        }
    }
}
