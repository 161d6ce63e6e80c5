//! What-if: does PowerSGD (rank 4) beat fp16 DDP for BERT-base on 64 H100s, and below which node
//! bandwidth?
//!
//! The same computation as `perfcast gradcomp --model bert-base --workers 64 --inter-node-gbps
//! 25 --method powersgd:rank=4 --algo hierarchical --break-even`, through the library's front
//! door. Run with `cargo run --example gradcomp`.

use perfcast::gradcomp::{evaluate, Predictor, Spec};
use perfcast::Catalog;

fn main() -> perfcast::Result<()> {
    let cat = Catalog::embedded()?;
    let spec = Spec {
        workers: 64,
        algo: "hierarchical".into(),
        method: "powersgd:rank=4".into(),
        break_even: true,
        ..Spec::new("bert-base", 25.0)
    };
    let row = evaluate(&spec.resolve(&cat)?, Predictor::Sim, 0)?;
    let m = &row.metrics;
    println!(
        "{} on {} × {}: step {:.4} s (comm {:.4} s, codec {:.4} s), {:.2}× vs {} DDP",
        m.method,
        m.workers,
        m.gpu,
        m.step_s,
        m.comm_s,
        m.codec_s,
        m.speedup_vs_baseline,
        m.baseline
    );
    match row.break_even_gbps.flatten() {
        Some(be) => println!("compression pays below {be:.1} Gb/s per node"),
        None => println!("no break-even in 0.1–10000 Gb/s"),
    }
    Ok(())
}
