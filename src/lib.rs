//! # perfcast
//!
//! Predicts how fast ML-systems techniques run before anyone buys the hardware, and checks the
//! predictions against measurements from real GPUs.
//!
//! Each technique module has an analytic model and a simulation that produce the **same** metric
//! struct, so they can be compared with each other and with measurements point by point:
//!
//! - [`specdec`]: speculative decoding (draft models, LayerSkip early exit, CHAI clustered heads).
//! - [`freeze`]: layer freezing for fine-tuning (fixed, AutoFreeze, FreezeOut; prefix-output caching).
//! - [`gradcomp`]: data-parallel training with gradient compression and low-rank models, on the
//!   [`des`] kernel with per-layer [`dnn`] profiles.
//! - [`embcache`]: embedding-cache policies on lookup traces (LRU … Belady, Bagpipe lookahead),
//!   Zipf closed forms, miss-ratio curves and the DLRM iteration-time model.
//!
//! Shared parts: the [`catalog`] of GPUs and models (embedded TOML), [`scenario`] files with sweep
//! grids evaluated in parallel by [`sweep`], [`report`]s written atomically, the measurement
//! contract ([`measure`], `docs/measurements.md`) and [`validate`] (tolerances, errors, parity
//! plots). Each technique calibrates itself from measurements (e.g. `specdec::calib`);
//! `perfcast calibrate` and `validate` route rows to it through [`techniques`].
//!
//! ## Guarantees
//! - Every random draw comes from a named, seeded generator (`Xoshiro256PlusPlus`); a point's seed
//!   derives from the scenario seed and the point index, so results do not depend on threads.
//! - Bad input yields an [`Error`] whose one-line message names the field, the value and the
//!   allowed range; the library does not panic on user input.
//! - Report files are written to a temporary file and renamed: never a partial file; a device or
//!   FIFO is written through, never replaced; `run` replaces its report directory as a whole
//!   ([`report::files`]).

#![deny(missing_docs)]

pub mod catalog;
pub mod check;
pub mod collective;
pub mod des;
pub mod dnn;
pub mod embcache;
pub mod error;
pub mod freeze;
pub mod gradcomp;
pub mod measure;
pub mod report;
pub mod scenario;
pub mod specdec;
pub mod studies;
pub mod sweep;
pub mod techniques;
pub mod validate;

pub use catalog::Catalog;
pub use error::{Error, Result};
