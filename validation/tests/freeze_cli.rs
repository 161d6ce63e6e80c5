//! `perfcast-gpu freeze` without a GPU: bad input is one line naming the flag (exit 2) before any
//! work (the CPU correctness path is covered by the library tests of `src/freeze/train.rs`).

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_perfcast-gpu"))
}

#[test]
fn bad_freeze_arguments_exit_2_with_one_line() {
    let dir = std::env::temp_dir().join(format!("pcg-freeze-cli-{}", std::process::id()));
    for (args, needle) in [
        (
            vec![
                "--cpu",
                "freeze",
                "e2e",
                "--model",
                "val-bert-tiny",
                "--ks",
                "4",
            ],
            "--ks 4: expected 0..=3",
        ),
        (
            vec![
                "--cpu",
                "freeze",
                "train",
                "--model",
                "val-bert-tiny",
                "--dtype",
                "f16",
            ],
            "--dtype f16: expected f32 or bf16",
        ),
        (
            vec![
                "--cpu",
                "freeze",
                "train",
                "--model",
                "val-bert-tiny",
                "--policy",
                "autofreeze:percentile=120",
            ],
            "autofreeze.percentile = 120",
        ),
        (
            vec!["--cpu", "freeze", "micro", "--model", "val-bert-huge"],
            "unknown model val-bert-huge",
        ),
    ] {
        let out = bin().args(&args).arg("--out").arg(&dir).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
