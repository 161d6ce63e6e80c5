//! Real fine-tuning with layer freezing (`perfcast-gpu freeze …`): a BERT-base-class encoder
//! trained with AdamW in f32 or bf16 mixed precision on a classification task built from the
//! committed corpus, frozen by the library's policies (fixed k, FreezeOut, AutoFreeze decided
//! online from the real gradient norms), with the frozen prefix's output cached on the device or
//! in host memory; and the measurements `perfcast calibrate` / `validate` read (per-unit micro
//! timings, end-to-end runs, the gradient-norm trace and the real timeline).
//!
//! - [`model`]: the encoder and its freezable units (`embeddings`, `block.i`, `head`).
//! - [`data`]: the word-hash tokenizer and the snippet-classification task.
//! - [`policy`]: the library's policies and AutoFreeze rule, mirrored.
//! - [`train`]: the loop (frozen prefix without a backward graph, per-unit AdamW, cache tiers).
//! - [`mod@bench`]: micro-measurements and end-to-end timing.
//! - [`rows`]: the one place rows become the measurement CSV.
//! - [`cli`]: the `freeze` subcommand.

pub mod bench;
pub mod cli;
pub mod data;
pub mod model;
pub mod policy;
pub mod ramstore;
pub mod rows;
pub mod train;
