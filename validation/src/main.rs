//! `perfcast-gpu`: the GPU validation harness binary. It parses the command line and dispatches;
//! each subcommand lives with its technique in the library (`specdec/`, `gradcomp/`, ...).
//!
//! Adding a subcommand is two lines here: a variant of [`Cmd`] holding the module's `Args`, and
//! its arm in [`run`] (see `validation/README.md`, "Adding a subcommand").

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
// Every technique folder of the library (`specdec`, `gradcomp`, ...) and `cli`.
use perfcast_validation::*;

#[derive(Parser)]
#[command(
    name = "perfcast-gpu",
    about = "GPU validation harness of perfcast (speculative decoding on real transformers)"
)]
struct Cli {
    #[command(flatten)]
    global: cli::Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the `models/llms-validation.toml` entries of every preset (parameter counts read off
    /// tensors allocated on the device for models up to --alloc-max parameters, else off shapes).
    Catalog(specdec::catalog::Args),
    /// Correctness before timing: cached vs full forward, and greedy speculative decoding (separate
    /// draft and LayerSkip, batch 3, γ 1..8) emitting exactly the target's greedy tokens (f32).
    Check,
    /// Per-forward latency grid: models × batch × new tokens × context.
    Forward(specdec::forward::Args),
    /// End-to-end decoding throughput: autoregressive and speculative over γ × batch × draft.
    E2e(specdec::e2e::Args),
    /// Train a byte-level model on a corpus and save its weights.
    Train(specdec::train_cmd::Args),
    /// nccl-tests-style sweep (all-reduce sum / all-gather, f32) over every local GPU: tidy CSV
    /// `<set>.csv` (median time_s and busbw per size) and `<set>-<op>-busbw.csv` curves
    /// (`bytes,busbw_bytes_per_s`, what `perfcast collective --busbw-csv` reads).
    NcclSweep(gradcomp::sweep::Args),
    /// Gradient compressors on the device: `codec-check` (correctness), `codec-micro` (timings).
    Gradcomp(gradcomp::cli::Args),
    /// Fine-tuning with layer freezing (BERT-class encoder): check, micro, e2e, train.
    Freeze(freeze::cli::Args),
    /// DLRM training with a GPU embedding-row cache: `check`, `micro`, `e2e` (issue 16).
    Embcache(embcache::cli::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("perfcast-gpu: {}", cli::first_line(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match cli.cmd {
        Cmd::Catalog(a) => specdec::catalog::run(g, a),
        Cmd::Check => specdec::check::run(g),
        Cmd::Forward(a) => specdec::forward::run(g, a),
        Cmd::E2e(a) => specdec::e2e::run(g, a),
        Cmd::Train(a) => specdec::train_cmd::run(g, a),
        Cmd::NcclSweep(a) => gradcomp::sweep::run(g, a),
        Cmd::Gradcomp(a) => gradcomp::cli::run(g, a),
        Cmd::Freeze(a) => freeze::cli::run(g, a),
        Cmd::Embcache(a) => embcache::cli::run(g, a),
    }
}
