//! GPU validation harness of perfcast (`perfcast-gpu`): real Llama-style decoder-only
//! transformers on candle, speculative decoding (separate draft and LayerSkip self-speculation)
//! with preallocated KV caches, training on a text corpus, and timed measurements written as the
//! tidy CSV that `perfcast calibrate` / `perfcast validate` read (see `validation/README.md`).
//!
//! The `cuda` feature changes no API: without it every entry point runs on the CPU (tests use
//! tiny models); the binary's GPU commands then stop with a one-line message and exit 2.
#![deny(missing_docs)]

pub mod embcache;
pub mod graph;
pub mod measure;
pub mod model;
pub mod nccl;
pub mod spec;
pub mod train;
