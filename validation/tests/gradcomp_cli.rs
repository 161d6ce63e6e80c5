//! `perfcast-gpu gradcomp` on the CPU (what CI runs): `codec-check` passes every check at tiny
//! sizes, `codec-micro` writes rows the library reads with the codec contract (technique
//! `gradcomp`, kind `codec`, params `op;rows;cols;elems`, metrics `time_s` and `wire_bytes`), and
//! bad input is one line naming the flag, exit 2.

use std::process::Command;

use perfcast::measure::for_each_row;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_perfcast-gpu"))
}

#[test]
fn codec_check_passes_on_the_cpu() {
    let out = bin()
        .args(["--cpu", "gradcomp", "codec-check"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    // 16 checks, plus PowerSGD's fused stages at ranks 1 and 4 (the tiny sizes' ranks).
    assert_eq!(
        text.lines().filter(|l| l.starts_with("PASS ")).count(),
        18,
        "{text}"
    );
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn codec_micro_writes_the_codec_contract() {
    let dir = std::env::temp_dir().join(format!("pcg-codec-micro-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = bin()
        .args([
            "--cpu",
            "gradcomp",
            "codec-micro",
            "--methods",
            "powersgd:rank=2,topk:density=0.01,signsgd",
            "--set",
            "ci",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = Vec::new();
    for_each_row(&dir.join("ci.csv"), |_, r| {
        rows.push(r);
        Ok(())
    })
    .unwrap();
    // PowerSGD: 4 tiny matrices × (wire, p, q, decode) (24×24 at rank 2: 576 ≥ 192, compressed);
    // Top-k and signSGD: 8 shapes × (wire, encode, decode); the host launch probe before the
    // first method and after the last (kind `host`, no pool on the CPU).
    assert_eq!(rows.len(), 16 + 2 * 24 + 2);
    let (host, rows): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.kind == "host");
    let at: Vec<&str> = host.iter().map(|r| r.params.get("at").unwrap()).collect();
    assert_eq!(at, ["start", "end"]);
    for r in &host {
        assert_eq!(
            (r.model.as_str(), r.metric.as_str()),
            ("candle-affine", "time_s")
        );
        assert_eq!(r.params.get("pool"), Some("none"));
        assert!(r.value > 0.0 && r.repeats == 9, "{r:?}");
    }
    for r in &rows {
        assert_eq!(
            (r.technique.as_str(), r.kind.as_str(), r.set.as_str()),
            ("gradcomp", "codec", "ci")
        );
        let op = r.params.get("op").unwrap();
        assert_eq!(r.params.get("exec"), Some("eager"), "{r:?}");
        let (rows_, cols, elems) = (
            r.params.get("rows").unwrap().parse::<usize>().unwrap(),
            r.params.get("cols").unwrap().parse::<usize>().unwrap(),
            r.params.get("elems").unwrap().parse::<usize>().unwrap(),
        );
        assert_eq!(rows_ * cols, elems);
        match r.metric.as_str() {
            "time_s" => {
                assert!(r.value > 0.0 && r.unit == "s" && r.repeats == 3, "{r:?}");
                let want: &[&str] = if r.model.starts_with("powersgd") {
                    &["p", "q", "decode"]
                } else {
                    &["encode", "decode"]
                };
                assert!(want.contains(&op), "{r:?}");
            }
            "wire_bytes" => {
                assert_eq!((op, r.unit.as_str()), ("wire", "bytes"));
                let want = match r.model.as_str() {
                    "powersgd:rank=2" => 4 * 2 * (rows_ + cols),
                    "topk:density=0.01" => 8 * (elems as f64 * 0.01).ceil() as usize,
                    "signsgd" => elems.div_ceil(8),
                    m => panic!("unexpected model {m}"),
                };
                assert_eq!(r.value, want as f64, "{r:?}");
            }
            m => panic!("unexpected metric {m}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let out = bin()
        .args([
            "--cpu",
            "gradcomp",
            "codec-micro",
            "--methods",
            "qsgd:bits=3",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("qsgd bits 3"), "{err}");
    // Graph capture needs CUDA; an unknown execution mode and a bad `--shapes` entry are named
    // with what is allowed. Nothing is written.
    for (flag, value, says) in [
        ("--codec-exec", "graph", "CUDA graphs need a CUDA device"),
        (
            "--codec-exec",
            "graphs",
            "--codec-exec graphs: expected eager or graph",
        ),
        (
            "--shapes",
            "24x24,24by96",
            "--shapes '24by96': expected RxC",
        ),
    ] {
        let out = bin()
            .args(["--cpu", "gradcomp", "codec-micro", flag, value, "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!dir.exists(), "{flag} {value}: {}", dir.display());
    }
    // Given shapes replace the default grid: one matrix, one flat bucket.
    let out = bin()
        .args([
            "--cpu",
            "gradcomp",
            "codec-micro",
            "--methods",
            "fp16",
            "--shapes",
            "12x10,1x300",
            "--set",
            "shapes",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let csv = std::fs::read_to_string(dir.join("shapes.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().filter(|l| l.contains(",codec,fp16,")).collect();
    assert!(rows.iter().any(|l| l.contains("rows=12;cols=10;")), "{csv}");
    assert!(rows.iter().any(|l| l.contains("rows=1;cols=300;")), "{csv}");
    assert!(rows
        .iter()
        .all(|l| l.contains("rows=12;cols=10;") || l.contains("rows=1;cols=300;")));
    let _ = std::fs::remove_dir_all(&dir);
}
