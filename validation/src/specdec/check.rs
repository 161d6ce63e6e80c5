//! `perfcast-gpu check`: correctness on the device before anything is timed. Cached vs full
//! forward; on a GPU, a CUDA-graph replay equals the full forward; greedy speculative decoding
//! (separate draft and LayerSkip, batch 3, γ 1–8, eager and graphs) emits exactly the target's
//! greedy tokens; a draft equal to the target is always fully accepted (greedy and speculative
//! sampling). All f32; exit 1 when a check fails.

use std::process::ExitCode;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};

use super::graph::{Exec, Runner};
use super::model::{preset, Head, KvCache, Model, Step};
use super::spec::{self, Accept, Draft};
use crate::cli::{device, Global};

/// Runs `check` on the device `global` selects; exit 1 when a check fails.
///
/// # Errors
/// No device, or a forward fails (a failed check is exit 1, not an error).
pub fn run(global: &Global) -> Result<ExitCode> {
    check(&device(global.cpu)?)
}

/// Correctness checks on the chosen device; exit 1 when one fails.
fn check(dev: &Device) -> Result<ExitCode> {
    let mut ok = true;
    let t = Model::random(&preset("val-tiny-t")?, DType::F32, dev, 11)?;
    let d = Model::random(&preset("val-tiny-d")?, DType::F32, dev, 12)?;
    // Cached incremental forward vs full causal forward.
    let toks = spec::random_prompt(2, 9, t.cfg.vocab, 1, dev)?;
    let full = t.forward_train(&toks, &[])?.pop().unwrap();
    let cache = KvCache::new(&t.cfg, 2, 16, DType::F32, dev)?;
    let mut outs = Vec::new();
    let mut p = 0;
    for n in [4usize, 2, 3] {
        let step = Step::new(&t, &[p, p], n, 16)?;
        outs.push(t.forward(&toks.narrow(1, p, n)?, &cache, &step)?.reshape((
            2,
            n,
            t.cfg.vocab,
        ))?);
        p += n;
    }
    let inc = Tensor::cat(&outs, 1)?.reshape((18, t.cfg.vocab))?;
    let diff = (inc - &full)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let pass = diff < 1e-3;
    ok &= pass;
    println!(
        "check cached-vs-full forward (f32): max |diff| {diff:.2e} (tolerance 1e-3): {}",
        if pass { "PASS" } else { "FAIL" }
    );
    // The same incremental forward replayed from CUDA graphs (with bucketed attended slots)
    // must equal the eager one.
    if dev.is_cuda() {
        let rt = Runner::new(Exec::Graphs, dev, 8);
        let cache = KvCache::new(&t.cfg, 2, 32, DType::F32, dev)?;
        let mut outs = Vec::new();
        let mut p = 0;
        for n in [4usize, 2, 3] {
            // Twice per shape: the first call captures, the second replays.
            for _ in 0..2 {
                let x = toks.narrow(1, p, n)?;
                let lg = t.run_tokens(&rt, &x, &cache, &[p, p], Head::All, false)?;
                outs.push(lg.reshape((2, n, t.cfg.vocab))?);
            }
            p += n;
        }
        let inc = Tensor::cat(&[&outs[1], &outs[3], &outs[5]], 1)?.reshape((18, t.cfg.vocab))?;
        let diff = (inc - &full)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let pass = diff < 1e-3 && rt.captures() == 3;
        ok &= pass;
        println!(
            "check CUDA-graph replayed forward vs full forward (f32, {} graphs): max |diff| {diff:.2e} (tolerance 1e-3): {}",
            rt.captures(),
            if pass { "PASS" } else { "FAIL" }
        );
    }
    let mut runners = vec![Runner::eager(dev)];
    if dev.is_cuda() {
        runners.push(Runner::new(Exec::Graphs, dev, 8));
    }
    for rt in &runners {
        ok &= check_decoding(rt, &t, &d, dev)?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Greedy speculative decoding (separate draft and LayerSkip, γ 1–8) emits exactly the target's
/// greedy tokens, and a draft equal to the target is always fully accepted (greedy and
/// speculative sampling), under `rt`.
fn check_decoding(rt: &Runner, t: &Model, d: &Model, dev: &Device) -> Result<bool> {
    let mut ok = true;
    let x = rt.exec();
    let (b, p, n) = (3, 6, 24);
    let prompt = spec::random_prompt(b, p, 97, 3, dev)?;
    let cap = spec::capacity_needed(p, n, 8);
    let tc = KvCache::new(&t.cfg, b, cap, DType::F32, dev)?;
    let dc = KvCache::new(&d.cfg, b, cap, DType::F32, dev)?;
    let st = spec::start(t, &tc, Some((d, &dc)), &prompt)?;
    let ar = spec::autoregressive(rt, t, &tc, &st, n)?;
    for g in 1..=8 {
        let sp = spec::speculative(
            rt,
            t,
            &tc,
            &Draft::Model(d, &dc),
            g,
            &st,
            n,
            &mut Accept::Greedy,
        )?;
        let ls = spec::speculative(
            rt,
            t,
            &tc,
            &Draft::LayerSkip { exit: 2 },
            g,
            &st,
            n,
            &mut Accept::Greedy,
        )?;
        let pass = sp.tokens == ar.tokens && ls.tokens == ar.tokens;
        ok &= pass;
        println!(
            "check greedy speculative == target greedy ({x}, f32, batch {b}, γ={g}): draft rounds {} (mean accepted {:.2}), layerskip rounds {}: {}",
            sp.rounds,
            sp.accepted.iter().sum::<usize>() as f64 / sp.accepted.len() as f64,
            ls.rounds,
            if pass { "PASS" } else { "FAIL" }
        );
    }
    // A draft identical to the target: every drafted token accepted, rounds = ceil(n / (γ+1)),
    // under greedy verification and under speculative sampling (temperature 1: p = q up to the
    // f32 rounding between a one-token and a (γ+1)-token forward, so min(1, p/q) ≈ 1 and all but
    // vanishingly rarely every drafted token is accepted; this runs the sampling rule's
    // device→host path on this runner, and its tokens must be in the vocabulary).
    let sc = KvCache::new(&t.cfg, b, cap, DType::F32, dev)?;
    spec::prefill(t, &sc, &prompt, 256)?;
    for g in [1, 4, 8] {
        let run =
            |acc: &mut Accept| spec::speculative(rt, t, &tc, &Draft::Model(t, &sc), g, &st, n, acc);
        let sp = run(&mut Accept::Greedy)?;
        let pass = sp.tokens == ar.tokens
            && sp.accepted.iter().all(|&a| a == g)
            && sp.rounds == n.div_ceil(g + 1);
        ok &= pass;
        println!(
            "check self-draft accepts all ({x}, f32, batch {b}, γ={g}): rounds {}: {}",
            sp.rounds,
            if pass { "PASS" } else { "FAIL" }
        );
        let sp = run(&mut Accept::sample(11 + g as u64))?;
        let mean = sp.accepted.iter().sum::<usize>() as f64 / sp.accepted.len().max(1) as f64;
        let valid = sp
            .tokens
            .iter()
            .all(|v| v.len() == n && v.iter().all(|&x| (x as usize) < t.cfg.vocab));
        let pass = valid && mean >= g as f64 - 0.05;
        ok &= pass;
        println!(
            "check sampling self-draft accepts all ({x}, f32, batch {b}, γ={g}): mean accepted {mean:.3}, rounds {}: {}",
            sp.rounds,
            if pass { "PASS" } else { "FAIL" }
        );
    }
    rt.clear();
    Ok(ok)
}
