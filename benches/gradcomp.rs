//! Hot loops of the gradcomp module. Goals (issue 5): one DDP step with 200 buckets simulated in
//! < 100 µs; 10 k configurations (workers × bandwidth × method, each against its baseline) in
//! < 1 s on 2 cores.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use perfcast::gradcomp::{Cluster, Config, DdpSim, Method, Plan, Predictor};
use perfcast::Catalog;
use rayon::prelude::*;
use std::hint::black_box;

fn plan(cat: &Catalog, model: &str, bucket_mb: f64, method: &str) -> Plan {
    let mut c = Config::new(model, 100.0);
    c.workers = 64;
    c.gpus_per_node = 8;
    c.bucket_mb = bucket_mb;
    c.method = method.into();
    Plan::new(cat, &c).unwrap()
}

fn bench(c: &mut Criterion) {
    let cat = Catalog::embedded().unwrap();
    // ResNet-101 (about 210 gradient tensors) with the smallest bucket cap that gives ~200 buckets.
    let mut g = c.benchmark_group("gradcomp/ddp_step");
    let mut counts = Vec::new();
    let cap = (0..60)
        .map(|i| 0.02 * 1.1f64.powi(i))
        .find(|&mb| {
            let nb = plan(&cat, "resnet-101", mb, "none").buckets.len();
            counts.push(nb);
            (195..=205).contains(&nb)
        })
        .unwrap_or_else(|| panic!("no cap gives ~200 buckets: {counts:?}"));
    for method in ["none", "powersgd:rank=4"] {
        let p = plan(&cat, "resnet-101", cap, method);
        let inp = p.step_input(&p.method);
        let nb = inp.ready_after.len();
        let mut sim = DdpSim::new();
        g.bench_function(format!("sim_{nb}_buckets_{method}"), |b| {
            b.iter(|| sim.run(black_box(&inp)))
        });
        g.bench_function(format!("build_and_sim_{nb}_buckets_{method}"), |b| {
            b.iter(|| p.step(black_box(&p.method), Predictor::Sim, &mut sim))
        });
    }
    g.finish();

    // 10 k configurations: 5 models × 10 worker counts × 25 bandwidths × 8 methods, each a
    // simulated step of the method and one of the fp16 baseline.
    let models = ["resnet-50", "vgg-16", "bert-base", "gpt2", "vit-b16"];
    let plans: Vec<Plan> = models.iter().map(|m| plan(&cat, m, 25.0, "none")).collect();
    let methods: Vec<Method> = [
        "none",
        "fp16",
        "bf16",
        "powersgd:rank=4",
        "topk:density=0.01",
        "randomk:density=0.01",
        "signsgd",
        "qsgd:bits=4",
    ]
    .iter()
    .map(|m| Method::parse(m).unwrap())
    .collect();
    let mut configs = Vec::new();
    for pi in 0..plans.len() {
        for w in 1..=10i64 {
            for bi in 0..25 {
                for m in &methods {
                    configs.push((pi, w * 8, 10f64.powf(bi as f64 / 8.0), *m));
                }
            }
        }
    }
    assert_eq!(configs.len(), 10_000);
    let mut g = c.benchmark_group("gradcomp/sweep");
    g.sample_size(10);
    g.throughput(Throughput::Elements(configs.len() as u64));
    g.bench_function("10k_configs_sim", |b| {
        b.iter(|| {
            configs
                .par_iter()
                .map_init(DdpSim::new, |sim, &(pi, w, gbps, m)| {
                    let p = &plans[pi];
                    let mut env = p.env.clone();
                    env.cluster = Cluster::new(w, 8, gbps, 3600.0, 10.0).unwrap();
                    p.evaluate_on(&env, &m, Predictor::Sim, sim)
                        .speedup_vs_baseline
                })
                .sum::<f64>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
