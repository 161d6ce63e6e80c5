//! Hot loops of embcache. Goals (issue 4): ≥ 25 M accesses/s per core for LRU and FIFO, ≥ 10 M/s
//! for Belady and lookahead, on a 10 M-access Zipf(1.05) trace over 1 M rows (cache: 10 % of the
//! rows; lookahead: batches of 4096 lookups, window 4).
//!
//! With `PERFCAST_PYTHON` pointing at a Python with `libcachesim` installed, the same trace is
//! written as oracleGeneral and libCacheSim's binding is timed on it in the same run (its C
//! `process_trace` loop), printing the throughput ratio.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use perfcast::embcache::policy::PolicyKind;
use perfcast::embcache::simulate;
use perfcast::embcache::trace::{writer, zipf::ZipfSpec, DenseTrace, TraceFormat};
use std::hint::black_box;
use std::time::Instant;

const ACCESSES: u64 = 10_000_000;
const ROWS: u64 = 1_000_000;
const CACHE: usize = 100_000;

fn trace() -> DenseTrace {
    let z = ZipfSpec::new(1.05, vec![ROWS], ACCESSES, 42).unwrap();
    DenseTrace::from_stream(z.stream(), 4096, false, &z.describe()).unwrap()
}

fn libcachesim(t: &DenseTrace) {
    let Ok(python) = std::env::var("PERFCAST_PYTHON") else {
        eprintln!("PERFCAST_PYTHON unset: skipping the libcachesim comparison");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zipf.oracleGeneral");
    writer::write(t, TraceFormat::OracleGeneral, &path).unwrap();
    let script = r#"
import sys, time, libcachesim as lcs
for name in ["LRU", "FIFO", "Belady"]:
    r = lcs.TraceReader(sys.argv[1], lcs.TraceType.ORACLE_GENERAL_TRACE)
    c = getattr(lcs, name)(cache_size=int(sys.argv[2]))
    t0 = time.perf_counter(); mr, _ = c.process_trace(r); dt = time.perf_counter() - t0
    print(name, mr, dt)
"#;
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&path)
        .arg(CACHE.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (name, mr, secs): (&str, f64, f64) =
            (f[0], f[1].parse().unwrap(), f[2].parse().unwrap());
        let kind = match name {
            "LRU" => PolicyKind::Lru,
            "FIFO" => PolicyKind::Fifo,
            _ => PolicyKind::Belady,
        };
        let start = Instant::now();
        let (m, _) = simulate(t, kind, CACHE).unwrap();
        let ours = start.elapsed().as_secs_f64();
        // End to end like process_trace: read the same file, remap ids, simulate.
        let start = Instant::now();
        let loaded = DenseTrace::load(&path, TraceFormat::OracleGeneral, 4096).unwrap();
        let (m2, _) = simulate(&loaded, kind, CACHE).unwrap();
        let e2e = start.elapsed().as_secs_f64();
        assert_eq!(m.misses, m2.misses);
        let ours_mr = m.misses as f64 / m.accesses as f64;
        println!(
            "libcachesim {name}: {:.1} M req/s (miss ratio {mr:.6}); perfcast {:.1} M req/s simulate only ({:.1}x), {:.1} M req/s reading the file too ({:.1}x); miss ratio {ours_mr:.6}",
            ACCESSES as f64 / secs / 1e6,
            ACCESSES as f64 / ours / 1e6,
            secs / ours,
            ACCESSES as f64 / e2e / 1e6,
            secs / e2e
        );
    }
    if !out.status.success() {
        eprintln!(
            "libcachesim failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn bench(c: &mut Criterion) {
    let t = trace();
    libcachesim(&t);
    let mut g = c.benchmark_group("embcache/10M_zipf1.05_1M_rows");
    g.throughput(Throughput::Elements(ACCESSES));
    g.sample_size(10);
    for kind in [
        PolicyKind::Lru,
        PolicyKind::Fifo,
        PolicyKind::Lfu,
        PolicyKind::StaticTopK {
            profile_fraction: 1.0,
        },
        PolicyKind::Belady,
        PolicyKind::Lookahead { window: 4 },
    ] {
        g.bench_function(kind.name(), |b| {
            b.iter(|| simulate(black_box(&t), kind, CACHE).unwrap().0.misses)
        });
    }
    g.bench_function("mrc_one_pass", |b| {
        b.iter(|| perfcast::embcache::mrc::stack_distances(black_box(&t)).cold)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
