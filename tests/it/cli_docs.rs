//! The command line's own text: usage errors (clap's whole message), library errors (one line,
//! no Rust type names), shell completions and the man page.

use crate::common::{fails, perfcast};

const COMMANDS: [&str; 11] = [
    "run",
    "specdec",
    "embcache",
    "catalog",
    "freeze",
    "collective",
    "gradcomp",
    "calibrate",
    "validate",
    "completions",
    "man",
];

/// `perfcast ARGS`: (exit code, stdout, stderr).
fn output(args: &[&str]) -> (Option<i32>, String, String) {
    let out = perfcast().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Usage errors print clap's whole message on stderr (exit 2, nothing on stdout): the missing
/// flags by name, the usage line, and "a similar … exists" for misspelt commands, flags and values.
#[test]
fn usage_errors_keep_clap_s_whole_message() {
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["gradcomp", "--model", "bert-base"],
            &[
                "required arguments were not provided",
                "--inter-node-gbps",
                "Usage: perfcast gradcomp",
            ],
        ),
        (
            &["specdc"],
            &[
                "unrecognized subcommand 'specdc'",
                "similar subcommand exists: 'specdec'",
            ],
        ),
        (
            &["specdec", "--gama", "3"],
            &[
                "unexpected argument '--gama'",
                "similar argument exists: '--gamma'",
            ],
        ),
        (
            &["catalog", "--format", "jsn"],
            &[
                "invalid value 'jsn'",
                "similar value exists: 'json'",
                "table, json, csv",
            ],
        ),
    ];
    for (args, needles) in cases {
        let (code, stdout, stderr) = output(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(
            stderr.lines().count() > 1,
            "{args:?}: cut to one line: {stderr}"
        );
        for n in needles {
            assert!(stderr.contains(n), "{args:?}: '{n}' missing in {stderr}");
        }
    }
}

/// A scenario value of the wrong type is one line in the user's words: never serde's Rust type
/// names (`expected struct DraftSpec`, `untagged enum GammaSpec`, `expected f64`).
#[test]
fn scenario_type_errors_name_no_rust_type() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        (
            "draft = \"tinyllama\"\nalpha = 0.7\n",
            "expected a table in `draft`",
        ),
        (
            "draft = { cost_ratio = 0.1 }\nalpha = 0.7\ngamma = 2.5\n",
            "unsupported type or form in `gamma`",
        ),
        (
            "draft = { cost_ratio = 0.1 }\nalpha = \"x\"\n",
            "expected a number in `alpha`",
        ),
    ];
    for (body, needle) in cases {
        let sc = d.path().join("s.toml");
        std::fs::write(&sc, format!("[[study]]\ntechnique = \"specdec\"\n{body}")).unwrap();
        let sc = sc.to_str().unwrap();
        let out = d.path().join("out");
        fails(&["run", sc, "--out", out.to_str().unwrap()], needle);
        let (_, _, err) = output(&["run", sc, "--out", out.to_str().unwrap()]);
        for rust in [
            "struct",
            "enum",
            "DraftSpec",
            "GammaSpec",
            "f64",
            "u64",
            "i64",
        ] {
            assert!(
                !err.contains(rust),
                "{body}: Rust type name '{rust}' in {err}"
            );
        }
    }
    std::fs::write(d.path().join("t.toml"), "seed = \"x\"\n").unwrap();
    let t = d.path().join("t.toml");
    fails(
        &["run", t.to_str().unwrap()],
        "expected a non-negative integer",
    );
}

/// Completion scripts for bash, zsh and fish name every command and the flags of one.
#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, script, err) = output(&["completions", shell]);
        assert_eq!(code, Some(0), "{shell}: {err}");
        for c in COMMANDS {
            assert!(script.contains(c), "{shell}: command {c} missing");
        }
        assert!(
            script.contains("inter-node-gbps"),
            "{shell}: gradcomp's flags"
        );
    }
    let (code, _, err) = output(&["completions", "tcsh"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("[possible values: bash"), "{err}");
}

/// `perfcast man` writes a roff page listing every command; `perfcast man CMD` that command's
/// own page with its flags; an unknown command is one error line listing the known ones.
#[test]
fn man_pages() {
    let (code, page, err) = output(&["man"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        page.contains(".TH perfcast 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(page.contains(".SH SYNOPSIS") && page.contains(".SH OPTIONS"));
    // The SUBCOMMANDS section names each command's own page.
    for c in COMMANDS {
        assert!(page.contains(&format!("perfcast\\-{c}(1)")), "{c}");
    }
    let (code, page, err) = output(&["man", "gradcomp"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        page.contains(".TH perfcast-gradcomp 1 "),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(page.contains("inter\\-node\\-gbps"));
    fails(
        &["man", "gradcom"],
        "command = gradcom: must be run, specdec",
    );
}
