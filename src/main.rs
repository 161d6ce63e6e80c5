//! The `perfcast` binary: glue between the command line and the library.

mod cli;

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
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
        Err(e) => return Err(anyhow::Error::new(e).context("writing stdout")),
    }
    if !out.stderr.is_empty() {
        eprint!("{}", out.stderr);
    }
    Ok(ExitCode::from(out.code))
}

/// The error and its causes on one line, `: ` between them, each cause once: a typed error that
/// already prints its source (`path: No such file or directory (os error 2)`) is not followed by
/// that source again.
fn one_line(e: &anyhow::Error) -> String {
    let mut s = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if s.contains(&c) {
            continue;
        }
        if !s.is_empty() {
            s.push_str(": ");
        }
        s.push_str(&c);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn each_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let os = io.to_string();
        // The library's I/O error prints its source and also returns it as `source()`.
        let e = anyhow::Error::new(perfcast::Error::io("/x/y.txt", io));
        let s = one_line(&e);
        assert_eq!(s.matches(&os).count(), 1, "{s}");
        assert!(s.starts_with("/x/y.txt: "), "{s}");
        // A context over a cause that does not repeat it keeps both.
        let e = anyhow::Error::new(std::io::Error::other("disk full")).context("writing stdout");
        assert_eq!(one_line(&e), "writing stdout: disk full");
    }
}
