//! Gradient compression's GPU side: collectives timed with NCCL over the GPUs of one host, and
//! real data-parallel training steps (BERT-base-class encoder, GPT-2-small-like decoder) with
//! DDP bucketing and a codec hook (issues 14 and 15).
//!
//! | file | what |
//! | --- | --- |
//! | [`codec`] | the compressors behind one `Codec` trait, their checks and micro-measurements |
//! | [`cli`] | `gradcomp codec-check` and `gradcomp codec-micro` (reached through [`cmd`]) |
//! | [`nccl`] | the sweep: sizes, bus-bandwidth factors, NCCL launches and their check (CUDA only) |
//! | [`sweep`] | the `nccl-sweep` subcommand |
//! | [`models`] | the two model families, unit by unit, and their seeded batches |
//! | [`bucket`] | DDP buckets formed by perfcast's own bucketing, mapped onto the parameters |
//! | [`step`] | forward, unit-by-unit backward with bucket rounds as they become ready, AdamW |
//! | [`ddp`] | one rank per GPU over NCCL, the cross-rank parameter check |
//! | [`cmd`] | the `gradcomp` command: `step`, `layers`, `ddp`, and the codec subcommands |

pub mod bucket;
pub mod cli;
pub mod cmd;
pub mod codec;
pub mod ddp;
pub mod models;
pub mod nccl;
pub mod step;
pub mod sweep;
