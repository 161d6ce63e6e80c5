//! `perfcast-gpu embcache {check,micro,e2e}`: the DLRM embedding-cache harness's command line.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::{Args as ClapArgs, Subcommand};
use perfcast::embcache::policy::lookahead::Lookahead;
use perfcast::embcache::policy::PolicyKind;
use perfcast::embcache::trace::{self, Access, DenseTrace, TraceFormat};

use super::dlrm::{Dlrm, DlrmCfg, EmbOpt};
use super::engine::{Engine, PassStats};
use super::plan;
use super::rows::{write, EmbRow};
use crate::cli::Global;
use crate::measure::{provenance, Sink, Stats};
use std::process::ExitCode;

/// `perfcast-gpu embcache …`.
#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Model and trace options shared by the subcommands.
#[derive(ClapArgs, Debug, Clone)]
pub struct Common {
    /// Embedding dimension (f32 master rows).
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Bottom MLP hidden widths (the `dim`-wide output layer is added).
    #[arg(long, value_delimiter = ',', default_value = "512,256")]
    pub bottom: Vec<usize>,
    /// Top MLP hidden widths (the 1-wide output layer is added).
    #[arg(long, value_delimiter = ',', default_value = "1024,1024,512,256")]
    pub top: Vec<usize>,
    /// Embedding optimizer: `sgd` or `adagrad` (row-wise).
    #[arg(long, default_value = "sgd")]
    pub emb_opt: String,
    /// Embedding learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub emb_lr: f64,
    /// AdamW learning rate of the dense weights.
    #[arg(long, default_value_t = 1e-3)]
    pub dense_lr: f64,
    /// Trace: `zipf` (generated from a table profile) or a trace file (text, CSV
    /// `batch,table,id`, oracleGeneral, Criteo TSV, MovieLens ratings), regrouped into samples of
    /// one lookup per table.
    #[arg(long, default_value = "zipf")]
    pub trace: String,
    /// Trace file format (default: from the file name).
    #[arg(long)]
    pub trace_format: Option<String>,
    /// Generated trace: table profile (`criteo-kaggle`, `criteo-terabyte`).
    #[arg(long, default_value = "criteo-kaggle")]
    pub profile: String,
    /// Generated trace: profile scale (rows of every table × this).
    #[arg(long, default_value_t = 0.03)]
    pub scale: f64,
    /// Generated trace: Zipf exponent.
    #[arg(long, default_value_t = 1.05)]
    pub zipf: f64,
    /// Batches of the trace at every batch size (generated traces; files are cut to this many).
    #[arg(long, default_value_t = 50)]
    pub n_batches: usize,
    /// Seed (trace, table, dense weights, inputs).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Dense step execution: `eager` (one host launch per candle op) or `graphs` (each batch
    /// size's step captured once as a CUDA graph and replayed; eager off CUDA). Rows of the
    /// dense step (micro `compute`, `overlap`; e2e) say `step_exec=graphs` when graphs ran.
    #[arg(long, default_value = "eager", value_parser = ["eager", "graphs"])]
    pub step_exec: String,
}

impl Common {
    /// The `step_exec` row parameter: `[("step_exec", "graphs")]` when steps run as CUDA graphs
    /// on `dev`.
    pub fn exec_param(&self, dev: &candle_core::Device) -> Vec<(&'static str, String)> {
        if self.step_exec == "graphs" && dev.is_cuda() {
            vec![("step_exec", "graphs".to_string())]
        } else {
            Vec::new()
        }
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Correctness before timing: for every policy, per-batch hits/misses equal perfcast's
    /// simulator, every batch's gathered rows equal an uncached run's, and the trained table and
    /// dense weights after the run equal the uncached run's. Exit 1 on failure.
    Check {
        #[command(flatten)]
        common: Common,
        /// Samples per batch.
        #[arg(long, default_value_t = 64)]
        batch: usize,
    },
    /// Micro-measurements for calibration: device gather/scatter rate, host↔device copies
    /// (pinned and pageable) per row count, the host side and the whole miss / write-back path,
    /// dense compute per batch size, and the device copy rate as the memory roofline.
    Micro {
        #[command(flatten)]
        common: Common,
        /// Row counts for gathers and copies.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "64,256,1024,4096,16384,65536,262144"
        )]
        rows: Vec<usize>,
        /// Host table rows (the gather source of fetches).
        #[arg(long, default_value_t = 1 << 20)]
        table_rows: usize,
        /// Batch sizes (samples) for the dense compute time.
        #[arg(long, value_delimiter = ',', default_value = "256,1024,4096,16384")]
        batches: Vec<usize>,
        /// Batch sizes at which the overlap of a fetch with the step is measured.
        #[arg(long, value_delimiter = ',', default_value = "1024,4096")]
        overlap_batches: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        #[arg(long, default_value_t = 10)]
        repeats: usize,
        /// Calls per timed repeat (device synchronized around them).
        #[arg(long, default_value_t = 5)]
        iters: usize,
        #[arg(long, default_value = "h200-embcache-micro")]
        set: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// End-to-end training iteration time and hit rate over cache size × policy × lookahead
    /// window × batch size (one full pass over the trace per repeat, from an empty cache).
    E2e {
        #[command(flatten)]
        common: Common,
        /// Batch sizes (samples).
        #[arg(long, value_delimiter = ',', default_value = "1024,4096")]
        batches: Vec<usize>,
        /// Cache sizes: rows, percentages of the trace's unique rows, or `wss` / `<k>wss` (k ×
        /// the two-batch working set, the smallest cache lookahead runs with).
        #[arg(long, value_delimiter = ',', default_value = "0.1%,1%,5%,20%,wss,2wss")]
        caches: Vec<String>,
        /// Policies (`lru`, `fifo`, `lfu`, `static-topk`, `belady`, `lookahead`, `resident` =
        /// the whole table on the device).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "resident,lru,fifo,static-topk,belady,lookahead"
        )]
        policies: Vec<String>,
        /// Lookahead windows (batches).
        #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
        windows: Vec<usize>,
        /// Static top-k: profiled fraction of the trace.
        #[arg(long, default_value_t = 1.0)]
        profile_fraction: f64,
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        #[arg(long, default_value = "h200-embcache-e2e")]
        set: String,
        /// Name of the trace in the rows (default: `zipf` or the file's stem).
        #[arg(long)]
        trace_name: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `perfcast-gpu embcache …`; exit code 0, or 1 when `check` fails. The device comes from
/// [`crate::cli::device`] (event tracking off: the engine orders its two streams with explicit
/// events, and keeps every tensor the copy stream uses alive until the host has waited on it).
///
/// # Errors
/// Bad input, I/O, device errors.
pub fn run(g: &Global, args: Args) -> Result<ExitCode> {
    let dev = crate::cli::device(g.cpu)?;
    match args.cmd {
        Cmd::Check { common, batch } => {
            let tr = load_trace(&common, batch)?;
            let ok = super::check::check(&dev, &common, &tr, 1e-6)?;
            Ok(ExitCode::from(if ok { 0 } else { 1 }))
        }
        Cmd::Micro {
            common,
            rows,
            table_rows,
            batches,
            overlap_batches,
            warmup,
            repeats,
            iters,
            set,
            out,
        } => {
            let prov = provenance();
            let mut sink = Sink::open(&out, &set, prov)?.with_technique("embcache");
            let m = super::micro::Micro {
                rows,
                table_rows,
                batches,
                warmup,
                repeats: repeats.max(1),
                iters: iters.max(1),
                overlap_batches,
            };
            let n = super::micro::run(&dev, &common, &m, &mut |r| {
                write(&mut sink, &set, r).map_err(Into::into)
            })?;
            println!("embcache micro: {n} rows -> {}", sink.path().display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::E2e {
            common,
            batches,
            caches,
            policies,
            windows,
            profile_fraction,
            warmup,
            repeats,
            set,
            trace_name,
            out,
        } => {
            let prov = provenance();
            let mut sink = Sink::open(&out, &set, prov)?.with_technique("embcache");
            let name = trace_name.unwrap_or_else(|| trace_label(&common));
            let g = E2eGrid {
                batches,
                caches,
                policies,
                windows,
                profile_fraction,
                warmup,
                repeats: repeats.max(1),
                name,
            };
            let n = e2e(&dev, &common, &g, &mut |r| {
                write(&mut sink, &set, r).map_err(Into::into)
            })?;
            println!("embcache e2e: {n} rows -> {}", sink.path().display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The e2e grid.
#[derive(Clone, Debug)]
pub struct E2eGrid {
    /// Batch sizes, samples.
    pub batches: Vec<usize>,
    /// Cache sizes (`N` rows or `P%`).
    pub caches: Vec<String>,
    /// Policy names.
    pub policies: Vec<String>,
    /// Lookahead windows.
    pub windows: Vec<usize>,
    /// Static top-k profile fraction.
    pub profile_fraction: f64,
    /// Untimed passes per point.
    pub warmup: usize,
    /// Timed passes per point.
    pub repeats: usize,
    /// Trace label in the rows.
    pub name: String,
}

fn trace_label(c: &Common) -> String {
    if c.trace == "zipf" {
        "zipf".into()
    } else {
        std::path::Path::new(&c.trace)
            .file_stem()
            .map_or_else(|| c.trace.clone(), |s| s.to_string_lossy().into_owned())
    }
}

/// A trace regrouped into samples of one lookup per table, batches of `batch` samples.
pub struct Trace {
    /// The dense trace.
    pub dense: DenseTrace,
    /// Lookups per sample (tables).
    pub tables: usize,
    /// Samples per batch.
    pub batch: usize,
    /// Parameters describing the trace (for the rows).
    pub params: Vec<(&'static str, String)>,
}

/// Loads or generates the trace for `batch` samples per batch.
///
/// # Errors
/// Bad options, unreadable files, a file whose accesses are not sample-major over its tables.
pub fn load_trace(c: &Common, batch: usize) -> Result<Trace> {
    if batch == 0 {
        bail!("batch 0: expected >= 1 sample");
    }
    if c.n_batches == 0 {
        bail!("n-batches 0: expected >= 1");
    }
    let (acc, tables, params): (Vec<Access>, usize, Vec<(&'static str, String)>) =
        if c.trace == "zipf" {
            let rows =
                trace::profile::tables(&c.profile, c.scale).map_err(|e| anyhow::anyhow!("{e}"))?;
            let t = rows.len();
            let spec =
                trace::zipf::ZipfSpec::new(c.zipf, rows, (batch * c.n_batches * t) as u64, c.seed)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            let acc = spec
                .stream()
                .collect::<perfcast::Result<Vec<_>>>()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            (
                acc,
                t,
                vec![
                    ("trace", "zipf".into()),
                    ("profile", c.profile.clone()),
                    ("scale", c.scale.to_string()),
                    ("zipf", c.zipf.to_string()),
                    ("seed", c.seed.to_string()),
                ],
            )
        } else {
            let path = PathBuf::from(&c.trace);
            let fmt = match &c.trace_format {
                Some(f) => TraceFormat::parse(f).map_err(|e| anyhow::anyhow!("{e}"))?,
                None => TraceFormat::from_path(&path).with_context(|| {
                    format!(
                        "trace {}: unknown extension; pass --trace-format",
                        path.display()
                    )
                })?,
            };
            let acc = trace::open(&path, fmt)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .collect::<perfcast::Result<Vec<_>>>()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let t = acc.iter().map(|a| a.table as usize + 1).max().unwrap_or(1);
            (acc, t, vec![("trace", c.trace.clone())])
        };
    let per_batch = batch * tables;
    let keep = (acc.len() / per_batch).min(c.n_batches) * per_batch;
    if keep == 0 {
        bail!(
            "trace {}: {} lookups do not fill one batch of {batch} samples × {tables} tables",
            c.trace,
            acc.len()
        );
    }
    for (i, a) in acc[..keep].iter().enumerate() {
        if a.table as usize != i % tables {
            bail!(
                "trace {}: lookup {i} is in table {}, expected {} (samples must list tables 0..{tables} in order)",
                c.trace,
                a.table,
                i % tables
            );
        }
    }
    let stream = acc[..keep].iter().enumerate().map(|(i, a)| {
        Ok(Access {
            group: (i / tables) as u64,
            ..*a
        })
    });
    let dense = DenseTrace::from_stream(stream, batch as u64, false, &c.trace)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Trace {
        dense,
        tables,
        batch,
        params,
    })
}

/// The model configuration of `c` for `tables` tables.
///
/// # Errors
/// Unknown optimizer, dimension outside 1..=4096.
pub fn model_cfg(c: &Common, tables: usize) -> Result<DlrmCfg> {
    if !(1..=4096).contains(&c.dim) {
        bail!(
            "dim {}: expected 1..=4096 (64–256 is the DLRM range)",
            c.dim
        );
    }
    Ok(DlrmCfg {
        dim: c.dim,
        tables,
        bottom: c.bottom.clone(),
        top: c.top.clone(),
        emb_opt: EmbOpt::parse(&c.emb_opt)?,
        emb_lr: c.emb_lr,
        dense_lr: c.dense_lr,
        seed: c.seed,
        graphs: c.step_exec == "graphs",
    })
}

/// `N` rows or `P%` of `unique`.
///
/// # Errors
/// Unparsable sizes, 0 rows.
pub fn cache_rows(s: &str, unique: usize) -> Result<usize> {
    perfcast::embcache::CacheSize::parse(s)
        .and_then(|c| c.rows(unique))
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// [`cache_rows`], plus `wss` / `<k>wss`: `k` × the trace's two-batch working set (the
/// smallest lookahead cache), rounded up.
///
/// # Errors
/// Unparsable sizes.
pub fn cache_rows_wss(s: &str, unique: usize, wss: usize) -> Result<usize> {
    if let Some(k) = s.strip_suffix("wss") {
        let k: f64 = if k.is_empty() {
            1.0
        } else {
            k.parse().map_err(|_| {
                anyhow::anyhow!("cache '{s}': expected N, P%, wss or <k>wss such as 2wss")
            })?
        };
        if !(k > 0.0 && k <= 1e6) {
            bail!("cache '{s}': the multiple of wss must be in (0, 1e6]");
        }
        return Ok(((k * wss as f64).ceil() as usize).max(1));
    }
    cache_rows(s, unique)
}

/// One e2e point's policy: `resident` or a simulator policy.
fn kinds_for(name: &str, windows: &[usize], pf: f64) -> Result<Vec<Option<PolicyKind>>> {
    if name == "resident" {
        return Ok(vec![None]);
    }
    if name == "lookahead" || name == "bagpipe" {
        return windows
            .iter()
            .map(|&w| {
                Ok(Some(
                    PolicyKind::parse(name, w, pf).map_err(|e| anyhow::anyhow!("{e}"))?,
                ))
            })
            .collect();
    }
    Ok(vec![Some(
        PolicyKind::parse(name, 1, pf).map_err(|e| anyhow::anyhow!("{e}"))?,
    )])
}

/// Runs the e2e grid, calling `emit` for every row; returns the rows written.
///
/// # Errors
/// Bad grid values; device errors; a plan whose per-batch counts differ from the simulator's.
pub fn e2e(
    dev: &Device,
    c: &Common,
    g: &E2eGrid,
    emit: &mut dyn FnMut(&EmbRow) -> Result<()>,
) -> Result<usize> {
    let mut n = 0usize;
    for &batch in &g.batches {
        let tr = load_trace(c, batch)?;
        let cfg = model_cfg(c, tr.tables)?;
        let uniq = tr.dense.n_rows();
        // Plans first (host), so the engine is sized for the largest cache and transfer.
        let wss = Lookahead::min_feasible_rows(&tr.dense);
        let max_u = (0..tr.dense.n_batches())
            .map(|b| {
                let mut v = tr.dense.batch(b).to_vec();
                v.sort_unstable();
                v.dedup();
                v.len()
            })
            .max()
            .unwrap_or(1);
        // Every point: (cache spelling, policy, rows). Plans are built one point at a time.
        let mut points: Vec<(String, Option<PolicyKind>, usize)> = Vec::new();
        for pname in &g.policies {
            for kind in kinds_for(pname, &g.windows, g.profile_fraction)? {
                let sizes: Vec<String> = if kind.is_none() {
                    vec!["100%".into()]
                } else {
                    g.caches.clone()
                };
                for cs in sizes {
                    match cache_rows_wss(&cs, uniq, wss) {
                        Ok(rows) => points.push((cs, kind, rows)),
                        // A percentage of a small trace can round to 0 rows: skip that point.
                        Err(e) => println!("embcache e2e: batch {batch} cache {cs}: skipped ({e})"),
                    }
                }
            }
        }
        let max_slots = points.iter().map(|p| p.2.min(uniq)).max().unwrap_or(1);
        // A batch fetches at most its unique rows and writes back at most the rows it displaces
        // plus (lookahead) the rows made room for the next batch: 3 × the largest batch bounds it.
        let stage = (3 * max_u).min(uniq).max(1);
        let mut eng = Engine::new(dev, uniq, cfg.dim, cfg.width(), max_slots, stage, c.seed)?;
        println!(
            "embcache e2e: batch {batch}: {} lookups, {} batches, {uniq} unique rows ({max_u} per batch at most, two-batch working set {wss}), {} tables, {} points",
            tr.dense.len(),
            tr.dense.n_batches(),
            tr.tables,
            points.len()
        );
        // Plans (host, untimed) and their checks first; then the timed passes.
        let mut planned = Vec::with_capacity(points.len());
        for (cs, kind, rows) in &points {
            let p = match kind {
                None => plan::resident(&tr.dense),
                Some(k) => match plan::plan(&tr.dense, *k, *rows) {
                    Ok(p) => p,
                    Err(e) => {
                        println!(
                            "embcache e2e: batch {batch} {} cache {cs}: skipped ({e})",
                            k.name()
                        );
                        continue;
                    }
                },
            };
            if let Some(k) = kind {
                let (_, bc) = perfcast::embcache::simulate(&tr.dense, *k, *rows)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let m: Vec<u32> = p.batches.iter().map(|b| b.fetch.len() as u32).collect();
                if m != bc.misses {
                    bail!(
                        "batch {batch} {} cache {cs}: plan misses differ from the simulator's",
                        k.name()
                    );
                }
            }
            planned.push((cs, *kind, *rows, p, Dlrm::new(cfg.clone(), dev)?));
        }
        // Interleaved passes: round r runs every point once, so a drift of the machine's speed
        // during the run (host clock, other load) reaches every point alike instead of biasing
        // the points measured while it lasts.
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); planned.len()];
        let mut last: Vec<Option<PassStats>> = vec![None; planned.len()];
        for (rep, i) in pass_order(planned.len(), g.warmup, g.repeats) {
            let (_, kind, _, p, model) = &mut planned[i];
            let resident = kind.is_none();
            let pipelined = matches!(kind, Some(PolicyKind::Lookahead { .. }));
            if resident {
                eng.preload_all()?;
            }
            let st = eng.pass(tr.dense.n_batches(), p, model, pipelined, c.seed, None)?;
            eng.flush(p, resident)?;
            if rep >= g.warmup {
                times[i].push(st.secs / st.batches as f64);
            }
            last[i] = Some(st);
        }
        for ((cs, kind, rows, p, _), (times, last)) in planned.iter().zip(times.iter().zip(last)) {
            let (cs, kind, rows, p) = (*cs, *kind, *rows, p);
            let resident = kind.is_none();
            let pipelined = matches!(kind, Some(PolicyKind::Lookahead { .. }));
            let st = last.context("no pass ran")?;
            let s = Stats::of(times);
            let mut params: Vec<(&str, String)> = tr.params.clone();
            params.extend([
                ("policy", p.policy.clone()),
                (
                    "window",
                    p.window.map(|w| w.to_string()).unwrap_or_default(),
                ),
                ("batch", batch.to_string()),
                ("tables", tr.tables.to_string()),
                ("n_batches", tr.dense.n_batches().to_string()),
                ("cache", cs.to_string()),
                ("slots", rows.to_string()),
                ("unique_rows", uniq.to_string()),
                ("dim", cfg.dim.to_string()),
                ("row_bytes", (cfg.width() * 4).to_string()),
                ("emb_opt", cfg.emb_opt.name().to_string()),
                (
                    "exec",
                    if pipelined {
                        "prefetch"
                    } else if resident {
                        "resident"
                    } else {
                        "on-demand"
                    }
                    .to_string(),
                ),
            ]);
            if let Some(PolicyKind::StaticTopK { profile_fraction }) = kind {
                params.push(("profile_fraction", profile_fraction.to_string()));
            }
            params.extend(c.exec_param(dev));
            let base = EmbRow::new("e2e", &g.name, &params);
            let nb = st.batches as f64;
            let uq = p.unique() as f64;
            let misses = p.misses() as f64;
            let acc = tr.dense.len() as f64;
            let access_hits: f64 = p.batches.iter().map(|b| f64::from(b.access_hits)).sum();
            let wb: f64 = st.writebacks.iter().map(|&x| f64::from(x)).sum();
            let ev: f64 = p.batches.iter().map(|b| f64::from(b.evictions)).sum();
            let mut rows_out = vec![
                base.timed("iter_s", &s, "s"),
                base.value("batch_hit_rate", 1.0 - misses / uq, 1, "fraction"),
                base.value("access_hit_rate", access_hits / acc, 1, "fraction"),
                base.value("unique_rows_per_batch", uq / nb, 1, "rows"),
                base.value("miss_rows_per_batch", misses / nb, 1, "rows"),
                base.value("max_miss_rows_per_batch", p.max_fetch() as f64, 1, "rows"),
                base.value("writeback_rows_per_batch", wb / nb, 1, "rows"),
                base.value("evictions_per_batch", ev / nb, 1, "rows"),
                base.value("plan_s_per_batch", p.plan_s / nb, 1, "s"),
                base.value("samples_per_s", batch as f64 / s.median, s.n, "samples/s"),
                base.value(
                    "miss_bytes_per_s",
                    misses / nb * (cfg.width() * 4) as f64 / s.median,
                    s.n,
                    "B/s",
                ),
            ];
            if !resident {
                // Checked above: the plan's per-batch misses equal the simulator's.
                rows_out.push(base.value("hits_equal_sim", 1.0, 1, "bool"));
            }
            for r in &rows_out {
                emit(r)?;
                n += 1;
            }
            println!(
                "embcache e2e: batch {batch} {:<11} w={:<3} cache {:>6} ({rows:>8} rows) iter {:.3} ms (spread {:.3}) hit {:.4} miss/batch {:.0} loss {:.4}",
                p.policy,
                p.window.map(|w| w.to_string()).unwrap_or_default(),
                cs,
                s.median * 1e3,
                s.spread(),
                1.0 - misses / uq,
                misses / nb,
                st.last_loss
            );
        }
    }
    Ok(n)
}

/// The order of an e2e batch size's passes: `(round, point)`, round by round (`warmup` untimed
/// rounds, then `repeats` timed ones), every point once per round.
pub fn pass_order(points: usize, warmup: usize, repeats: usize) -> Vec<(usize, usize)> {
    (0..warmup + repeats)
        .flat_map(|r| (0..points).map(move |i| (r, i)))
        .collect()
}

/// Times `f` (device synchronized before and after every repeat of `iters` calls): per-call
/// seconds of each repeat.
///
/// # Errors
/// Whatever `f` returns.
pub fn time_calls(
    dev: &Device,
    warmup: usize,
    repeats: usize,
    iters: usize,
    f: &mut dyn FnMut() -> Result<()>,
) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        f()?;
    }
    dev.synchronize()?;
    let mut v = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t0 = std::time::Instant::now();
        for _ in 0..iters {
            f()?;
        }
        dev.synchronize()?;
        v.push(t0.elapsed().as_secs_f64() / iters as f64);
    }
    Ok(v)
}

/// A `[n]` u32 tensor of seeded distinct-ish indices below `bound`.
///
/// # Errors
/// Allocation.
pub fn random_idx(n: usize, bound: usize, seed: u64, dev: &Device) -> Result<(Vec<u32>, Tensor)> {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    // A random permutation prefix when n ≤ bound (distinct rows, as a batch's unique rows are).
    let v: Vec<u32> = if n <= bound {
        let mut all: Vec<u32> = (0..bound as u32).collect();
        for i in 0..n {
            let j = rng.random_range(i..bound);
            all.swap(i, j);
        }
        all.truncate(n);
        all
    } else {
        (0..n).map(|_| rng.random_range(0..bound as u32)).collect()
    };
    let t = Tensor::from_slice(&v, n, dev)?;
    Ok((v, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Common {
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
            n_batches: 6,
            seed: 5,
            step_exec: "eager".into(),
        }
    }

    #[test]
    fn e2e_passes_run_round_by_round() {
        // Three points, one warm-up round and two timed rounds: no point runs twice before
        // every other point has run once.
        let o = pass_order(3, 1, 2);
        assert_eq!(o.len(), 9);
        assert_eq!(&o[..4], &[(0, 0), (0, 1), (0, 2), (1, 0)]);
        for r in 0..3 {
            let mut pts: Vec<usize> = o.iter().filter(|x| x.0 == r).map(|x| x.1).collect();
            pts.sort_unstable();
            assert_eq!(pts, vec![0, 1, 2]);
        }
        assert!(o.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(pass_order(0, 1, 3).is_empty());
    }

    #[test]
    fn e2e_grid_writes_every_point_with_simulator_hit_rates() {
        let c = tiny();
        let g = E2eGrid {
            batches: vec![8],
            caches: vec!["5%".into(), "wss".into()],
            policies: vec![
                "resident".into(),
                "lru".into(),
                "belady".into(),
                "lookahead".into(),
            ],
            windows: vec![1, 2],
            profile_fraction: 1.0,
            warmup: 0,
            repeats: 2,
            name: "t".into(),
        };
        let mut rows = Vec::new();
        let n = e2e(&Device::Cpu, &c, &g, &mut |r| {
            rows.push(r.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(n, rows.len());
        let get = |pol: &str, cache: &str, w: &str, metric: &str| -> f64 {
            rows.iter()
                .find(|r| {
                    r.params.contains(&("policy".into(), pol.into()))
                        && r.params.contains(&("cache".into(), cache.into()))
                        && r.params.contains(&("window".into(), w.into()))
                        && r.metric == metric
                })
                .unwrap_or_else(|| panic!("{pol} {cache} {w} {metric}"))
                .value
        };
        let tr = load_trace(&c, 8).unwrap();
        let wss = Lookahead::min_feasible_rows(&tr.dense);
        for (pol, kind) in [("lru", PolicyKind::Lru), ("belady", PolicyKind::Belady)] {
            let (m, _) = perfcast::embcache::simulate(&tr.dense, kind, wss).unwrap();
            let want = m.batch_unique_hit_rate.unwrap();
            assert!(
                (get(pol, "wss", "", "batch_hit_rate") - want).abs() < 1e-12,
                "{pol}"
            );
        }
        // Lookahead only at the working-set cache (5% is below it) and with both windows.
        assert!(get("lookahead", "wss", "2", "iter_s") > 0.0);
        assert!(get("lookahead", "wss", "1", "batch_hit_rate") > 0.0);
        assert!(!rows.iter().any(
            |r| r.params.contains(&("policy".into(), "lookahead".into()))
                && r.params.contains(&("cache".into(), "5%".into()))
        ));
        assert_eq!(get("resident", "100%", "", "batch_hit_rate"), 1.0);
        // 1 resident + lru×2 + belady×2 + lookahead×2 points.
        assert_eq!(rows.iter().filter(|r| r.metric == "iter_s").count(), 7);
    }

    #[test]
    fn micro_grid_emits_every_op() {
        let c = tiny();
        let m = super::super::micro::Micro {
            rows: vec![4, 64, 1024],
            table_rows: 2048,
            batches: vec![4],
            warmup: 0,
            repeats: 2,
            iters: 1,
            overlap_batches: vec![4],
        };
        let mut rows = Vec::new();
        run_micro(&c, &m, &mut rows);
        for op in [
            "d2d_copy",
            "d2d_memcpy",
            "gather",
            "scatter",
            "h2d_pinned",
            "d2h_pinned",
            "h2d_pageable",
            "zero_copy_gather",
            "host_gather",
            "host_scatter",
            "fetch_path",
            "writeback_path",
        ] {
            let n = rows
                .iter()
                .filter(|r| r.metric == format!("{op}_s"))
                .count();
            assert!(n >= 1, "{op}");
            assert!(
                rows.iter()
                    .any(|r| r.metric == format!("{op}_bytes_per_s") && r.value > 0.0),
                "{op}"
            );
        }
        assert!(rows
            .iter()
            .any(|r| r.metric == "compute_s" && r.value > 0.0 && r.repeats == 2));
        for m in [
            "gather_fraction_of_d2d_copy",
            "fetch_path_fraction_of_h2d_pinned",
        ] {
            assert_eq!(
                rows.iter()
                    .filter(|r| r.metric == m && r.value > 0.0)
                    .count(),
                3,
                "{m}"
            );
        }
        // Overlap only at row counts >= 1024: one point here.
        let phi: Vec<f64> = rows
            .iter()
            .filter(|r| r.metric == "overlap_fraction")
            .map(|r| r.value)
            .collect();
        assert_eq!(phi.len(), 1);
        assert!((0.0..=1.0).contains(&phi[0]));
        assert!(rows
            .iter()
            .any(|r| r.metric == "overlap_both_s" && r.value > 0.0));
        assert!(
            cache_rows_wss("2wss", 100, 7).unwrap() == 14 && cache_rows_wss("xwss", 1, 1).is_err()
        );
    }

    fn run_micro(c: &Common, m: &super::super::micro::Micro, rows: &mut Vec<EmbRow>) {
        super::super::micro::run(&Device::Cpu, c, m, &mut |r| {
            rows.push(r.clone());
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn bad_traces_are_one_clear_error() {
        let mut c = tiny();
        c.trace = "/nonexistent/x.csv".into();
        assert!(load_trace(&c, 4).is_err());
        let mut c = tiny();
        c.trace = format!(
            "{}/../traces/movielens-like-ratings.csv",
            env!("CARGO_MANIFEST_DIR")
        );
        let e = load_trace(&c, 100_000).err().unwrap().to_string();
        assert!(e.contains("do not fill one batch"), "{e}");
        let t = load_trace(&c, 50).unwrap();
        assert_eq!(t.tables, 2);
        assert_eq!(t.dense.n_batches(), 6);
    }
}
