//! `perfcast gradcomp`: one data-parallel training what-if (compression method, low-rank model).
//! clap → [`Spec`] → [`evaluate`] → print.

use super::{Globals, Outcome};
use clap::Args;
use perfcast::gradcomp::{evaluate, solve, LowRankSpec, Predictor, Spec};
use perfcast::report::{print_records, Rows};
use perfcast::{Error, Result};
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
    /// sim (discrete-event) or analytic (closed form: the longest critical path of the bucket
    /// pipeline; equal to sim without codec stages and slowdown, a lower bound with them).
    #[arg(long, default_value = "sim")]
    pub predictor: Predictor,
    /// Also search the break-even node bandwidth (Gb/s) against the baseline.
    #[arg(long)]
    pub break_even: bool,
    /// Inverse what-if. `min-workers`: the fewest workers (whole nodes of --gpus-per-node, from
    /// --workers up to --max-workers) whose samples/s over all ranks reach
    /// --target-samples-per-s, one row per --method (a comma-separated list here); exact on
    /// that grid.
    #[arg(long, value_enum)]
    pub solve: Option<GradcompSolve>,
    /// Target throughput of `--solve min-workers`, samples/s over all ranks.
    #[arg(long, value_name = "SAMPLES_PER_S")]
    pub target_samples_per_s: Option<f64>,
    /// Largest worker count `--solve min-workers` tries.
    #[arg(long, default_value_t = perfcast::gradcomp::solve::MAX_WORKERS)]
    pub max_workers: i64,
    /// Low-rank model: none, pufferfish, cuttlefish (without --ranks/--ranks-csv: the model's
    /// estimated default Cuttlefish profile; the output's lowrank_ranks says which).
    #[arg(long, default_value = "none")]
    pub lowrank: String,
    /// Pufferfish rank ratio, in (0, 1].
    #[arg(long)]
    pub rank_ratio: Option<f64>,
    /// Layers kept full rank (Pufferfish; Cuttlefish's default profile), comma separated.
    #[arg(long, value_delimiter = ',')]
    pub full_rank_layers: Option<Vec<String>>,
    /// Cuttlefish ranks, `layer=rank` comma separated.
    #[arg(long, value_delimiter = ',')]
    pub ranks: Vec<String>,
    /// Cuttlefish rank profile CSV (`layer,rank` or `layer,stable_rank[,init_stable_rank]`;
    /// stable ranks are scaled by min(m,n)/srank at init, as Cuttlefish does).
    #[arg(long, value_name = "CSV")]
    pub ranks_csv: Option<PathBuf>,
    /// Cuttlefish stable-rank scale: rank = ⌈scale · stable_rank⌉ instead of Cuttlefish's scaling.
    #[arg(long)]
    pub rank_scale: Option<f64>,
    /// Full-rank warm-up epochs (low-rank run time).
    #[arg(long, default_value_t = 0.0)]
    pub warmup_epochs: f64,
    /// Total epochs (low-rank run time), in (0, 1e6]; with --dataset-samples.
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Samples per epoch (low-rank run time), in (0, 1e15]; with --epochs.
    #[arg(long)]
    pub dataset_samples: Option<f64>,
    /// How the codecs run: eager (op by op, as a DDP hook issues them; their cost on one H200
    /// host depends on the host's issue rate) or graph (captured as CUDA graphs and replayed;
    /// needs the GPU's graph-replayed codec calibration).
    #[arg(long, default_value = "eager")]
    pub codec_exec: String,
}

/// What `gradcomp --solve` solves for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GradcompSolve {
    /// The fewest workers reaching --target-samples-per-s.
    MinWorkers,
}

impl GradcompArgs {
    /// The library spec these flags describe (one flag, one key).
    pub fn spec(self) -> Spec {
        Spec {
            model: self.model,
            gpu: self.gpu,
            workers: self.workers,
            gpus_per_node: self.gpus_per_node,
            inter_node_gbps: self.inter_node_gbps,
            intra_node_gbps: self.intra_node_gbps,
            latency_us: self.latency_us,
            method: self.method,
            baseline: self.baseline,
            batch: self.batch,
            algo: self.algo,
            bucket_mb: self.bucket_mb,
            first_bucket_mb: self.first_bucket_mb,
            slowdown: self.slowdown,
            precision: self.precision,
            optimizer: self.optimizer,
            profile: self.profile,
            busbw_csv: self.busbw_csv,
            break_even: self.break_even,
            lowrank: LowRankSpec::Kind(self.lowrank),
            rank_ratio: self.rank_ratio,
            full_rank_layers: self.full_rank_layers,
            ranks: self.ranks,
            ranks_csv: self.ranks_csv,
            rank_scale: self.rank_scale,
            warmup_epochs: self.warmup_epochs,
            epochs: self.epochs,
            dataset_samples: self.dataset_samples,
            codec_exec: self.codec_exec,
        }
    }
}

/// Runs `gradcomp`.
///
/// # Errors
/// Any validation error of the configuration (one line naming the field and the allowed range).
pub fn exec(a: GradcompArgs, g: &Globals) -> Result<Outcome> {
    let predictor = a.predictor;
    if a.solve == Some(GradcompSolve::MinWorkers) {
        let target = a.target_samples_per_s.ok_or_else(|| {
            Error::range(
                "--target-samples-per-s",
                "missing",
                "given with --solve min-workers (samples/s over all ranks, > 0)",
            )
        })?;
        let max_workers = a.max_workers;
        let base = a.spec();
        let records = base
            .method
            .split(',')
            .map(|m| {
                let s = Spec {
                    method: m.trim().to_string(),
                    ..base.clone()
                };
                solve::min_workers(&s, &g.catalog, predictor, target, max_workers)
                    .map(|r| r.record())
            })
            .collect::<Result<Vec<_>>>()?;
        let many = records.len() > 1;
        let mut rows = Rows { records };
        perfcast::gradcomp::calib::cite::annotate_gradcomp(&mut rows, &g.catalog);
        return Ok(Outcome::ok(print_records(&rows, g.format, many)));
    }
    if a.target_samples_per_s.is_some() {
        return Err(Error::range(
            "--target-samples-per-s",
            "given",
            "only with --solve min-workers",
        ));
    }
    let params = a.spec().resolve(&g.catalog)?;
    let row = evaluate(&params, predictor, 0)?;
    let mut rows = Rows {
        records: vec![row.record()],
    };
    perfcast::gradcomp::calib::cite::annotate_gradcomp(&mut rows, &g.catalog);
    Ok(Outcome::ok(print_records(&rows, g.format, false)))
}
