//! Hot loop of the freeze module: the per-iteration run simulation (cache state per epoch
//! position) and the AutoFreeze replay. Goal: ≥ 10 M simulated iterations/s per core, so a
//! 48-point default study (≤ 100 k iterations per point) evaluates in well under a second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use perfcast::freeze::{evaluate, Policy, Spec};
use perfcast::Catalog;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let cat = Catalog::embedded().unwrap();
    let spec = |policy: &str, cache: &str| Spec {
        samples: 320_000,
        epochs: 3,
        batch: 32,
        policy: policy.parse().unwrap(),
        cache: cache.parse().unwrap(),
        ..Spec::new("bert-base")
    };
    let mut g = c.benchmark_group("freeze/evaluate");
    // 3 × 10 000 iterations, simulated twice (with and without the cache).
    g.throughput(Throughput::Elements(2 * 30_000));
    let p = spec("freezeout", "gpu").to_params(&cat, 1).unwrap();
    g.bench_function("bert-base_freezeout_gpu_30k_iters", |b| {
        b.iter(|| evaluate(black_box(&p)).unwrap())
    });
    let p = spec("autofreeze", "ram").to_params(&cat, 1).unwrap();
    g.bench_function("bert-base_autofreeze_ram_30k_iters", |b| {
        b.iter(|| evaluate(black_box(&p)).unwrap())
    });
    g.finish();
    let p = spec("autofreeze", "none").to_params(&cat, 1).unwrap();
    let pol = Policy::parse("autofreeze:interval=100").unwrap();
    c.bench_function("freeze/autofreeze_replay_300_decisions", |b| {
        b.iter(|| {
            pol.timeline(14, 30_000, black_box(p.grads.as_ref()))
                .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
