//! GPU validation harness of perfcast (`perfcast-gpu`): real Llama-style decoder-only
//! transformers on candle, speculative decoding (separate draft and LayerSkip self-speculation)
//! with preallocated KV caches, training on a text corpus, NCCL collective sweeps, and timed
//! measurements written as the tidy CSV that `perfcast calibrate` / `perfcast validate` read (see
//! `validation/README.md`).
//!
//! Layout, mirroring the library: one folder per technique ([`specdec`], [`gradcomp`], [`freeze`], [`embcache`]) holding
//! its real implementation and its subcommands; below them what every technique shares: the
//! command plumbing ([`cli`]), the timing protocol ([`timing`]) and the measurement CSV
//! ([`measure`]). `main.rs` only parses and dispatches.
//!
//! The `cuda` feature changes no API: without it every entry point runs on the CPU (tests use
//! tiny models); the binary's GPU commands then stop with a one-line message and exit 2.
#![deny(missing_docs)]

pub mod cli;
pub mod embcache;
pub mod measure;
pub mod timing;

pub mod freeze;
pub mod gradcomp;
pub mod specdec;
