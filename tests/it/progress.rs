//! Progress bars (issue 18 item 7): on stderr only when it is a terminal and `-q` is not given;
//! they never change stdout.

use crate::common::{perfcast, succeeded};
use std::process::Command;

const EMBCACHE: &[&str] = &[
    "embcache",
    "--zipf",
    "1.0",
    "--rows",
    "100000",
    "--accesses",
    "3000000",
    "--policy",
    "lru,fifo",
    "--format",
    "json",
];

/// With stderr not a terminal (a pipe, as here) nothing of a bar appears, with or without `-q`,
/// and stdout is the same either way.
#[test]
fn no_bar_when_stderr_is_not_a_terminal() {
    let loud = perfcast().args(EMBCACHE).output().unwrap();
    let quiet = perfcast().args(EMBCACHE).arg("-q").output().unwrap();
    assert!(loud.status.success() && quiet.status.success());
    assert_eq!(
        String::from_utf8_lossy(&loud.stderr),
        "",
        "stderr is a pipe: no bar"
    );
    assert_eq!(quiet.stderr, b"");
    let strip = |s: &[u8]| -> String {
        // sim_s and its rate are wall-clock timings: everything else must be equal.
        String::from_utf8_lossy(s)
            .lines()
            .filter(|l| !l.contains("sim_s") && !l.contains("sim_requests_per_s"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&loud.stdout), strip(&quiet.stdout));
    assert!(strip(&loud.stdout).contains("\"hit_rate\""));
}

/// Under a pseudo-terminal (util-linux `script`), the embcache command draws its access counter
/// on the terminal, and `-q` removes it. Skipped (with a notice) where `script` is absent.
#[test]
fn bar_on_a_terminal_unless_quiet() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED bar_on_a_terminal_unless_quiet: no `script` (util-linux) here");
        return;
    }
    let bin = assert_cmd::cargo::cargo_bin("perfcast");
    let run = |quiet: bool| -> String {
        let mut cmd = format!("{}", bin.display());
        for a in EMBCACHE {
            cmd.push(' ');
            cmd.push_str(a);
        }
        if quiet {
            cmd.push_str(" -q");
        }
        let out = succeeded(
            Command::new("script")
                .args(["-q", "-e", "-c", &cmd, "/dev/null"])
                .env("TERM", "xterm")
                .output()
                .unwrap(),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tty = run(false);
    assert!(tty.contains("\"hit_rate\""), "{tty}");
    assert!(
        tty.contains("accesses ("),
        "no access counter on the terminal: {tty}"
    );
    let quiet = run(true);
    assert!(quiet.contains("\"hit_rate\""), "{quiet}");
    assert!(!quiet.contains("accesses ("), "-q drew a bar: {quiet}");
}
