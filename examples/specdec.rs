//! What-if: which draft model gives Llama-2-13B the most tokens/s on an H200 at batch 8?
//!
//! The same computation as `perfcast specdec --target llama-2-13b --draft
//! tinyllama-1.1b,llama-2-7b --alpha 0.65,0.8 --batch 8`, through the library's front door
//! (`Spec` → `resolve` → `evaluate`). Run with `cargo run --example specdec`.

use perfcast::specdec::{evaluate, DraftSpec, Method, Spec};
use perfcast::Catalog;

fn main() -> perfcast::Result<()> {
    let cat = Catalog::embedded()?;
    for (draft, alpha) in [("tinyllama-1.1b", 0.65), ("llama-2-7b", 0.8)] {
        let spec = Spec {
            target: "llama-2-13b".into(),
            batch: 8,
            draft: DraftSpec {
                model: Some(draft.into()),
                alpha: Some(alpha),
                ..DraftSpec::default()
            },
            ..Spec::new()
        };
        let m = evaluate(&spec.resolve(&cat)?, Method::Analytic, 0)?;
        println!(
            "{draft:>16}: gamma {}, {:.0} tokens/s, speedup {:.3}",
            m.gamma, m.tokens_per_s, m.speedup
        );
    }
    Ok(())
}
