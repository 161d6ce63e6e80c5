//! What-if: how much does freezing BERT-base's first 6 layers (and caching their output in GPU
//! memory) save on a 3-epoch fine-tuning run of 100 000 samples on an H200?
//!
//! The same computation as `perfcast freeze --model bert-base --policy fixed:k=6 --cache gpu
//! --samples 100000`, through the library's front door. Run with `cargo run --example freeze`.

use perfcast::freeze::{evaluate, Spec};
use perfcast::Catalog;

fn main() -> perfcast::Result<()> {
    let cat = Catalog::embedded()?;
    for cache in ["none", "gpu"] {
        let spec = Spec {
            samples: 100_000,
            policy: "fixed:k=6".parse()?,
            cache: cache.parse()?,
            ..Spec::new("bert-base")
        };
        let m = evaluate(&spec.resolve(&cat)?)?;
        println!(
            "cache {cache:>4}: {:.2} s against {:.2} s unfrozen ({:.3}×)",
            m.total_s, m.baseline_s, m.speedup
        );
    }
    Ok(())
}
