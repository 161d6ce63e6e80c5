//! `perfcast-gpu forward`: the per-forward latency grid (models × batch × new tokens × context,
//! kind `forward`), timed by [`crate::timing::pipelined_and_synced`], plus a roofline table for
//! batch 1 and one new token.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use candle_core::DType;

use super::graph::Runner;
use super::model::{preset, Head, KvCache, Model};
use super::spec;
use crate::cli::{device, positive, Global};
use crate::measure::{n, provenance, Row, Sink};
use crate::timing::{self, Repeats};

/// Measured H200 device-to-device copy bandwidth (bytes/s), the roofline's memory rate
/// (shared/gpu/RECIPE.md).
const H200_COPY_BW: f64 = 4.28e12;

/// Flags of `forward`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, value_delimiter = ',', required = true)]
    models: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
    batches: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,5,7,9")]
    new_tokens: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "128,512,1024,2048")]
    contexts: Vec<usize>,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// Forwards issued back to back per timed repeat (no synchronization between them, as in
    /// the decode loop); `forward_s` = elapsed / this. Each repeat also times one forward
    /// between two synchronizations (`forward_sync_s`).
    #[arg(long, default_value_t = 8)]
    pipeline: usize,
    #[arg(long, default_value = "h200-forward")]
    set: String,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs `forward`: writes `<set>.csv` rows and appends to `<set>-roofline.md` under `--out`.
///
/// # Errors
/// A zero count, an unknown model, no device, a failed forward or write (one line each).
pub fn run(global: &Global, a: Args) -> Result<ExitCode> {
    let Args {
        models,
        batches,
        new_tokens,
        contexts,
        warmup,
        repeats,
        pipeline,
        set,
        out,
        seed,
    } = a;
    positive("--repeats", &[repeats])?;
    positive("--pipeline", &[pipeline])?;
    positive("--batches", &batches)?;
    positive("--new-tokens", &new_tokens)?;
    let dev = device(global.cpu)?;
    let rt = Runner::new(global.exec, &dev, global.bucket);
    eprintln!(
        "forward: exec {} (attended-slot bucket {})",
        rt.exec(),
        rt.bucket()
    );
    let dt = if dev.is_cuda() {
        DType::BF16
    } else {
        DType::F32
    };
    let mut sink = Sink::open(&out, &set, provenance())?;
    let mut roof = String::new();
    for name in &models {
        let cfg = preset(name)?;
        let m = Model::random(&cfg, dt, &dev, seed)?;
        eprintln!(
            "forward {name}: {} parameters on the device ({:.3} GB)",
            m.param_count(),
            m.weight_bytes() as f64 / 1e9
        );
        let tmax = *new_tokens.iter().max().unwrap_or(&1);
        let cmax = *contexts.iter().max().unwrap_or(&1);
        for &b in &batches {
            let cap = (cmax + tmax + 1).div_ceil(rt.bucket()) * rt.bucket();
            let cache = KvCache::new(&cfg, b, cap, dt, &dev)?;
            for &ctx in &contexts {
                for &t in &new_tokens {
                    let toks =
                        spec::random_prompt(b, t, cfg.vocab, seed ^ (b * 1000 + t) as u64, &dev)?;
                    let pos = vec![ctx; b];
                    // A decode step's forward: logits and their greedy tokens.
                    let step = || {
                        m.run_tokens(&rt, &toks, &cache, &pos, Head::All, true)
                            .map(drop)
                    };
                    step()?; // untimed: captures the graph
                    let (s, synced) = timing::pipelined_and_synced(
                        &dev,
                        Repeats::new(warmup, repeats),
                        pipeline,
                        step,
                    )?;
                    rt.clear();
                    for (metric, st) in [("forward_s", s), ("forward_sync_s", synced)] {
                        sink.write(&Row {
                            set: set.clone(),
                            kind: "forward".into(),
                            model: name.clone(),
                            batch: n(b),
                            new_tokens: n(t),
                            context_tokens: Some(ctx as f64),
                            metric: metric.into(),
                            value: st.median,
                            repeats: st.n as u64,
                            spread: Some(st.spread()),
                            unit: "s".into(),
                            ..Default::default()
                        })?;
                    }
                    if b == 1 && t == 1 {
                        let bytes = m.weight_bytes() as f64
                            + (ctx * cfg.kv_bytes_per_token(dt.size_in_bytes())) as f64;
                        let floor = bytes / H200_COPY_BW;
                        let line = format!(
                            "| {name} | {} | {ctx} | {:.3} | {:.4} | {:.4} | {:.2} | {:.2} |",
                            m.param_count(),
                            bytes / 1e9,
                            floor * 1e3,
                            s.median * 1e3,
                            s.median / floor,
                            bytes / s.median / 1e12
                        );
                        eprintln!("roofline {line}");
                        roof.push_str(&line);
                        roof.push('\n');
                    }
                }
            }
            eprintln!("forward {name}: batch {b} done ({} rows)", sink.rows);
        }
    }
    if !roof.is_empty() {
        let head = "| model | params | context | bytes (GB) | floor (ms) | measured (ms) | measured/floor | achieved TB/s |\n|---|---|---|---|---|---|---|---|\n";
        let path = out.join(format!("{set}-roofline.md"));
        let prev = std::fs::read_to_string(&path).unwrap_or_default();
        let text = if prev.is_empty() {
            format!("{head}{roof}")
        } else {
            format!("{prev}{roof}")
        };
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}
