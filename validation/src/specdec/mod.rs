//! Speculative decoding on real transformers: the models, the decoding algorithms, their
//! execution (eager or CUDA graphs), training of byte-level models, and the subcommands that
//! check and time them.
//!
//! Implementation:
//!
//! | file | what |
//! | --- | --- |
//! | [`model`] | Llama-style decoder-only transformer with a preallocated KV cache; presets |
//! | [`spec`] | autoregressive and speculative decoding (separate draft, LayerSkip), acceptance rules |
//! | [`graph`] | forward execution: eager or captured-and-replayed CUDA graphs |
//! | [`train`] | byte-level training (AdamW), LayerSkip early-exit losses |
//!
//! Subcommands (each an `Args` struct and a `run`):
//!
//! | file | command |
//! | --- | --- |
//! | [`catalog`] | `perfcast-gpu catalog` |
//! | [`check`] | `perfcast-gpu check` |
//! | [`forward`] | `perfcast-gpu forward` |
//! | [`e2e`] | `perfcast-gpu e2e` |
//! | [`train_cmd`] | `perfcast-gpu train` |

pub mod graph;
pub mod model;
pub mod spec;
pub mod train;

pub mod catalog;
pub mod check;
pub mod e2e;
pub mod forward;
pub mod train_cmd;
