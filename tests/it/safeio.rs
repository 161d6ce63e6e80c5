//! Safe outputs end to end (issue 19): every command that writes a file or a directory, against a
//! regular file, `/dev/null`, a FIFO, a symbolic link, a device node copy (root only) and the
//! wrong kind of path; and a `perfcast run` killed with SIGKILL leaves the old report or the new
//! one, never a mix, and its debris is removed by the next run.

use crate::common::perfcast;
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Output;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A small scenario: one specdec study (analytic), 2 drafts × 4 γ, with its plots.
const SCENARIO: &str = r#"
name = "small"
[[study]]
name = "sd"
technique = "specdec"
target = "llama-2-7b"
gpu = "h200"
context_tokens = 512
[study.sweep]
draft = [{ model = "tinyllama-1.1b", alpha = 0.7 }, { model = "opt-125m", alpha = 0.5 }]
gamma = { from = 1, to = 4 }
"#;

/// One command that writes a file at the path it is given (the path is appended last).
struct FileWriter {
    name: &'static str,
    args: Vec<String>,
}

fn file_writers(tmp: &Path) -> Vec<FileWriter> {
    let fx = root().join("tests/fixtures/synthetic-specdec.csv");
    let fx = fx.to_str().unwrap().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let report = tmp.join("validate-report");
    vec![
        FileWriter {
            name: "embcache trace-gen --out",
            args: s(&[
                "embcache",
                "trace-gen",
                "--zipf",
                "1",
                "--rows",
                "100",
                "--accesses",
                "500",
                "--format-out",
                "text",
                "--out",
            ]),
        },
        FileWriter {
            name: "calibrate --out",
            args: s(&["calibrate", "--gpu", "h200", "--results", &fx, "--out"]),
        },
        FileWriter {
            name: "validate --record",
            args: s(&[
                "validate",
                "--no-plots",
                "--max-mape",
                "100",
                "--max-err",
                "100",
                "--results",
                &fx,
                "--out",
                report.to_str().unwrap(),
                "--record",
            ]),
        },
        FileWriter {
            name: "freeze --emit-grad-norms",
            args: s(&[
                "freeze",
                "--model",
                "uniform:layers=4",
                "--policy",
                "autofreeze:interval=50",
                "--samples",
                "800",
                "--epochs",
                "1",
                "--seed",
                "3",
                "--synthetic",
                "noise=0.0",
                "--emit-grad-norms",
            ]),
        },
    ]
}

fn run_with(args: &[String], path: &Path) -> Output {
    perfcast()
        .args(args)
        .arg(path)
        .arg("--quiet")
        .output()
        .unwrap()
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Exit 2, one line on stderr containing `needle`.
fn refused(o: &Output, what: &str, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert!(err.contains(needle), "{what}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {p:?}"
    );
}

/// Runs `f` while a thread reads `fifo`; returns what the thread read. If `f` never opened the
/// FIFO, the reader is released by opening the FIFO for writing here (it then reads nothing).
fn reading_fifo(fifo: &Path, f: impl FnOnce() -> Output) -> (Output, Vec<u8>) {
    let reader = {
        let fifo = fifo.to_path_buf();
        std::thread::spawn(move || fs::read(&fifo).unwrap())
    };
    let out = f();
    use std::os::unix::fs::OpenOptionsExt;
    let _ = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo);
    (out, reader.join().unwrap())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn file_writers_replace_regular_files_and_write_through_devices_fifos_and_links() {
    let d = tempfile::tempdir().unwrap();
    for w in file_writers(d.path()) {
        let dir = d.path().join(w.name.replace(' ', "_"));
        fs::create_dir(&dir).unwrap();
        // Regular file: replaced whole.
        let reg = dir.join("out.txt");
        fs::write(&reg, "OLD CONTENT THAT MUST GO").unwrap();
        let o = run_with(&w.args, &reg);
        ok(&o, w.name);
        let text = fs::read_to_string(&reg).unwrap();
        assert!(
            !text.contains("OLD CONTENT") && !text.is_empty(),
            "{}",
            w.name
        );
        // /dev/null: written through, still the device.
        let o = run_with(&w.args, Path::new("/dev/null"));
        ok(&o, w.name);
        assert!(fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        // /dev/full: the device's error, exit 2, naming the path.
        let o = run_with(&w.args, Path::new("/dev/full"));
        refused(&o, w.name, "/dev/full: No space left on device");
        // A FIFO: a reader gets the same bytes as the regular file; it stays a FIFO.
        let fifo = dir.join("pipe");
        mkfifo(&fifo);
        let (o, got) = reading_fifo(&fifo, || run_with(&w.args, &fifo));
        ok(&o, w.name);
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        assert!(!got.is_empty(), "{}: nothing came through the FIFO", w.name);
        // A symbolic link: followed, never replaced.
        let target = dir.join("target.txt");
        fs::write(&target, "OLD").unwrap();
        let link = dir.join("link.txt");
        std::os::unix::fs::symlink("target.txt", &link).unwrap();
        let o = run_with(&w.args, &link);
        ok(&o, w.name);
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_ne!(fs::read_to_string(&target).unwrap(), "OLD", "{}", w.name);
        // A directory: one clear line.
        let o = run_with(&w.args, &dir);
        refused(&o, w.name, "is a directory: must be a regular file");
        // No temporary left behind anywhere.
        assert!(
            names(&dir).iter().all(|n| !n.starts_with(".perfcast-")),
            "{}: {:?}",
            w.name,
            names(&dir)
        );
    }
}

/// A copy of /dev/null's device node in a temporary directory (mknod needs root): the old code
/// renamed a regular file over it.
#[test]
fn file_writers_leave_a_device_node_copy_a_device() {
    if !is_root() {
        eprintln!("SKIPPED file_writers_leave_a_device_node_copy_a_device: mknod needs root (CI runs as root)");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    for w in file_writers(d.path()) {
        let node = d.path().join("null-copy");
        let c = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
        // SAFETY: a valid path; makedev(1, 3) is /dev/null.
        let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
        if r != 0 {
            eprintln!(
                "SKIPPED file_writers_leave_a_device_node_copy_a_device: mknod: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
        let o = run_with(&w.args, &node);
        ok(&o, w.name);
        assert!(
            fs::symlink_metadata(&node)
                .unwrap()
                .file_type()
                .is_char_device(),
            "{}: the device node was replaced",
            w.name
        );
        fs::remove_file(&node).unwrap();
    }
}

#[test]
fn directory_writers_refuse_links_files_and_special_files() {
    let d = tempfile::tempdir().unwrap();
    let sc = d.path().join("small.toml");
    fs::write(&sc, SCENARIO).unwrap();
    let sc = sc.to_str().unwrap().to_string();
    let fx = root().join("tests/fixtures/synthetic-specdec.csv");
    let fx = fx.to_str().unwrap().to_string();
    let writers: Vec<(&str, Vec<String>)> = vec![
        ("run --out", vec!["run".into(), sc.clone(), "--out".into()]),
        (
            "embcache mrc --out",
            [
                "embcache",
                "mrc",
                "--zipf",
                "1",
                "--rows",
                "100",
                "--accesses",
                "500",
                "--out",
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "freeze --plot",
            [
                "freeze",
                "--model",
                "uniform:layers=4",
                "--policy",
                "fixed:k=2",
                "--samples",
                "800",
                "--plot",
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "validate --out",
            [
                "validate",
                "--no-plots",
                "--max-mape",
                "100",
                "--max-err",
                "100",
                "--results",
                &fx,
                "--out",
            ]
            .map(String::from)
            .to_vec(),
        ),
    ];
    let real = d.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let file = d.path().join("file");
    fs::write(&file, "x").unwrap();
    let fifo = d.path().join("fifo");
    mkfifo(&fifo);
    for (name, args) in &writers {
        for (p, needle) in [
            (link.as_path(), "is a symbolic link: must be a directory"),
            (file.as_path(), "is a regular file: must be a directory"),
            (
                fifo.as_path(),
                "is a FIFO (named pipe): must be a directory",
            ),
            (
                Path::new("/dev/null"),
                "is a character device: must be a directory",
            ),
        ] {
            let o = run_with(args, p);
            refused(&o, name, needle);
        }
        assert!(names(&real).is_empty(), "{name} wrote through the link");
        assert_eq!(fs::read_to_string(&file).unwrap(), "x");
        // A fresh directory works.
        let fresh = d.path().join(format!("fresh-{}", name.replace(' ', "_")));
        let o = run_with(args, &fresh);
        ok(&o, name);
        assert!(fresh.is_dir() && !names(&fresh).is_empty(), "{name}");
    }
    assert!(fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn run_refuses_to_replace_a_directory_that_is_not_a_report() {
    let d = tempfile::tempdir().unwrap();
    let sc = d.path().join("small.toml");
    fs::write(&sc, SCENARIO).unwrap();
    let mine = d.path().join("mine");
    fs::create_dir(&mine).unwrap();
    fs::write(mine.join("notes.txt"), "precious").unwrap();
    let o = perfcast()
        .args(["run", "--quiet"])
        .arg(&sc)
        .arg("--out")
        .arg(&mine)
        .output()
        .unwrap();
    refused(&o, "run", "not a perfcast report");
    assert_eq!(names(&mine), vec!["notes.txt"]);
    // A report directory is replaced as a whole: a file the old report had and the new one
    // does not is gone.
    let rep = d.path().join("rep");
    let run = || {
        perfcast()
            .args(["run", "--quiet"])
            .arg(&sc)
            .arg("--out")
            .arg(&rep)
            .output()
            .unwrap()
    };
    ok(&run(), "run");
    fs::write(rep.join("stale.csv"), "from an older report").unwrap();
    ok(&run(), "run again");
    assert!(!rep.join("stale.csv").exists());
    assert!(rep.join(".perfcast-report").is_file());
    assert_eq!(names(d.path()), vec!["mine", "rep", "small.toml"]);
}

/// Reads a report directory as (file name → bytes), without `summary.md`'s timing line and
/// `report.html`'s date and timing rows.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    names(dir)
        .into_iter()
        .map(|n| {
            let mut b = fs::read(dir.join(&n)).unwrap();
            if n == "summary.md" || n == "report.html" {
                let t = String::from_utf8(b).unwrap();
                b = t
                    .lines()
                    .filter(|l| !l.contains("evaluated in") && !l.contains("class=\"varies\""))
                    .collect::<Vec<_>>()
                    .join("\n")
                    .into_bytes();
            }
            (n, b)
        })
        .collect()
}

/// SIGKILL at many moments of a `perfcast run` that replaces an older report: afterwards the
/// directory is exactly the old report or exactly the new one; the debris the killed runs left
/// is removed by the next run. At least one kill must land while the new report was being
/// written (debris found), or the test proves nothing and fails.
#[test]
fn killed_run_leaves_old_or_new_report_and_next_run_cleans_debris() {
    let d = tempfile::tempdir().unwrap();
    // The two reports a reader may see: the old scenario's and the new one's (another context
    // length: every CSV and the summary differ).
    let sc_old = d.path().join("old.toml");
    fs::write(&sc_old, SCENARIO).unwrap();
    let sc_new = d.path().join("new.toml");
    fs::write(
        &sc_new,
        SCENARIO.replace("context_tokens = 512", "context_tokens = 2048"),
    )
    .unwrap();
    let rep = d.path().join("reports").join("rep");
    let run = |sc: &Path| {
        perfcast()
            .args(["run", "--quiet"])
            .arg(sc)
            .arg("--out")
            .arg(&rep)
            .output()
            .unwrap()
    };
    ok(&run(&sc_new), "run new");
    let new = snapshot(&rep);
    ok(&run(&sc_old), "run old");
    let old = snapshot(&rep);
    assert!(
        old != new,
        "the two scenarios must give distinguishable reports"
    );
    // How long a whole run takes here, to spread the kills over it.
    let t0 = std::time::Instant::now();
    ok(&run(&sc_old), "timing run");
    let whole = t0.elapsed();
    let bin = assert_cmd::cargo::cargo_bin("perfcast");
    let mut debris_seen = 0;
    let mut killed = 0;
    for i in 0..16u32 {
        // The report on disk is the old one before each attempt.
        ok(&run(&sc_old), "reset");
        let mut child = std::process::Command::new(&bin)
            .args(["run", "--quiet"])
            .arg(&sc_new)
            .arg("--out")
            .arg(&rep)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole.mul_f64(f64::from(i) / 14.0));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.code().is_none() {
            killed += 1;
        }
        let now = snapshot(&rep);
        assert!(
            now == old || now == new,
            "kill #{i}: the report is a mix: {:?}",
            now.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        let parent = rep.parent().unwrap();
        if names(parent).iter().any(|n| n.starts_with(".perfcast-")) {
            debris_seen += 1;
        }
    }
    assert!(killed > 0, "no run was killed: the kills came too late");
    assert!(
        debris_seen > 0,
        "no kill landed while the report was being written ({killed} killed)"
    );
    // The next run removes what the killed ones left, and writes the new report.
    ok(&run(&sc_new), "run after the kills");
    assert!(snapshot(&rep) == new, "the last run wrote the new report");
    assert_eq!(names(rep.parent().unwrap()), vec!["rep"]);
    assert!(names(&rep).iter().all(|n| !n.ends_with(".tmp")));
}
