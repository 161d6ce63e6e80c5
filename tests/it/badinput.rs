//! The bad-input table (`badinput.toml`, issue 19): every case runs the binary and checks its
//! exit code, its message fragment and the one-line, escaped, panic-free error contract.

use crate::common::perfcast;
use std::collections::BTreeMap;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    args: Vec<String>,
    exit: i32,
    stderr: String,
    #[serde(default)]
    once: bool,
    #[serde(default = "yes")]
    one_line: bool,
    #[serde(default)]
    files: BTreeMap<String, String>,
    #[serde(default)]
    dirs: Vec<String>,
    #[serde(default)]
    links: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

#[derive(serde::Deserialize)]
struct Table {
    case: Vec<Case>,
}

#[test]
fn bad_input_table() {
    let table: Table = toml::from_str(include_str!("badinput.toml")).unwrap();
    assert!(table.case.len() >= 40, "{} cases", table.case.len());
    // Every command appears.
    for cmd in [
        "run",
        "specdec",
        "embcache",
        "catalog",
        "freeze",
        "collective",
        "gradcomp",
        "calibrate",
        "validate",
    ] {
        assert!(
            table.case.iter().any(|c| c.args[0] == cmd),
            "no case for {cmd}"
        );
    }
    let mut failures = Vec::new();
    for (i, c) in table.case.iter().enumerate() {
        let d = tempfile::tempdir().unwrap();
        for dir in &c.dirs {
            std::fs::create_dir_all(d.path().join(dir)).unwrap();
        }
        for (name, text) in &c.files {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        #[cfg(unix)]
        for (name, target) in &c.links {
            std::os::unix::fs::symlink(target, d.path().join(name)).unwrap();
        }
        let out = perfcast()
            .current_dir(d.path())
            .args(&c.args)
            .arg("--quiet")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let mut why = Vec::new();
        if out.status.code() != Some(c.exit) {
            why.push(format!("exit {:?}, want {}", out.status.code(), c.exit));
        }
        let n = err.matches(&c.stderr).count();
        if n == 0 || (c.once && n != 1) {
            why.push(format!("fragment {:?} found {n} times", c.stderr));
        }
        if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
            why.push("panic".into());
        }
        if err.chars().any(|ch| ch.is_control() && ch != '\n') {
            why.push("raw control character on stderr".into());
        }
        if c.exit == 2 && c.one_line {
            if err.trim_end().lines().count() != 1 {
                why.push("not one line".into());
            }
            if !out.stdout.is_empty() {
                why.push("stdout not empty".into());
            }
        }
        if !why.is_empty() {
            failures.push(format!(
                "case #{} {:?}: {}\n  stderr: {err}",
                i + 1,
                c.args,
                why.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
