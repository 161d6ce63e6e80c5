//! Hot loops of the specdec module. Goals (issue 2): ≤ 1 µs per analytic point, ≥ 1 M simulated
//! decode steps/s per core, a 1 M-point sweep in < 2 s on 2 cores.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use perfcast::specdec::{analytic, simulate, Params, SimConfig};
use perfcast::specdec::{DraftSpec, GammaSpec, Spec};
use perfcast::Catalog;
use rayon::prelude::*;
use std::hint::black_box;

fn params(cat: &Catalog, batch: u32) -> Params {
    Spec {
        target: "llama-2-70b".into(),
        draft: DraftSpec {
            model: Some("llama-2-7b".into()),
            alpha: Some(0.8),
            ..DraftSpec::default()
        },
        gamma: GammaSpec::Fixed(4),
        batch,
        ..Spec::new()
    }
    .to_params(cat)
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let cat = Catalog::embedded().unwrap();
    let p = params(&cat, 8);
    c.bench_function("specdec/analytic_point", |b| {
        b.iter(|| analytic(black_box(&p)).unwrap())
    });

    let steps = 100_000u64;
    let p1 = params(&cat, 1);
    let mut g = c.benchmark_group("specdec/sim");
    g.throughput(Throughput::Elements(steps));
    g.sample_size(10);
    g.bench_function("decode_steps_b1", |b| {
        b.iter(|| {
            simulate(
                black_box(&p1),
                SimConfig {
                    steps,
                    gen_tokens: 256,
                    seed: 1,
                },
            )
            .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("specdec/sweep");
    g.sample_size(10);
    let n = 1_000_000usize;
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("1M_points_parallel", |b| {
        b.iter_batched(
            || (),
            |_| {
                (0..n)
                    .into_par_iter()
                    .map(|i| {
                        let mut q = p.clone();
                        q.gamma = perfcast::specdec::Gamma::Fixed(1 + (i % 8) as u32);
                        q.batch = 1 + (i % 64) as u32;
                        q.context_tokens = (i % 4096) as f64;
                        analytic(&q).map(|m| m.tokens_per_s).unwrap_or(0.0)
                    })
                    .sum::<f64>()
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
