//! Command-line arguments (clap) and their conversion into library plans. Parsing only: the
//! binary calls the library with what these produce.

pub mod calibrate;
pub mod catalog_cmd;
pub mod collective;
pub mod docs;
pub mod embcache;
pub mod explain;
pub mod freeze;
pub mod gradcomp;
pub mod run;
pub mod specdec;
pub mod validate;

use clap::{Parser, Subcommand};
use perfcast::report::Format;
use perfcast::{Catalog, Result};
use std::path::PathBuf;

/// perfcast: predict how fast ML-systems techniques run, and check the predictions on real GPUs.
#[derive(Debug, Parser)]
#[command(name = "perfcast", version, about, long_about = None)]
pub struct Cli {
    /// Directory whose files override the embedded catalog (same layout as models/).
    #[arg(long, global = true, value_name = "DIR")]
    pub catalog: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Evaluate a scenario (the embedded default when none is given): CSV, plots, summary.md.
    Run(run::RunArgs),
    /// One speculative-decoding what-if (or a ranking of drafts).
    #[command(allow_negative_numbers = true)]
    Specdec(specdec::SpecdecArgs),
    /// One embedding-cache simulation or closed form; `trace-gen` and `mrc` subcommands.
    #[command(allow_negative_numbers = true)]
    Embcache(embcache::EmbcacheArgs),
    /// List the GPUs, models and scenarios known to the binary.
    Catalog(catalog_cmd::CatalogArgs),
    /// One layer-freezing fine-tuning what-if (AutoFreeze, FreezeOut, fixed; activation caching).
    #[command(allow_negative_numbers = true)]
    Freeze(freeze::FreezeArgs),
    /// One collective's time on a cluster (α–β model, nccl-tests algbw/busbw).
    #[command(allow_negative_numbers = true)]
    Collective(collective::CollectiveArgs),
    /// One data-parallel training what-if: DDP buckets, gradient compression, low-rank models.
    #[command(allow_negative_numbers = true)]
    Gradcomp(gradcomp::GradcompArgs),
    /// Fit the latency model of a GPU from forward-latency measurements.
    #[command(allow_negative_numbers = true)]
    Calibrate(calibrate::CalibrateArgs),
    /// Prediction error of every end-to-end measurement (exit 1 when a set exceeds tolerance).
    #[command(allow_negative_numbers = true)]
    Validate(validate::ValidateArgs),
    /// Write a shell completion script to stdout (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Write the man page (roff) to stdout: `perfcast man | man -l -`, or one command's page.
    Man(docs::ManArgs),
}

/// Options every command sees.
#[derive(Debug, Clone)]
pub struct Globals {
    /// The loaded catalog.
    pub catalog: Catalog,
    /// Output format.
    pub format: Format,
    /// Suppress progress bars.
    pub quiet: bool,
}

/// What a command produced: text for stdout and the exit code.
#[derive(Debug)]
pub struct Outcome {
    /// Printed on stdout.
    pub stdout: String,
    /// Printed on stderr after stdout (warnings about a partial result).
    pub stderr: String,
    /// Process exit code (0 success, 1 a validation tolerance failed, [`EXIT_PARTIAL`] some rows
    /// could not be computed).
    pub code: u8,
}

/// Exit code of a partial result: the rows that could be computed are printed, each row that
/// could not carries its reason (`embcache` with a policy that cannot run at the cache size).
pub const EXIT_PARTIAL: u8 = 3;

impl Outcome {
    /// Success with this output.
    pub fn ok(stdout: String) -> Self {
        Outcome {
            stdout,
            stderr: String::new(),
            code: 0,
        }
    }
}

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> Result<Outcome> {
    // Generated from the clap definition alone: no catalog needed.
    match &cli.command {
        Command::Completions(a) => return Ok(docs::completions(a)),
        Command::Man(a) => return docs::man(a),
        _ => {}
    }
    let catalog = Catalog::load(cli.catalog.as_deref())?;
    let g = Globals {
        catalog,
        format: cli.format,
        quiet: cli.quiet,
    };
    match cli.command {
        Command::Run(a) => run::exec(a, &g),
        Command::Specdec(a) => specdec::exec(a, &g),
        Command::Embcache(a) => embcache::exec(a, &g),
        Command::Catalog(a) => catalog_cmd::exec(a, &g),
        Command::Freeze(a) => freeze::exec(a, &g),
        Command::Collective(a) => collective::exec(a, &g),
        Command::Gradcomp(a) => gradcomp::exec(a, &g),
        Command::Calibrate(a) => calibrate::exec(a, &g),
        Command::Validate(a) => validate::exec(a, &g),
        Command::Completions(a) => Ok(docs::completions(&a)),
        Command::Man(a) => docs::man(&a),
    }
}
