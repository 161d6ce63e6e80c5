//! The integration test binary: one module per area (DESIGN.md §3).

mod cli_specdec;
mod cli_run;
mod calib;
mod calib_synth;
