//! The binary's contract without a GPU: one-line errors with exit 2, CPU path works.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_perfcast-gpu"))
}

/// Without the `cuda` feature (as in CI) a GPU command says so in one line and exits 2.
#[cfg(not(feature = "cuda"))]
#[test]
fn gpu_command_without_cuda_exits_2_with_one_line() {
    let out = bin().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no GPU driver used") && err.contains("cuda"),
        "{err}"
    );
}

/// Bad input is one line naming the option, exit 2.
#[test]
fn bad_accept_mode_exits_2() {
    let dir = std::env::temp_dir().join(format!("pcg-cli-{}", std::process::id()));
    let out = bin()
        .args([
            "--cpu",
            "e2e",
            "--target",
            "val-tiny-t",
            "--drafts",
            "val-tiny-d",
            "--accept",
            "maybe",
            "--set",
            "x",
        ])
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--accept maybe"), "{err}");
    let out = bin()
        .args(["--cpu", "forward", "--models", "val-nope", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("unknown model val-nope"));
}

/// Zero repeats or a zero batch are refused before any work, one line, exit 2.
#[test]
fn zero_sizes_exit_2() {
    let dir = std::env::temp_dir().join(format!("pcg-cli0-{}", std::process::id()));
    for (flag, val) in [("--repeats", "0"), ("--batches", "0")] {
        let out = bin()
            .args([
                "--cpu",
                "forward",
                "--models",
                "val-tiny-t",
                flag,
                val,
                "--out",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(flag), "{err}");
    }
}
