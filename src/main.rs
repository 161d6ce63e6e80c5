//! The `perfcast` binary: glue between the command line and the library.

mod cli;

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            // Not eprintln!: it panics when stderr cannot be written (`2>/dev/full`).
            let _ = writeln!(std::io::stderr(), "error: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// Writes `text` to stderr; a failure names stderr (the message then goes nowhere, but the exit
/// status is 2, not a panic).
fn to_stderr(text: &str) -> anyhow::Result<()> {
    let mut err = std::io::stderr().lock();
    err.write_all(text.as_bytes())
        .and_then(|_| err.flush())
        .map_err(|e| anyhow::Error::new(e).context("writing stderr"))
}

/// A clap usage error as text: control characters in echoed values escaped line by line (the
/// message itself spans lines: the error, then usage).
fn clap_text(e: &clap::Error) -> String {
    let text = e.render().to_string();
    text.split('\n')
        .map(|l| perfcast::error::esc(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn run() -> anyhow::Result<ExitCode> {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help and --version print to stdout and succeed; usage errors exit 2.
            if !e.use_stderr() {
                let mut out = std::io::stdout().lock();
                return match out
                    .write_all(e.render().to_string().as_bytes())
                    .and_then(|_| out.flush())
                {
                    Ok(()) => Ok(ExitCode::SUCCESS),
                    Err(x) if x.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
                    Err(x) => Err(anyhow::Error::new(x).context("writing stdout")),
                };
            }
            // A typed flag the library rejected (`--policy`, `--cache`, `--method`, ...): the
            // library's own one-line message naming the field and the allowed range. A number
            // that did not parse (`--batch 1e9`: "invalid digit found in string") gets the flag
            // and the value in front.
            if e.kind() == clap::error::ErrorKind::ValueValidation {
                if let Some(inner) = std::error::Error::source(&e) {
                    let msg = if inner.downcast_ref::<perfcast::Error>().is_some() {
                        inner.to_string()
                    } else {
                        use clap::error::{ContextKind, ContextValue};
                        let get = |k| match e.get(k) {
                            Some(ContextValue::String(s)) => Some(s.clone()),
                            _ => None,
                        };
                        match (get(ContextKind::InvalidArg), get(ContextKind::InvalidValue)) {
                            (Some(arg), Some(v)) => {
                                let flag = arg.split_whitespace().next().unwrap_or(&arg);
                                // Say what the flag takes, not only what the parser tripped on.
                                let what =
                                    if inner.downcast_ref::<std::num::ParseIntError>().is_some() {
                                        "must be an integer written in digits: "
                                    } else if inner
                                        .downcast_ref::<std::num::ParseFloatError>()
                                        .is_some()
                                    {
                                        "must be a number: "
                                    } else {
                                        ""
                                    };
                                format!("{flag} = {v}: {what}{inner}")
                            }
                            _ => inner.to_string(),
                        }
                    };
                    to_stderr(&format!("error: {}\n", perfcast::error::esc(&msg)))?;
                    return Ok(ExitCode::from(2));
                }
            }
            // Other usage errors: clap's whole message (the missing flags it names, "did you
            // mean", usage), on stderr, exit 2.
            to_stderr(&clap_text(&e))?;
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
        to_stderr(&out.stderr)?;
    }
    Ok(ExitCode::from(out.code))
}

/// The error and its causes on one line, `: ` between them, each cause once: a typed error that
/// already prints its source (`path: No such file or directory (os error 2)`) is not followed by
/// that source again.
fn one_line(e: &anyhow::Error) -> String {
    let mut s = String::new();
    for cause in e.chain() {
        // Escaped: an OS or parser message may echo a value with control characters.
        let c = perfcast::error::esc(&cause.to_string()).into_owned();
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
