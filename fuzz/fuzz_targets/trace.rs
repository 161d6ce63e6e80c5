//! Every trace reader (text, CSV, oracleGeneral, Criteo TSV, MovieLens in both orders and all
//! lookups, libCacheSim CSV with a fuzzed `--csv-params` layout) on arbitrary bytes, then every
//! cache policy on what they return.
//!
//! Input: byte 0 picks the format and its options, byte 1 the batch size and cache sizes, the
//! rest is the file (for lcs-csv with a layout, its first line is the `--csv-params` string).
//! Properties: errors are one line; the dense trace is consistent (rows < n_rows, batches
//! cover every access, keys distinct, the accesses map back to the keys); for every policy and
//! size hits + misses = accesses, per-batch counts add up, Belady hits at least as much as LRU,
//! FIFO and LFU, LRU matches the stack-distance curve exactly and is monotone in the size;
//! the boxed policies under the invariant-checking wrapper agree with the simulator.
#![no_main]
#![deny(warnings)]

use libfuzzer_sys::fuzz_target;
use perfcast::embcache::policy::{self, checked::Checked, Policy, PolicyKind};
use perfcast::embcache::trace::{lcs_csv, movielens, DenseTrace, ReadOptions, TraceFormat};
use perfcast::embcache::{mrc, simulate};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;

/// One scratch file per fuzzing process (the readers take a path).
fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        std::env::temp_dir().join(format!("perfcast-fuzz-trace-{}", std::process::id()))
    })
}

fn one_line(e: &dyn std::fmt::Display) {
    let s = e.to_string();
    assert!(!s.contains('\n'), "error spans lines: {s:?}");
}

fn check_dense(t: &DenseTrace) {
    let n = t.n_rows();
    assert!(!t.is_empty());
    assert!(
        t.rows.iter().all(|&r| (r as usize) < n),
        "row index out of range"
    );
    assert_eq!(*t.batch_starts.first().unwrap(), 0);
    assert_eq!(*t.batch_starts.last().unwrap(), t.len());
    assert!(
        t.batch_starts.windows(2).all(|w| w[0] < w[1]),
        "empty or unordered batch"
    );
    let distinct: HashSet<_> = t.keys.iter().collect();
    assert_eq!(distinct.len(), n, "duplicate keys");
    // Rows are numbered by first appearance.
    let mut seen = 0u32;
    for &r in &t.rows {
        assert!(r <= seen, "row {r} before row {seen}");
        if r == seen {
            seen += 1;
        }
    }
    assert_eq!(seen as usize, n);
    let back: Vec<_> = t.accesses().collect();
    assert_eq!(back.len(), t.len());
    for (a, &r) in back.iter().zip(&t.rows) {
        assert_eq!((a.table, a.id), t.keys[r as usize]);
    }
}

fn run_policies(t: &DenseTrace, size_byte: u8) {
    let n = t.n_rows();
    let hist = mrc::stack_distances(t);
    let window = 1 + usize::from(size_byte >> 6);
    let kinds = [
        PolicyKind::Lru,
        PolicyKind::Fifo,
        PolicyKind::Lfu,
        PolicyKind::StaticTopK {
            profile_fraction: 0.5,
        },
        PolicyKind::Belady,
        PolicyKind::Lookahead { window },
    ];
    let c0 = 1 + usize::from(size_byte & 0x3f) % n.max(1);
    for c in [1, c0, n + 1] {
        let mut hits = Vec::new();
        for &k in &kinds {
            let (m, bc) = match simulate(t, k, c) {
                Ok(x) => x,
                Err(e) => {
                    assert!(
                        matches!(k, PolicyKind::Lookahead { .. }),
                        "{}: {e}",
                        k.name()
                    );
                    one_line(&e);
                    continue;
                }
            };
            assert_eq!(m.accesses, t.len() as u64);
            assert_eq!(m.hits + m.misses, m.accesses, "{} c={c}", k.name());
            assert_eq!(bc.unique.len(), t.n_batches());
            let bu: u64 = bc.unique.iter().map(|&x| u64::from(x)).sum();
            let bm: u64 = bc.misses.iter().map(|&x| u64::from(x)).sum();
            assert!(
                bm <= bu && bm <= m.misses,
                "{} c={c}: batch misses",
                k.name()
            );
            assert!(m.misses >= n as u64 || k.name() == "static-topk" || k.name() == "lookahead");
            // The boxed policy under the invariant checker (O(capacity) per access: one size)
            // agrees with the simulator.
            if c == c0 {
                let mut p = Checked::new(policy::build(k, c, t).expect("simulate accepted it"));
                let h: u64 = t.rows.iter().map(|&r| u64::from(p.access(r))).sum();
                assert_eq!(h, m.hits, "{} c={c}: boxed vs simulate", k.name());
            }
            hits.push((k, m.hits));
        }
        let get = |name: &str| hits.iter().find(|(k, _)| k.name() == name).map(|x| x.1);
        let (lru, belady) = (get("lru").unwrap(), get("belady").unwrap());
        for other in ["lru", "fifo", "lfu"] {
            assert!(belady >= get(other).unwrap(), "belady < {other} at c={c}");
        }
        assert_eq!(
            t.len() as u64 - lru,
            hist.misses(c),
            "lru vs stack distances at c={c}"
        );
        if c >= n {
            // Everything fits: only compulsory misses.
            assert_eq!(t.len() as u64 - lru, n as u64);
        }
    }
    // LRU is a stack algorithm: hits never fall as the cache grows.
    let mut prev = 0;
    for c in 1..=n.min(64) + 1 {
        let m = hist.misses(c);
        assert!(c == 1 || m <= prev, "lru misses grew at c={c}");
        prev = m;
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (sel, size_byte, mut body) = (data[0], data[1], &data[2..]);
    let mut opts = ReadOptions::default();
    let format = match sel % 9 {
        0 => TraceFormat::Text,
        1 => TraceFormat::Csv,
        2 => TraceFormat::OracleGeneral,
        3 => TraceFormat::Criteo,
        4 | 5 => {
            opts.order = Some(if sel & 0x10 == 0 {
                movielens::Order::Time
            } else {
                movielens::Order::File
            });
            opts.lookups = Some(match (sel >> 5) % 3 {
                0 => movielens::Lookups::Both,
                1 => movielens::Lookups::Items,
                _ => movielens::Lookups::Users,
            });
            TraceFormat::MovieLens
        }
        6 | 7 => TraceFormat::LcsCsv,
        _ => {
            // A libCacheSim layout string on the first line.
            let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
            let params = String::from_utf8_lossy(&body[..end]).into_owned();
            body = body.get(end + 1..).unwrap_or(&[]);
            match lcs_csv::Layout::parse(&params) {
                Ok(l) => opts.csv = Some(l),
                Err(e) => return one_line(&e),
            }
            TraceFormat::LcsCsv
        }
    };
    let batch = 1 + u64::from(size_byte >> 5);
    let path = scratch();
    std::fs::write(path, body).expect("scratch file");
    // Format detection by content must not panic either.
    let _ = TraceFormat::detect(path);
    let t = match DenseTrace::load_with(path, format, batch, &opts) {
        Ok(t) => t,
        Err(e) => return one_line(&e),
    };
    for w in &t.warnings {
        one_line(w);
    }
    check_dense(&t);
    run_policies(&t, size_byte);
});
