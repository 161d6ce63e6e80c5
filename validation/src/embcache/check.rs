//! Correctness of the cached training loop, on the device it runs on (before timing) and in the
//! CPU tests: for every policy and a few cache sizes,
//! 1. the per-batch unique rows, misses and evictions and the per-access hits equal
//!    `perfcast::embcache::simulate` on the same trace;
//! 2. every batch's work rows (gathered hits and fetched misses) equal the rows an uncached run
//!    (the whole table resident on the device) reads in the same batch;
//! 3. after the run (and the final write-back) the host table and the dense weights equal the
//!    uncached run's.
//!
//! Every difference is reported as the largest absolute difference against `tol`.

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use perfcast::embcache::policy::lookahead::Lookahead;
use perfcast::embcache::policy::PolicyKind;

use super::cli::{model_cfg, Common, Trace};
use super::dlrm::Dlrm;
use super::engine::Engine;
use super::plan::{self, Plan};

/// Result of one run: gathered work rows per batch (row id → values), final table, dense weights.
struct Run {
    gathered: Vec<Vec<(u32, Vec<f32>)>>,
    table: Vec<f32>,
    dense: Vec<f32>,
    misses: Vec<u32>,
}

fn run_plan(dev: &Device, c: &Common, tr: &Trace, p: &Plan, resident: bool) -> Result<Run> {
    let cfg = model_cfg(c, tr.tables)?;
    let n = tr.dense.n_rows();
    let stage = p.max_fetch().max(p.max_wb()).max(n.min(4096));
    let mut eng = Engine::new(dev, n, cfg.dim, cfg.width(), p.slots, stage, c.seed)?;
    if resident {
        eng.preload_all()?;
    }
    let mut model = Dlrm::new(cfg, dev)?;
    let mut g: Vec<Tensor> = Vec::new();
    let pipelined = p.pipelinable() && p.policy == "lookahead";
    let st = eng.pass(
        tr.dense.n_batches(),
        p,
        &mut model,
        pipelined,
        c.seed,
        Some(&mut g),
    )?;
    eng.flush(p, resident)?;
    let mut gathered = Vec::with_capacity(g.len());
    for (bp, t) in p.batches.iter().zip(&g) {
        let v = t.to_vec2::<f32>()?;
        let rows = bp.hit_rows.iter().chain(&bp.fetch).copied();
        gathered.push(rows.zip(v).collect());
    }
    Ok(Run {
        gathered,
        table: eng.host.as_slice().to_vec(),
        dense: model.params_f32()?,
        misses: st.misses,
    })
}

fn max_diff(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
}

/// The policies and capacities checked on `tr`.
pub fn cases(tr: &Trace) -> Vec<(PolicyKind, usize)> {
    let u = tr.dense.n_rows();
    let small = (u / 50).max(2);
    let large = (u / 5).max(small + 1);
    let la = Lookahead::min_feasible_rows(&tr.dense);
    let mut v = Vec::new();
    for k in [
        PolicyKind::Lru,
        PolicyKind::Fifo,
        PolicyKind::Lfu,
        PolicyKind::StaticTopK {
            profile_fraction: 0.5,
        },
        PolicyKind::Belady,
    ] {
        v.push((k, small));
        v.push((k, large));
    }
    for w in [1, 4] {
        v.push((PolicyKind::Lookahead { window: w }, la));
        v.push((PolicyKind::Lookahead { window: w }, large.max(la + la / 2)));
    }
    v
}

/// Runs every case; prints one line per case; returns whether all passed.
///
/// # Errors
/// Device errors (a failed comparison is `Ok(false)`).
pub fn check(dev: &Device, c: &Common, tr: &Trace, tol: f64) -> Result<bool> {
    let reference = run_plan(dev, c, tr, &plan::resident(&tr.dense), true)?;
    println!(
        "embcache check: {} lookups, {} batches of {} samples × {} tables, {} rows; uncached reference run done",
        tr.dense.len(),
        tr.dense.n_batches(),
        tr.batch,
        tr.tables,
        tr.dense.n_rows()
    );
    let mut ok = true;
    if c.step_exec == "graphs" {
        // The graph-replayed step against the eager one on the same uncached run: the same
        // kernels on the same data (the padding rows have empty segments).
        let mut e = c.clone();
        e.step_exec = "eager".into();
        let eager = run_plan(dev, &e, tr, &plan::resident(&tr.dense), true)?;
        let tdiff = max_diff(&eager.table, &reference.table);
        let ddiff = max_diff(&eager.dense, &reference.dense);
        let pass = tdiff <= tol && ddiff <= tol;
        ok &= pass;
        println!(
            "embcache check: graph-replayed steps vs eager steps, uncached: table max|diff| {tdiff:.2e}, dense {ddiff:.2e} (tol {tol:.0e}): {}",
            if pass { "ok" } else { "FAILED" }
        );
    }
    for (kind, cap) in cases(tr) {
        let (m, bc) = perfcast::embcache::simulate(&tr.dense, kind, cap)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let p = plan::plan(&tr.dense, kind, cap)?;
        let run = run_plan(dev, c, tr, &p, false)?;
        let unique: Vec<u32> = p.batches.iter().map(|b| b.unique() as u32).collect();
        let ev: Vec<u32> = p.batches.iter().map(|b| b.evictions).collect();
        let hits: u64 = p.batches.iter().map(|b| u64::from(b.access_hits)).sum();
        let counts_ok =
            run.misses == bc.misses && unique == bc.unique && ev == bc.evictions && hits == m.hits;
        let mut gdiff = 0f64;
        for (b, (mine, refb)) in run.gathered.iter().zip(&reference.gathered).enumerate() {
            let want: std::collections::HashMap<u32, &Vec<f32>> =
                refb.iter().map(|(r, v)| (*r, v)).collect();
            for (r, v) in mine {
                let w = want
                    .get(r)
                    .with_context(|| format!("batch {b}: row {r} not in the reference batch"))?;
                gdiff = gdiff.max(max_diff(v, w));
            }
            if mine.len() != refb.len() {
                gdiff = f64::INFINITY;
            }
        }
        let tdiff = max_diff(&run.table, &reference.table);
        let ddiff = max_diff(&run.dense, &reference.dense);
        let pass = counts_ok && gdiff <= tol && tdiff <= tol && ddiff <= tol;
        ok &= pass;
        println!(
            "embcache check: {:<11} {:<4} cache {cap:>6}: misses {} hits {} (simulator {} / {}) {}; gathered rows max|diff| {gdiff:.2e}, table {tdiff:.2e}, dense {ddiff:.2e} (tol {tol:.0e}): {}",
            kind.name(),
            match kind {
                PolicyKind::Lookahead { window } => format!("w={window}"),
                _ => String::new(),
            },
            p.misses(),
            hits,
            bc.misses.iter().map(|&x| u64::from(x)).sum::<u64>(),
            m.hits,
            if counts_ok { "per batch equal" } else { "PER-BATCH COUNTS DIFFER" },
            if pass { "ok" } else { "FAILED" }
        );
    }
    println!(
        "embcache check: {}",
        if ok { "all passed" } else { "FAILED" }
    );
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embcache::cli::load_trace;

    pub(crate) fn tiny() -> Common {
        Common {
            dim: 8,
            bottom: vec![16],
            top: vec![16],
            emb_opt: "sgd".into(),
            emb_lr: 0.1,
            dense_lr: 1e-2,
            trace: "zipf".into(),
            trace_format: None,
            profile: "criteo-kaggle".into(),
            scale: 0.0001,
            zipf: 1.05,
            n_batches: 12,
            seed: 3,
            step_exec: "eager".into(),
        }
    }

    #[test]
    fn cached_training_equals_uncached_for_every_policy() {
        let c = tiny();
        let tr = load_trace(&c, 16).unwrap();
        assert!(check(&Device::Cpu, &c, &tr, 1e-6).unwrap());
    }

    /// The graph execution's padded shapes (`B·T` work rows, empty segments for the padding)
    /// train exactly as the eager step: same table and dense weights after the run, and the
    /// cache check holds with them (SGD and Adagrad rows).
    #[test]
    fn padded_graph_shapes_train_like_eager_steps() {
        for opt in ["sgd", "adagrad"] {
            let mut c = tiny();
            c.emb_opt = opt.into();
            let tr = load_trace(&c, 16).unwrap();
            let mut g = c.clone();
            g.step_exec = "graphs".into();
            assert!(check(&Device::Cpu, &g, &tr, 1e-6).unwrap(), "{opt}");
            let p = plan::resident(&tr.dense);
            let a = run_plan(&Device::Cpu, &c, &tr, &p, true).unwrap();
            let b = run_plan(&Device::Cpu, &g, &tr, &p, true).unwrap();
            assert!(max_diff(&a.table, &b.table) <= 1e-6, "{opt}");
            assert!(max_diff(&a.dense, &b.dense) <= 1e-6, "{opt}");
        }
    }

    #[test]
    fn adagrad_rows_carry_their_state_through_the_cache() {
        let mut c = tiny();
        c.emb_opt = "adagrad".into();
        c.n_batches = 6;
        let tr = load_trace(&c, 8).unwrap();
        assert!(check(&Device::Cpu, &c, &tr, 1e-6).unwrap());
    }

    #[test]
    fn a_corrupted_cache_row_is_caught() {
        // Differences must be visible: a run whose table starts from another seed differs.
        let c = tiny();
        let tr = load_trace(&c, 16).unwrap();
        let a = run_plan(&Device::Cpu, &c, &tr, &plan::resident(&tr.dense), true).unwrap();
        let mut c2 = c.clone();
        c2.seed = 4;
        let b = run_plan(&Device::Cpu, &c2, &tr, &plan::resident(&tr.dense), true).unwrap();
        assert!(max_diff(&a.table, &b.table) > 1e-3);
        // Training moved the rows (so equal tables are not trivially equal initial tables).
        let cfg = model_cfg(&c, tr.tables).unwrap();
        let fresh = Engine::new(
            &Device::Cpu,
            tr.dense.n_rows(),
            cfg.dim,
            cfg.width(),
            1,
            1,
            c.seed,
        )
        .unwrap();
        assert!(max_diff(fresh.host.as_slice(), &a.table) > 1e-4);
    }
}
