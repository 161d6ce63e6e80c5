//! Codec calls captured as CUDA graphs (`codec-micro --codec-exec graph`, `codec-check`).
//!
//! An eager codec call is a chain of candle ops and custom kernels, each issued by the host
//! (allocation, argument packing, `cuLaunchKernel`): for calls under ~100 µs the host's issue
//! rate sets the time, and that rate differs between machines of one GPU model (runs 49–60: the
//! launch-bound calls of twelve fresh H200 hosts took 0.98–1.33× run 48's, while calls with
//! ≥ 100 µs of device work agreed within 2%). Captured once and replayed, the same call costs
//! the host one `cuGraphLaunch`, and the GPU runs the kernels back to back: the device-side
//! cost perfcast's launch + bytes + FLOPs model describes, as a production hook captured with
//! the training step (PyTorch's `torch.cuda.graphs` with DDP, Nguyen et al. 2021) pays it.
//!
//! Capture follows the harness's recipe ([`crate::specdec::graph`]): candle's host-to-device
//! upload cache is on for an eager warm-up call and the capture; allocations inside the capture
//! become graph memory nodes (instantiated with `AUTO_FREE_ON_LAUNCH`). A stage that replaces
//! its state (error feedback, Top-k's fault word, PowerSGD's round) would free memory allocated
//! outside the capture inside it, which stream capture forbids: the caller's `hold` returns
//! shared handles of that state ([`super::Codec::state`]), kept alive until the graph is gone.
//! A replay re-runs the captured call on the state it was captured on (the same kernels over
//! the same sizes; Random-k and QSGD draw with the captured round's key): what timing needs.
//! `codec-check` checks on the device that one replay returns exactly what the eager call
//! returns ([`super::check::graph_replay`]).

use anyhow::Result;
use candle_core::{Device, Tensor};

use crate::measure::Stats;
use crate::timing::Repeats;

/// How a timed codec call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exec {
    /// Every op issued by the host, as a step's hook runs it (every committed set before run 61).
    Eager,
    /// Captured once as a CUDA graph, replayed (CUDA only).
    Graph,
}

impl Exec {
    /// `eager` or `graph` (the rows' `exec` parameter).
    pub fn as_str(self) -> &'static str {
        match self {
            Exec::Eager => "eager",
            Exec::Graph => "graph",
        }
    }

    /// Parses `eager` / `graph`.
    ///
    /// # Errors
    /// Anything else, naming the allowed values.
    pub fn parse(s: &str) -> Result<Exec> {
        match s {
            "eager" => Ok(Exec::Eager),
            "graph" => Ok(Exec::Graph),
            _ => anyhow::bail!("--codec-exec {s}: expected eager or graph"),
        }
    }
}

/// A call captured as a CUDA graph, with the state it must outlive. Fields drop in order: the
/// graph, then its outputs, then the held state.
pub struct Captured<T> {
    #[cfg(feature = "cuda")]
    graph: candle_core::cuda_backend::cudarc::driver::CudaGraph,
    /// What the captured call returned (graph memory: valid after a launch, until the next).
    pub out: T,
    /// The state handles taken before the capture.
    _held: Vec<Tensor>,
}

impl<T> Captured<T> {
    /// Replays the graph once on the device's stream.
    ///
    /// # Errors
    /// A driver error.
    pub fn launch(&self) -> Result<()> {
        #[cfg(feature = "cuda")]
        {
            self.graph
                .launch()
                .map_err(|e| anyhow::anyhow!("codec graph launch: {e:?}"))?;
            Ok(())
        }
        #[cfg(not(feature = "cuda"))]
        anyhow::bail!("codec graphs need the cuda feature")
    }
}

/// Captures `f(c)` as a CUDA graph on `dev`'s stream: one eager warm-up call of `f` (module
/// loads, cuBLAS set-up, the upload cache; it advances `c` as any call does), then `hold(c)`,
/// then the capture. Fails off CUDA.
///
/// # Errors
/// Off CUDA; the warm-up's or the capture's error; a capture that recorded nothing.
pub fn capture<C: ?Sized, T>(
    dev: &Device,
    c: &mut C,
    hold: impl Fn(&C) -> Vec<Tensor>,
    mut f: impl FnMut(&mut C) -> Result<T>,
) -> Result<Captured<T>> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(cd) = dev {
        use candle_core::cuda_backend::cudarc::driver::sys;
        let _uploads = cd.enable_cuda_graph_htod_cache();
        drop(f(c)?);
        dev.synchronize()?;
        let held = hold(c);
        let stream = cd.cuda_stream();
        stream
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
            .map_err(|e| anyhow::anyhow!("codec graph capture: {e:?}"))?;
        let out = f(c);
        let graph = stream.end_capture(
            sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH,
        );
        let out = out?;
        let graph = graph
            .map_err(|e| anyhow::anyhow!("codec graph instantiate: {e:?}"))?
            .ok_or_else(|| anyhow::anyhow!("codec graph: the capture recorded nothing"))?;
        return Ok(Captured {
            graph,
            out,
            _held: held,
        });
    }
    let _ = (c, hold, &mut f);
    anyhow::bail!(
        "--codec-exec graph: device {:?} cannot capture CUDA graphs (run on a CUDA GPU, or use --codec-exec eager)",
        dev.location()
    )
}

/// Median-and-spread seconds per call of `f(c)` replayed as a captured graph, under the
/// protocol ([`crate::timing::pipelined`]: `iters` launches between two synchronizations).
///
/// # Errors
/// As [`capture`]; launch and synchronization errors.
pub fn time<C: ?Sized>(
    dev: &Device,
    reps: Repeats,
    iters: usize,
    c: &mut C,
    hold: impl Fn(&C) -> Vec<Tensor>,
    f: impl FnMut(&mut C) -> Result<()>,
) -> Result<Stats> {
    let g = capture(dev, c, hold, f)?;
    let xs =
        reps.run(|_| crate::timing::pipelined::<Device, anyhow::Error>(dev, iters, || g.launch()))?;
    dev.synchronize()?;
    Ok(Stats::of(&xs))
}
