//! The integration test binary: one module per area (DESIGN.md §3).

mod cli_run;
mod cli_specdec;
mod freeze;
mod gradcomp_cli;
mod specdec_corpus;
