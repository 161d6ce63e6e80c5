//! A DLRM-style training loop with a GPU-resident embedding-row cache (`perfcast-gpu embcache`):
//! the real implementation behind perfcast's embcache model (issue 16).
//!
//! - [`plan`]: the simulator's own policies (`perfcast::embcache::policy`) decide, on the host,
//!   per access; each batch becomes a data-movement plan (hits, misses, write-backs, slots);
//! - [`engine`]: the host table (pinned), the device cache `[slots, width]`, the on-demand and the
//!   Bagpipe-style prefetching executions (second stream, events);
//! - [`dlrm`]: bottom MLP, pairwise-dot interaction, top MLP, forward/backward/optimizer;
//! - [`segsum`]: the per-row gradient reduction (CUDA kernel in `seg_sum.cu`);
//! - [`xfer`]: pinned host buffers, host row gathers/scatters, explicit copies and events;
//! - [`check`], [`micro`], [`cli`]: correctness before timing, micro-measurements, the grid;
//! - [`rows`]: the measurement row and the one function that writes it.

pub mod check;
pub mod cli;
pub mod dlrm;
pub mod engine;
pub mod micro;
pub mod plan;
pub mod rows;
pub mod segsum;
pub mod xfer;
