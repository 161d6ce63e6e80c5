//! Gradient compression's GPU side: collectives (all-reduce, all-gather) timed with NCCL over
//! the GPUs of one host.
//!
//! | file | what |
//! | --- | --- |
//! | [`nccl`] | the sweep: sizes, bus-bandwidth factors, NCCL launches and their check (CUDA only) |
//! | [`sweep`] | the `nccl-sweep` subcommand |

pub mod nccl;
pub mod sweep;
