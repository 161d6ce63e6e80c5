//! The integration test binary: one module per area (DESIGN.md §3).

mod cli_specdec;
mod cli_run;
mod embcache_cli;
mod embcache_lcs;
mod embcache_props;
