//! `perfcast freeze`: one layer-freezing fine-tuning what-if (clap → `Spec` → `evaluate` → print).

use super::{Globals, Outcome};
use clap::Args;
use perfcast::freeze::{evaluate, solve, timeline_plot, CostSource, Dtype, Policy, Spec, Tier};
use perfcast::report::{print_records, write_atomic, Rows};
use perfcast::{Error, Result};
use std::path::PathBuf;

/// Arguments of `freeze`.
#[derive(Debug, Args)]
pub struct FreezeArgs {
    /// Model: `uniform:layers=L`, `file:PATH` (measured per-layer profile, TOML), or a catalog
    /// architecture (bert-base, bert-large, roberta-base, gpt2-small, vit-b-16, resnet-50).
    #[arg(long)]
    pub model: String,
    /// GPU (catalog name): its freeze calibration or roofline profile, and cache-tier bandwidths.
    #[arg(long, default_value = "h200")]
    pub gpu: String,
    /// Epochs.
    #[arg(long, default_value_t = 3)]
    pub epochs: u32,
    /// Training samples per epoch.
    #[arg(long, default_value_t = 10_000)]
    pub samples: u64,
    /// Samples per iteration.
    #[arg(long, default_value_t = 32)]
    pub batch: u32,
    /// Tokens per sample of a catalog transformer (default: the catalog's sequence length).
    #[arg(long)]
    pub seq: Option<u32>,
    /// Training precision of a catalog model: bf16 (mixed precision, default) or f32.
    #[arg(long)]
    pub dtype: Option<Dtype>,
    /// Per-layer costs of a catalog model: auto (the GPU's freeze calibration where it applies,
    /// else the roofline), roofline, or calibrated (an error where none applies). The output's
    /// `costs` column says which was used.
    #[arg(long, default_value = "auto")]
    pub costs: CostSource,
    /// none | fixed:k=K[,from=STEP] | autofreeze[:interval=I,percentile=P] |
    /// freezeout[:schedule=linear|squared|cubic,t0=T].
    #[arg(long, default_value = "none")]
    pub policy: Policy,
    /// Where the frozen prefix's output is cached: none, gpu, ram, disk.
    #[arg(long, default_value = "none")]
    pub cache: Tier,
    /// Wait one epoch after a freeze before writing the cache (AutoFreeze's lag).
    #[arg(long)]
    pub cache_lag: bool,
    /// Cache read bandwidth override, bytes/s, in (0, 1.25e14] (with --cache gpu, ram or disk).
    #[arg(long)]
    pub cache_read_bw: Option<f64>,
    /// Cache write bandwidth override, bytes/s, in (0, 1.25e14] (with --cache gpu, ram or disk).
    #[arg(long)]
    pub cache_write_bw: Option<f64>,
    /// Cache capacity override, bytes, in (0, 1e18] (with --cache gpu, ram or disk).
    #[arg(long)]
    pub cache_capacity: Option<f64>,
    /// Per-layer gradient-norm trace (CSV step,layer,grad_norm) for autofreeze.
    #[arg(long, value_name = "FILE")]
    pub grad_norms: Option<PathBuf>,
    /// Synthetic gradient-norm generator overrides, key=value,... (g0, floor, tau_min, tau_max,
    /// noise, every, seed); used by autofreeze when no --grad-norms is given.
    #[arg(long)]
    pub synthetic: Option<String>,
    /// Seed of the synthetic gradient norms.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Also write the gradient norms used (CSV) to this file.
    #[arg(long, value_name = "FILE")]
    pub emit_grad_norms: Option<PathBuf>,
    /// Write the freeze-timeline plot (PNG + SVG) into this directory.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Inverse what-if over every plan (policy none, fixed:k=1..L-1, freezeout, autofreeze with
    /// --grad-norms; × cache none/gpu/ram/disk; --policy and --cache are replaced; plans whose
    /// cache does not fit are never chosen; exact). `deadline`: the plan meeting --deadline-s
    /// that freezes the fewest layers, then the fastest. `min-gpu-hours`: the fastest plan (one GPU).
    #[arg(long, value_enum)]
    pub solve: Option<FreezeSolve>,
    /// Deadline of `--solve deadline`: total fine-tuning time, seconds.
    #[arg(long, value_name = "SECONDS")]
    pub deadline_s: Option<f64>,
}

/// What `freeze --solve` solves for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FreezeSolve {
    /// The plan meeting --deadline-s with the fewest frozen layers.
    Deadline,
    /// The plan with the fewest GPU-hours.
    MinGpuHours,
}

/// Runs `freeze`: clap → [`Spec`] → [`evaluate`] → print (and the optional plot and norms).
///
/// # Errors
/// Any validation error of the flags; unreadable or malformed files.
pub fn exec(a: FreezeArgs, g: &Globals) -> Result<Outcome> {
    let spec = Spec {
        gpu: a.gpu,
        epochs: a.epochs,
        samples: a.samples,
        batch: a.batch,
        seq: a.seq,
        dtype: a.dtype,
        costs: a.costs,
        policy: a.policy,
        cache: a.cache,
        cache_lag: a.cache_lag,
        cache_read_bw: a.cache_read_bw,
        cache_write_bw: a.cache_write_bw,
        cache_capacity: a.cache_capacity,
        grad_norms: a.grad_norms,
        synthetic: a.synthetic,
        seed: Some(a.seed),
        ..Spec::new(a.model)
    };
    if let Some(what) = a.solve {
        let objective = match what {
            FreezeSolve::Deadline => {
                solve::Objective::DeadlineS(a.deadline_s.ok_or_else(|| {
                    Error::range(
                        "--deadline-s",
                        "missing",
                        "given with --solve deadline (seconds, > 0)",
                    )
                })?)
            }
            FreezeSolve::MinGpuHours => solve::Objective::MinGpuHours,
        };
        let s = solve::solve(&spec, &g.catalog, objective)?;
        let mut rows = Rows::from_serialize(std::slice::from_ref(&s.metrics));
        rows.records[0].extend(s.extra());
        return Ok(Outcome::ok(print_records(&rows, g.format, false)));
    }
    if a.deadline_s.is_some() {
        return Err(Error::range(
            "--deadline-s",
            "given",
            "only with --solve deadline",
        ));
    }
    let params = spec.resolve(&g.catalog)?;
    if a.emit_grad_norms.is_some() && params.grads.is_none() {
        return Err(Error::range(
            "--emit-grad-norms",
            "given",
            "only with a policy that uses gradient norms (autofreeze)",
        ));
    }
    let m = evaluate(&params)?;
    if let (Some(path), Some(gn)) = (&a.emit_grad_norms, &params.grads) {
        let mut text = format!("# {}\n", gn.source);
        text.push_str(&gn.to_csv());
        write_atomic(path, text.as_bytes())?;
    }
    if let Some(dir) = &a.plot {
        perfcast::report::ensure_dir(dir)?;
        let title = format!(
            "{} on {}: {} (cache {})",
            m.model,
            m.gpu,
            m.policy,
            m.cache.name()
        );
        timeline_plot("freeze-timeline", &title, &[(m.policy.clone(), &m)]).write(dir)?;
    }
    let rows = Rows::from_serialize(std::slice::from_ref(&m));
    Ok(Outcome::ok(print_records(&rows, g.format, false)))
}
