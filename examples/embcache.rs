//! What-if: how many lookups does an embedding cache of 2% of the rows serve, per policy, on a
//! Zipf(1.05) trace, and what does that do to the iteration time?
//!
//! The same computation as `perfcast embcache --zipf 1.05 --rows 100000 --accesses 1000000
//! --batch 64 --policy lru,lfu,static-topk,belady --cache 2% --compute-s 0.0005`, through the
//! library's front door. Run with `cargo run --example embcache`.

use perfcast::embcache::{evaluate, Method, Spec};
use perfcast::Catalog;

fn main() -> perfcast::Result<()> {
    let spec = Spec {
        zipf: Some(1.05),
        rows: Some(100_000),
        accesses: Some(1_000_000),
        batch: 64,
        policy: ["lru", "lfu", "static-topk", "belady"]
            .map(String::from)
            .to_vec(),
        cache: "2%".parse()?,
        compute_s: Some(5e-4),
        ..Spec::default()
    };
    let params = spec.resolve(&Catalog::embedded()?)?;
    for row in evaluate(&params, Method::Sim, spec.seed)? {
        let speedup = row.times.map(|t| t.speedup).unwrap_or(f64::NAN);
        println!(
            "{:>12}: hit rate {:.3}, iteration speedup {speedup:.3}",
            row.metrics.policy, row.metrics.hit_rate
        );
    }
    Ok(())
}
