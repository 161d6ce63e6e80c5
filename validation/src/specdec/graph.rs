//! Forward execution: eager (one host launch per candle op) or replayed CUDA graphs.
//!
//! candle issues every op from the host: allocation, argument packing and a kernel launch, about
//! 7 µs each, ~23 ops per transformer layer. On the H200 that host work, not the GPU, set the
//! speed of every model the harness runs (issue 3's first measurements: a 2-layer draft step cost
//! ~0.4 ms whatever its width; a 7 B target at batch 1 reached 1.76× its bandwidth floor), and it
//! varied by ~11% between machines. Production decoders (vLLM, TensorRT-LLM) capture their decode
//! forwards in CUDA graphs for exactly this reason, and so does this harness with [`Runner`]:
//!
//! - The first call for a key (model, cache, kind, batch, new tokens, attended slots) runs the
//!   forward once eagerly (loads kernel modules, lets cuBLAS set up, and, under candle's
//!   `enable_cuda_graph_htod_cache`, uploads each strided kernel's dims/strides once to a
//!   persistent device cache), then captures it on candle's
//!   stream (`cuStreamBeginCapture`, relaxed mode) over *fixed* copies of its input tensors.
//!   Intermediate tensors become graph memory nodes (cudarc allocates with `cuMemAllocAsync`); the
//!   graph is instantiated with `AUTO_FREE_ON_LAUNCH`, so the outputs' graph allocations keep
//!   their addresses and are recycled at the next launch.
//! - Every call copies its inputs into the fixed buffers, launches the graph and returns copies of
//!   the outputs (a later launch of the same graph overwrites them).
//!
//! Attended slots are rounded up to a multiple of [`Runner::bucket`] (the mask hides slots past
//! each sequence's length), so one graph serves `bucket` consecutive context lengths. On the CPU,
//! and with `--exec eager`, [`Runner::run`] just calls the closure (the bucket still applies).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use candle_core::{Device, Result, Tensor};

/// How forwards are executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exec {
    /// One host launch per op.
    Eager,
    /// Captured once per shape, replayed (CUDA only; eager on the CPU).
    Graphs,
}

impl std::str::FromStr for Exec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Exec, String> {
        match s {
            "eager" => Ok(Exec::Eager),
            "graphs" => Ok(Exec::Graphs),
            _ => Err(format!("{s}: expected eager or graphs")),
        }
    }
}

impl std::fmt::Display for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Exec::Eager => "eager",
            Exec::Graphs => "graphs",
        })
    }
}

#[cfg(feature = "cuda")]
struct Captured {
    graph: candle_core::cuda_backend::cudarc::driver::CudaGraph,
    inputs: Vec<Tensor>,
    outputs: Vec<Tensor>,
}

/// Runs forwards eagerly or through cached CUDA graphs (see the module doc).
pub struct Runner {
    exec: Exec,
    bucket: usize,
    dev: Device,
    captures: Cell<usize>,
    capture_s: Cell<f64>,
    slots: RefCell<HashMap<usize, Tensor>>,
    #[cfg(feature = "cuda")]
    graphs: RefCell<HashMap<String, Captured>>,
}

impl Runner {
    /// A runner on `dev`; `Exec::Graphs` falls back to eager off CUDA. `bucket` (≥ 1) is the
    /// attended-slot granularity (1: exactly `max(pos) + T` slots).
    pub fn new(exec: Exec, dev: &Device, bucket: usize) -> Runner {
        let exec = if dev.is_cuda() { exec } else { Exec::Eager };
        Runner {
            exec,
            bucket: bucket.max(1),
            dev: dev.clone(),
            captures: Cell::new(0),
            capture_s: Cell::new(0.0),
            slots: RefCell::new(HashMap::new()),
            #[cfg(feature = "cuda")]
            graphs: RefCell::new(HashMap::new()),
        }
    }

    /// Eager execution on `dev`.
    pub fn eager(dev: &Device) -> Runner {
        Runner::new(Exec::Eager, dev, 1)
    }

    /// Execution mode in effect.
    pub fn exec(&self) -> Exec {
        self.exec
    }

    /// Attended-slot granularity.
    pub fn bucket(&self) -> usize {
        self.bucket
    }

    /// Graphs captured so far.
    pub fn captures(&self) -> usize {
        self.captures.get()
    }

    /// Host seconds spent capturing so far (warm-up run, capture and instantiation): one-time
    /// set-up that timed loops subtract, as a serving engine captures its graphs at start-up.
    pub fn capture_s(&self) -> f64 {
        self.capture_s.get()
    }

    /// Attended slots for a forward whose furthest sequence needs `need` slots: `need` rounded
    /// up to the bucket, at most `capacity`.
    pub fn slots_for(&self, need: usize, capacity: usize) -> usize {
        need.div_ceil(self.bucket)
            .saturating_mul(self.bucket)
            .min(capacity)
            .max(need)
    }

    /// `[1, 1, s]` u32 tensor `0 .. s` (slot indices for the attention mask), created once per
    /// `s` outside any capture (a host→device copy cannot be captured from pageable memory).
    pub fn slot_ids(&self, s: usize) -> Result<Tensor> {
        if let Some(t) = self.slots.borrow().get(&s) {
            return Ok(t.clone());
        }
        let t = Tensor::arange(0u32, s as u32, &self.dev)?.reshape((1, 1, s))?;
        self.slots.borrow_mut().insert(s, t.clone());
        Ok(t)
    }

    /// Drops every captured graph (and its buffers).
    pub fn clear(&self) {
        #[cfg(feature = "cuda")]
        {
            // Let queued launches finish before their graphs and buffers go.
            let _ = self.dev.synchronize();
            self.graphs.borrow_mut().clear();
        }
    }

    /// Runs `f(inputs)`. With graphs: captured at the first call for `key`, replayed after
    /// (inputs are copied into the captured buffers, outputs copied out).
    pub fn run(
        &self,
        key: &str,
        inputs: &[Tensor],
        f: &dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Tensor>> {
        match self.exec {
            Exec::Eager => f(inputs),
            Exec::Graphs => self.replay(key, inputs, f),
        }
    }

    #[cfg(not(feature = "cuda"))]
    fn replay(
        &self,
        _key: &str,
        inputs: &[Tensor],
        f: &dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Tensor>> {
        f(inputs)
    }

    #[cfg(feature = "cuda")]
    fn replay(
        &self,
        key: &str,
        inputs: &[Tensor],
        f: &dyn Fn(&[Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Tensor>> {
        use candle_core::cuda_backend::cudarc::driver::sys;
        let cd = match &self.dev {
            Device::Cuda(d) => d,
            _ => return f(inputs),
        };
        let stream = cd.cuda_stream();
        if !self.graphs.borrow().contains_key(key) {
            let t0 = std::time::Instant::now();
            // candle uploads the dims/strides of every strided kernel from a host vector; a
            // captured upload would replay from freed host memory. With this guard the warm-up
            // run caches each such upload on the device by content and the capture reuses them
            // (a miss during capture is an error, not a bad graph).
            let _params = cd.enable_cuda_graph_htod_cache();
            let fixed = inputs
                .iter()
                .map(|t| t.contiguous()?.copy())
                .collect::<Result<Vec<_>>>()?;
            // Eager warm-up on the same buffers: module loads and cuBLAS set-up happen outside
            // the capture. It writes the same K/V the replay below writes.
            drop(f(&fixed)?);
            self.dev.synchronize()?;
            stream
                .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
                .map_err(|e| candle_core::Error::Msg(format!("graph capture {key}: {e:?}")))?;
            let outs = f(&fixed);
            let graph = stream.end_capture(
                sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH,
            );
            let outputs = outs?;
            let graph = graph
                .map_err(|e| candle_core::Error::Msg(format!("graph instantiate {key}: {e:?}")))?
                .ok_or_else(|| candle_core::Error::Msg(format!("graph {key}: empty capture")))?;
            self.captures.set(self.captures.get() + 1);
            self.capture_s
                .set(self.capture_s.get() + t0.elapsed().as_secs_f64());
            self.graphs.borrow_mut().insert(
                key.to_string(),
                Captured {
                    graph,
                    inputs: fixed,
                    outputs,
                },
            );
        }
        let graphs = self.graphs.borrow();
        let c = &graphs[key];
        for (dst, src) in c.inputs.iter().zip(inputs) {
            if dst.dims() != src.dims() {
                candle_core::bail!(
                    "graph {key}: input shape {:?}, captured {:?}",
                    src.dims(),
                    dst.dims()
                )
            }
            dst.slice_set(&src.contiguous()?, 0, 0)?;
        }
        c.graph
            .launch()
            .map_err(|e| candle_core::Error::Msg(format!("graph launch {key}: {e:?}")))?;
        c.outputs.iter().map(Tensor::copy).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_up_to_the_bucket_within_capacity() {
        let rt = Runner::new(Exec::Graphs, &Device::Cpu, 64);
        assert_eq!(rt.exec(), Exec::Eager, "no graphs off CUDA");
        assert_eq!(rt.slots_for(1, 1000), 64);
        assert_eq!(rt.slots_for(64, 1000), 64);
        assert_eq!(rt.slots_for(65, 1000), 128);
        assert_eq!(rt.slots_for(65, 100), 100);
        assert_eq!(Runner::eager(&Device::Cpu).slots_for(65, 1000), 65);
        assert_eq!(
            rt.slot_ids(5).unwrap().to_vec3::<u32>().unwrap(),
            vec![vec![vec![0, 1, 2, 3, 4]]]
        );
    }
}
