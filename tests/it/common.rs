//! Helpers shared by the integration test modules.

use assert_cmd::Command;

/// The `perfcast` binary under test.
pub fn perfcast() -> Command {
    Command::cargo_bin("perfcast").unwrap()
}

/// Runs `perfcast ARGS --format json`, asserts success and parses stdout.
pub fn json(args: &[&str]) -> serde_json::Value {
    let out = perfcast()
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts that a finished command succeeded (its stderr is the message otherwise) and hands
/// its output back.
pub fn succeeded(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A numeric field of a JSON object (panics naming the field when absent).
pub fn f(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// Asserts `perfcast ARGS` fails with exit 2, one line on stderr containing `needle`, no panic
/// and nothing on stdout.
pub fn fails(args: &[&str], needle: &str) {
    let out = perfcast().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty(), "{args:?}: stdout not empty");
}

/// Prints a notice that `cargo test` shows even for a passing test (a skipped check says so):
/// written straight to the process's stdout, past the test harness's capture of `println!`.
pub fn notice(msg: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "\nnotice: {msg}");
    let _ = out.flush();
}
