//! What every `perfcast-gpu` subcommand shares: the global flags ([`Global`]), the device choice
//! ([`device`]), the one-line error form ([`first_line`]) and flag checks ([`positive`]).
//!
//! A subcommand is a module with a clap `Args` struct and a
//! `run(&Global, Args) -> anyhow::Result<ExitCode>` (for example [`crate::specdec::forward`]);
//! `main.rs` only parses and dispatches (see `validation/README.md`, "Adding a subcommand").
//! Subcommands return `anyhow` errors: they are the binary's glue, kept next to their technique.

use anyhow::{bail, Result};
use candle_core::Device;

use crate::specdec::graph::Exec;

/// Flags accepted before or after any subcommand.
#[derive(clap::Args, Clone, Debug)]
pub struct Global {
    /// Run on the CPU (small sizes; what CI tests) instead of the CUDA GPU.
    #[arg(long, global = true)]
    pub cpu: bool,
    /// How forwards run on the GPU: `graphs` (each shape captured once as a CUDA graph and
    /// replayed, as production decoders do) or `eager` (one host launch per candle op).
    #[arg(long, global = true, default_value = "graphs")]
    pub exec: Exec,
    /// With graphs, attended KV slots are rounded up to a multiple of this (one graph per bucket
    /// of context lengths; the mask hides the extra slots).
    #[arg(long, global = true, default_value_t = 64)]
    pub bucket: usize,
}

/// The device a subcommand runs on: the CPU with `cpu`, else CUDA GPU 0.
///
/// # Errors
/// Without `cpu`: the binary was built without the `cuda` feature, or no CUDA GPU or driver was
/// found (one line each).
pub fn device(cpu: bool) -> Result<Device> {
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
        keep_freed_memory(cd)?;
    }
    Ok(dev)
}

/// Keeps memory freed to the device's stream-ordered pool instead of returning it to the driver at
/// every synchronization. cudarc allocates with `cuMemAllocAsync` from the device's current pool,
/// whose release threshold defaults to 0: each `synchronize` (the timing protocol syncs around
/// every timed call) hands the freed memory back and the next call maps it again, host work that
/// made small, launch-bound shapes switch between two speeds (freeze run 14, bf16 batch 16 seq
/// 128: 62–84 ms per iteration at k ≤ 2). A threshold of `u64::MAX` (as CUDA's programming guide
/// suggests for steady-state reuse) behaves like PyTorch's caching allocator. Harness commits
/// before this change measured with the default.
///
/// # Errors
/// A driver error.
#[cfg(feature = "cuda")]
pub fn keep_freed_memory(cd: &candle_core::CudaDevice) -> Result<()> {
    use candle_core::cuda_backend::cudarc::driver::{result, sys};
    let cu_dev = cd.cuda_stream().context().cu_device();
    let mut threshold = u64::MAX;
    // SAFETY: `cu_dev` is the live device of `cd`; the attribute takes a u64.
    unsafe {
        let pool = result::device::get_mem_pool(cu_dev)?;
        result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )?;
    }
    Ok(())
}

/// Synchronizes `cd` and hands every free byte the device's memory pool keeps (see
/// [`keep_freed_memory`]) back to the driver (`cuMemPoolTrimTo(pool, 0)`), between measurement
/// points whose allocation patterns differ: run 34 filled the 143.8 GB of an H200 with GPT-2
/// PowerSGD and its no-communication twin in one process, each alone peaking at 77 GB.
///
/// # Errors
/// A driver error.
#[cfg(feature = "cuda")]
pub fn trim_freed_memory(cd: &candle_core::CudaDevice) -> Result<()> {
    use candle_core::cuda_backend::cudarc::driver::{result, sys};
    cd.cuda_stream()
        .synchronize()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let cu_dev = cd.cuda_stream().context().cu_device();
    // SAFETY: `cu_dev` is the live device of `cd`; its stream is idle, so no freed block is
    // still in flight.
    unsafe {
        let pool = result::device::get_mem_pool(cu_dev)?;
        sys::cuMemPoolTrimTo(pool, 0).result()?;
    }
    Ok(())
}

/// Fails naming `flag` unless every value is >= 1.
///
/// # Errors
/// `<flag> 0: expected integers >= 1`.
pub fn positive(flag: &str, values: &[usize]) -> Result<()> {
    match values.iter().find(|&&v| v == 0) {
        Some(v) => bail!("{flag} {v}: expected integers >= 1"),
        None => Ok(()),
    }
}

/// The first line of `s` (errors are printed as one line).
pub fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_names_the_flag_and_value() {
        assert!(positive("--batches", &[1, 4]).is_ok());
        let e = positive("--batches", &[2, 0, 3]).unwrap_err().to_string();
        assert_eq!(e, "--batches 0: expected integers >= 1");
    }
}
