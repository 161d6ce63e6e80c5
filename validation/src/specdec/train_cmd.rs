//! `perfcast-gpu train`: trains a byte-level model on a corpus with [`super::train::train`]
//! (optionally with LayerSkip early-exit losses) and saves its weights for `e2e --weights`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::model::preset;
use super::train::{self, TrainCfg};
use crate::cli::{device, positive, Global};

/// Flags of `train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    model: String,
    #[arg(long)]
    corpus: PathBuf,
    #[arg(long, default_value_t = 120.0)]
    secs: f64,
    #[arg(long, default_value_t = 3000)]
    max_steps: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 256)]
    seq: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Early-exit layers trained with their own loss (LayerSkip).
    #[arg(long, value_delimiter = ',')]
    exits: Vec<usize>,
    #[arg(long, default_value_t = 1.0)]
    exit_weight: f64,
    #[arg(long)]
    save: PathBuf,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs `train`: the first 95% of the corpus trains, the rest is held out; writes
/// `<save>/<model>.safetensors`.
///
/// # Errors
/// A bad flag value, an unknown or non-byte-level model, an unreadable corpus, no device, a
/// failed step or write (one line each).
pub fn run(global: &Global, a: Args) -> Result<ExitCode> {
    let Args {
        model,
        corpus,
        secs,
        max_steps,
        batch,
        seq,
        lr,
        warmup,
        exits,
        exit_weight,
        save,
        seed,
    } = a;
    positive("--batch", &[batch])?;
    positive("--seq", &[seq])?;
    positive("--max-steps", &[max_steps])?;
    if secs.is_nan() || secs <= 0.0 {
        bail!("--secs {secs}: expected seconds > 0");
    }
    let dev = device(global.cpu)?;
    if dev.is_cuda() {
        candle_core::cuda::set_gemm_reduced_precision_f32(true);
    }
    let cfg = preset(&model)?;
    let text = std::fs::read(&corpus).with_context(|| corpus.display().to_string())?;
    let split = text.len() * 95 / 100;
    let tc = TrainCfg {
        batch,
        seq,
        lr,
        warmup,
        max_steps,
        max_secs: secs,
        exits,
        exit_weight,
        seed,
        log_every: 50,
    };
    let (m, rep) = train::train(&cfg, &text[..split], &text[split..], &tc, &dev, &mut |s| {
        eprintln!("{s}")
    })?;
    std::fs::create_dir_all(&save)?;
    let path = save.join(format!("{model}.safetensors"));
    m.save(&path)?;
    eprintln!(
        "train {model}: {} parameters, {} steps in {:.1}s ({} tokens), final loss {:.4} nats/byte, held-out bits/byte {:?}; saved {}",
        m.param_count(),
        rep.steps,
        rep.secs,
        rep.steps * batch * seq,
        rep.loss,
        rep.eval_bpb.iter().map(|(l, v)| format!("{l}={v:.3}")).collect::<Vec<_>>(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
