//! `perfcast completions SHELL` and `perfcast man [COMMAND]`: shell completions (clap_complete)
//! and a roff man page (clap_mangen), both generated from the same clap definition the binary
//! parses with, so they cannot drift from the flags.

use super::{Cli, Outcome};
use clap::{Args, CommandFactory};
use perfcast::{Error, Result};

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for (e.g. `perfcast completions bash > ~/.local/share/bash-completion/completions/perfcast`).
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// A command whose own page to write (`perfcast man run`); the main page when omitted.
    pub command: Option<String>,
}

/// The completion script for `a.shell` on stdout.
pub fn completions(a: &CompletionsArgs) -> Outcome {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "perfcast", &mut buf);
    Outcome::ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The man page (roff) of perfcast, or of one of its commands, on stdout.
///
/// # Errors
/// [`Error::OutOfRange`] naming the unknown command and the known ones.
pub fn man(a: &ManArgs) -> Result<Outcome> {
    let mut cmd = Cli::command();
    cmd.build();
    let man = match &a.command {
        None => clap_mangen::Man::new(cmd),
        Some(name) => {
            let known: Vec<String> = cmd
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .filter(|n| n != "help")
                .collect();
            let Some(sub) = cmd.find_subcommand(name) else {
                return Err(Error::range("command", name, known.join(", ")));
            };
            // The page is titled `perfcast-<command>`, as git and cargo name theirs.
            clap_mangen::Man::new(sub.clone())
                .title(format!("perfcast-{}", sub.get_name()))
                .source(format!("perfcast {}", env!("CARGO_PKG_VERSION")))
        }
    };
    let mut buf = Vec::new();
    man.render(&mut buf).map_err(|e| Error::io("stdout", e))?;
    Ok(Outcome::ok(String::from_utf8_lossy(&buf).into_owned()))
}
