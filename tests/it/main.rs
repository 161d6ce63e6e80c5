//! The integration test binary: one module per area (DESIGN.md §3).

mod architecture;
mod badinput;
mod calib;
mod calib_synth;
mod cli_docs;
mod cli_run;
mod cli_specdec;
mod common;
mod embcache_cli;
mod embcache_lcs;
mod embcache_props;
mod freeze;
mod gradcomp_cli;
mod html_report;
mod progress;
mod readme;
#[cfg(unix)]
mod safeio;
mod scenario_keys;
mod specdec_corpus;
