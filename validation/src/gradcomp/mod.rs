//! Gradient compression's GPU side: the compressors on the device, and collectives
//! (all-reduce, all-gather) timed with NCCL over the GPUs of one host.
//!
//! | file | what |
//! | --- | --- |
//! | [`codec`] | the compressors behind one `Codec` trait, their checks and micro-measurements |
//! | [`cli`] | the `gradcomp codec-check` and `gradcomp codec-micro` subcommands |
//! | [`nccl`] | the sweep: sizes, bus-bandwidth factors, NCCL launches and their check (CUDA only) |
//! | [`sweep`] | the `nccl-sweep` subcommand |

pub mod cli;
pub mod codec;
pub mod nccl;
pub mod sweep;
