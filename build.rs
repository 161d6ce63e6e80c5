//! Build script: records the git commit the binary is built from (`PERFCAST_COMMIT`, shown in
//! `report.html`'s provenance). `PERFCAST_COMMIT` set in the environment wins; outside a git
//! checkout (a source tarball) nothing is recorded and the report says `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=PERFCAST_COMMIT");
    let commit = std::env::var("PERFCAST_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    if let Some(c) = commit {
        println!("cargo:rustc-env=PERFCAST_COMMIT={c}");
    }
    // Rebuild when HEAD moves: HEAD itself, the branch it names, and the packed refs (only the
    // files that exist, so an unchanged checkout does not rerun this script on every build).
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git(&["rev-parse", "--git-path", &r]));
    }
    watch.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for p in watch.into_iter().flatten() {
        if std::path::Path::new(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    // Without any rerun-if-changed line cargo reruns on every change of the package.
    println!("cargo:rerun-if-changed=build.rs");
}
