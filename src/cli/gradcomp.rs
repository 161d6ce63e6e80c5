//! `perfcast gradcomp`: one data-parallel training what-if (compression method, low-rank model).

use super::{Globals, Outcome};
use clap::Args;
use perfcast::gradcomp::lowrank::{two_phase, LowRank};
use perfcast::gradcomp::{Config, DdpSim, Plan, Predictor};
use perfcast::report::{print_records, Rows};
use perfcast::{Error, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `gradcomp`.
#[derive(Debug, Args)]
pub struct GradcompArgs {
    /// DNN model (resnet-50, resnet-101, vgg-16, bert-base, bert-large, gpt2, gpt2-medium, roberta-base, vit-b16).
    #[arg(long)]
    pub model: String,
    /// GPU (catalog name).
    #[arg(long, default_value = "h100")]
    pub gpu: String,
    /// Data-parallel ranks P.
    #[arg(long, default_value_t = 16)]
    pub workers: i64,
    /// GPUs per node K (divides --workers).
    #[arg(long, default_value_t = 8)]
    pub gpus_per_node: i64,
    /// Node network bandwidth, Gb/s, one direction.
    #[arg(long)]
    pub inter_node_gbps: f64,
    /// Per-GPU intra-node bandwidth, Gb/s (default: half the GPU's NVLink bandwidth).
    #[arg(long)]
    pub intra_node_gbps: Option<f64>,
    /// Per-step collective latency α, µs.
    #[arg(long, default_value_t = 10.0)]
    pub latency_us: f64,
    /// none | fp16 | bf16 | powersgd:rank=R | topk:density=D | randomk:density=D | signsgd | qsgd:bits=B
    #[arg(long, default_value = "none")]
    pub method: String,
    /// Baseline of speedup_vs_baseline: fp32, fp16 or bf16.
    #[arg(long, default_value = "fp16")]
    pub baseline: String,
    /// Per-GPU batch (samples).
    #[arg(long, default_value_t = 32)]
    pub batch: i64,
    /// All-reduce algorithm: ring, tree, hierarchical (default: intra-node ring, inter-node ring
    /// over one rank per node, as NCCL does on multi-GPU nodes; a flat ring over every rank pays
    /// 2(P−1) latency steps per collective).
    #[arg(long, default_value = "hierarchical")]
    pub algo: String,
    /// DDP bucket cap, MiB.
    #[arg(long, default_value_t = 25.0)]
    pub bucket_mb: f64,
    /// First DDP bucket cap, MiB.
    #[arg(long, default_value_t = 1.0)]
    pub first_bucket_mb: f64,
    /// Compute slowdown while a collective runs (0.1 = 10% slower).
    #[arg(long, default_value_t = 0.0)]
    pub slowdown: f64,
    /// Activation precision: fp32, tf32, fp16, bf16.
    #[arg(long, default_value = "bf16")]
    pub precision: String,
    /// Optimizer: sgd, momentum, adam.
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Measured per-layer profile CSV (replaces the roofline; its batch replaces --batch).
    #[arg(long, value_name = "CSV")]
    pub profile: Option<PathBuf>,
    /// Measured bus-bandwidth curve CSV (`bytes,busbw_bytes_per_s`).
    #[arg(long, value_name = "CSV")]
    pub busbw_csv: Option<PathBuf>,
    /// sim (discrete-event) or analytic (closed form after Agarwal et al. 2022).
    #[arg(long, default_value = "sim")]
    pub predictor: String,
    /// Also search the break-even node bandwidth (Gb/s) against the baseline.
    #[arg(long)]
    pub break_even: bool,
    /// Low-rank model: none, pufferfish, cuttlefish.
    #[arg(long, default_value = "none")]
    pub lowrank: String,
    /// Pufferfish rank ratio, in (0, 1].
    #[arg(long)]
    pub rank_ratio: Option<f64>,
    /// Layers kept full rank (Pufferfish), comma separated.
    #[arg(long, value_delimiter = ',')]
    pub full_rank_layers: Option<Vec<String>>,
    /// Cuttlefish ranks, `layer=rank` comma separated.
    #[arg(long, value_delimiter = ',')]
    pub ranks: Vec<String>,
    /// Cuttlefish rank profile CSV (`layer,rank` or `layer,stable_rank`).
    #[arg(long, value_name = "CSV")]
    pub ranks_csv: Option<PathBuf>,
    /// Cuttlefish stable-rank scale.
    #[arg(long)]
    pub rank_scale: Option<f64>,
    /// Full-rank warm-up epochs (low-rank run time).
    #[arg(long, default_value_t = 0.0)]
    pub warmup_epochs: f64,
    /// Total epochs (low-rank run time).
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Samples per epoch (low-rank run time).
    #[arg(long)]
    pub dataset_samples: Option<f64>,
}

impl GradcompArgs {
    /// The library configuration these flags describe.
    ///
    /// # Errors
    /// A malformed `--ranks` entry.
    pub fn config(&self) -> Result<Config> {
        let mut ranks = BTreeMap::new();
        for r in &self.ranks {
            let (k, v) = r
                .split_once('=')
                .ok_or_else(|| Error::range("--ranks", r, "layer=rank entries, comma separated"))?;
            let v: i64 = v
                .trim()
                .parse()
                .map_err(|_| Error::range(format!("--ranks {k}"), v, "an integer >= 1"))?;
            ranks.insert(k.trim().to_string(), v);
        }
        Ok(Config {
            model: self.model.clone(),
            gpu: self.gpu.clone(),
            workers: self.workers,
            gpus_per_node: self.gpus_per_node,
            inter_node_gbps: self.inter_node_gbps,
            intra_node_gbps: self.intra_node_gbps,
            latency_us: self.latency_us,
            method: self.method.clone(),
            baseline: self.baseline.clone(),
            batch: self.batch,
            algo: self.algo.clone(),
            bucket_mb: self.bucket_mb,
            first_bucket_mb: self.first_bucket_mb,
            slowdown: self.slowdown,
            precision: self.precision.clone(),
            optimizer: self.optimizer.clone(),
            profile: self.profile.clone(),
            busbw_csv: self.busbw_csv.clone(),
            lowrank: LowRank {
                kind: self.lowrank.clone(),
                rank_ratio: self.rank_ratio,
                full_rank_layers: self.full_rank_layers.clone(),
                ranks,
                ranks_csv: self.ranks_csv.clone(),
                rank_scale: self.rank_scale,
                warmup_epochs: self.warmup_epochs,
                epochs: self.epochs,
                dataset_samples: self.dataset_samples,
            },
        })
    }
}

/// Runs `gradcomp`.
///
/// # Errors
/// Any validation error of the configuration (one line naming the field and the allowed range).
pub fn exec(a: GradcompArgs, g: &Globals) -> Result<Outcome> {
    let predictor = Predictor::parse(&a.predictor)?;
    let cfg = a.config()?;
    let plan = Plan::new(&g.catalog, &cfg)?;
    let mut sim = DdpSim::new();
    let m = plan.evaluate(predictor, &mut sim);
    let other = match predictor {
        Predictor::Sim => Predictor::Analytic,
        Predictor::Analytic => Predictor::Sim,
    };
    let mut rows = Rows::from_serialize(&[&m]);
    let rec = &mut rows.records[0];
    let o = plan.evaluate(other, &mut sim);
    rec.insert(
        format!(
            "{}_step_s",
            if other == Predictor::Sim {
                "sim"
            } else {
                "analytic"
            }
        ),
        o.step_s.into(),
    );
    if a.break_even {
        let be = if plan.method == plan.baseline && plan.full_rank.is_none() {
            None
        } else {
            plan.break_even_gbps(predictor, 0.1, 10_000.0, &mut sim)
        };
        rec.insert("break_even_gbps".into(), be.into());
    }
    if !cfg.lowrank.is_none() {
        let mut full_cfg = cfg.clone();
        full_cfg.lowrank = LowRank::default();
        let full = Plan::new(&g.catalog, &full_cfg)?.evaluate(predictor, &mut sim);
        rec.insert("full_rank_params".into(), full.params.into());
        rec.insert("full_rank_step_s".into(), full.step_s.into());
        let global = m.workers as f64 * m.batch as f64;
        if let Some(t) = two_phase(full.step_s, m.step_s, &cfg.lowrank, global)? {
            rec.insert("epochs".into(), t.epochs.into());
            rec.insert("warmup_epochs".into(), t.warmup_epochs.into());
            rec.insert("steps_per_epoch".into(), t.steps_per_epoch.into());
            rec.insert("run_s".into(), t.run_s.into());
            rec.insert("full_rank_run_s".into(), t.full_rank_run_s.into());
            rec.insert("run_speedup".into(), t.run_speedup.into());
        }
    }
    Ok(Outcome::ok(print_records(&rows, g.format, false)))
}
