//! The measurement contract across crates: rows written by the harness's `Sink` are read back
//! unchanged by the library's reader, and specdec's dataset accepts them.

use perfcast::measure::{for_each_row, Origin, Row};
use perfcast::specdec::calib::dataset::Dataset;
use perfcast_validation::measure::{header, Params, Provenance, Sink};

fn prov() -> Provenance {
    Provenance {
        date: String::new(),
        gpu: "NVIDIA H200".into(),
        driver: "580.159.04".into(),
        cuda: "13.0".into(),
        commit: "abc".into(),
        command: "perfcast-gpu e2e --target m --drafts d --gammas 2".into(),
    }
}

#[test]
fn harness_rows_read_back_through_the_library() {
    let dir = tempfile_dir("contract");
    let mut sink = Sink::open(&dir, "set1", prov()).unwrap();
    let base = Row {
        set: "set1".into(),
        model: "llama-3.2-1b".into(),
        batch: Some(4),
        repeats: 10,
        ..Row::default()
    };
    let written = vec![
        Row {
            kind: "forward".into(),
            new_tokens: Some(2),
            context_tokens: Some(100.0),
            params: Params::new().with("dtype", "bf16"),
            metric: "forward_s".into(),
            value: 0.0125,
            spread: Some(0.02),
            unit: "s".into(),
            ..base.clone()
        },
        Row {
            kind: "acceptance".into(),
            draft: Some("d".into()),
            gamma: Some(2),
            position: Some(1),
            metric: "survival".into(),
            value: 0.8,
            unit: "fraction".into(),
            ..base.clone()
        },
        Row {
            kind: "acceptance".into(),
            draft: Some("d".into()),
            gamma: Some(2),
            position: Some(2),
            metric: "survival".into(),
            value: 0.5,
            unit: "fraction".into(),
            ..base.clone()
        },
        Row {
            kind: "e2e".into(),
            draft: Some("d".into()),
            gamma: Some(2),
            new_tokens: Some(128),
            context_tokens: Some(300.5),
            metric: "tokens_per_s".into(),
            value: 900.0,
            spread: Some(0.01),
            unit: "tokens/s".into(),
            ..base
        },
    ];
    for r in &written {
        sink.write(r).unwrap();
    }
    let path = sink.path().to_path_buf();
    drop(sink);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().next().unwrap(), header());

    let mut read: Vec<(Origin, Row)> = Vec::new();
    let src = for_each_row(&path, |o, r| {
        read.push((o, r));
        Ok(())
    })
    .unwrap();
    assert_eq!(src.sha256.len(), 64);
    assert_eq!(src.bytes, text.len() as u64);
    assert_eq!(read.len(), written.len());
    for (i, ((o, got), want)) in read.iter().zip(&written).enumerate() {
        assert_eq!(o.line, i as u64 + 2);
        assert_eq!(got.technique, "specdec");
        assert_eq!(got.provenance.gpu, "NVIDIA H200");
        assert_eq!(got.provenance.date.len(), 20, "dated when written");
        // Everything but technique and provenance (set by the sink) round-trips; values are
        // written with 10 significant digits, exact for these.
        let strip = |r: &Row| Row {
            technique: String::new(),
            provenance: Provenance::default(),
            ..r.clone()
        };
        assert_eq!(strip(got), strip(want));
    }

    let ds = Dataset::load(&[path]).unwrap();
    assert_eq!((ds.forward.len(), ds.e2e.len()), (1, 1));
    let curve = ds.curve_for(&ds.e2e[0]).unwrap().acceptance().unwrap();
    assert!((curve.expected_tokens(2) - 2.3).abs() < 1e-12);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn appending_to_a_legacy_file_keeps_its_21_columns() {
    let dir = tempfile_dir("legacy");
    let legacy = perfcast::measure::LEGACY_COLUMNS.join(",");
    std::fs::write(dir.join("old.csv"), format!("{legacy}\n")).unwrap();
    let mut sink = Sink::open(&dir, "old", prov()).unwrap();
    sink.write(&Row {
        set: "old".into(),
        kind: "forward".into(),
        model: "llama-3.2-1b".into(),
        batch: Some(1),
        new_tokens: Some(1),
        context_tokens: Some(10.0),
        metric: "forward_s".into(),
        value: 0.001,
        repeats: 3,
        unit: "s".into(),
        ..Row::default()
    })
    .unwrap();
    drop(sink);
    let text = std::fs::read_to_string(dir.join("old.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], legacy);
    // 21 fields; the command holds no comma.
    assert_eq!(lines[1].split(',').count(), 21, "{}", lines[1]);
    let ds = Dataset::load(&[dir.join("old.csv")]).unwrap();
    assert_eq!(ds.forward.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pcv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
