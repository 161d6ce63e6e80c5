//! The `perfcast` binary: glue between the command line and the library.

mod cli;

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help and --version print to stdout and succeed; usage errors exit 2.
            if !e.use_stderr() {
                let _ = e.print();
                return Ok(ExitCode::SUCCESS);
            }
            // A typed flag the library rejected (`--policy`, `--cache`, `--method`, ...): the
            // library's own one-line message naming the field and the allowed range.
            if e.kind() == clap::error::ErrorKind::ValueValidation {
                if let Some(inner) = std::error::Error::source(&e) {
                    eprintln!("error: {inner}");
                    return Ok(ExitCode::from(2));
                }
            }
            // Other usage errors: clap's whole message (the missing flags it names, "did you
            // mean", usage), on stderr, exit 2.
            let _ = e.print();
            return Ok(ExitCode::from(2));
        }
    };
    let out = cli::dispatch(args)?;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.stdout.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Ok(()) => {}
        // A closed pipe (`perfcast ... | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e.into()),
    }
    Ok(ExitCode::from(out.code))
}
