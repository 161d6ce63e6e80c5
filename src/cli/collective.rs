//! `perfcast collective`: one collective's α–β time on a cluster, in nccl-tests vocabulary.

use super::{Globals, Outcome};
use clap::Args;
use perfcast::gradcomp::collective::{time, Algo, BusBwCurve, Cluster, CollectiveTime, Op};
use perfcast::gradcomp::{calibrated_env, CodecCost, Env};
use perfcast::report::{print_records, Rows};
use perfcast::Result;
use std::path::PathBuf;

/// Arguments of `collective`.
#[derive(Debug, Args)]
pub struct CollectiveArgs {
    /// allreduce, allgather, reducescatter or broadcast.
    #[arg(long)]
    pub op: String,
    /// ring, tree (allreduce, broadcast) or hierarchical.
    #[arg(long, default_value = "ring")]
    pub algo: String,
    /// nccl-tests size: buffer bytes (all-gather: gathered output; reduce-scatter: input), in
    /// [0, 1e18].
    #[arg(long)]
    pub bytes: f64,
    /// Ranks (GPUs).
    #[arg(long)]
    pub workers: i64,
    /// GPUs per node (divides --workers).
    #[arg(long, default_value_t = 1)]
    pub gpus_per_node: i64,
    /// Node network bandwidth, Gb/s, one direction.
    #[arg(long)]
    pub inter_node_gbps: f64,
    /// Per-GPU intra-node bandwidth, Gb/s, one direction (default 3600: NVLink 4, 450 GB/s).
    #[arg(long)]
    pub intra_node_gbps: Option<f64>,
    /// Per-step latency α, µs.
    #[arg(long, default_value_t = 10.0)]
    pub latency_us: f64,
    /// Measured bus-bandwidth curve (CSV `bytes,busbw_bytes_per_s`) replacing the bandwidth term.
    #[arg(long, value_name = "CSV")]
    pub busbw_csv: Option<PathBuf>,
    /// Catalog GPU: with a gradcomp calibration (`calibration/<gpu>-gradcomp.toml`) and the
    /// measured cluster (one node of the fitted rank count, default link, ring or hierarchical, no
    /// --busbw-csv), the fitted collective model replaces the α–β formulas.
    #[arg(long)]
    pub gpu: Option<String>,
}

#[derive(serde::Serialize)]
struct Out {
    op: &'static str,
    algo: &'static str,
    bytes: f64,
    workers: u32,
    gpus_per_node: u32,
    nodes: u32,
    time_s: f64,
    algbw_bytes_per_s: f64,
    busbw_bytes_per_s: f64,
    collectives: String,
}

/// Runs `collective`.
///
/// # Errors
/// Unknown op or algorithm, out-of-range numbers, unreadable curve.
pub fn exec(a: CollectiveArgs, g: &Globals) -> Result<Outcome> {
    let op = Op::parse(&a.op)?;
    let algo = Algo::parse(&a.algo)?;
    let c = Cluster::new(
        a.workers,
        a.gpus_per_node,
        a.inter_node_gbps,
        a.intra_node_gbps.unwrap_or(3600.0),
        a.latency_us,
    )?;
    let curve = a
        .busbw_csv
        .as_deref()
        .map(BusBwCurve::from_csv)
        .transpose()?;
    // 1e18 bytes (1 EB) is far beyond any one collective; larger is a unit mistake.
    if !(0.0..=1e18).contains(&a.bytes) {
        return Err(perfcast::Error::range(
            "--bytes",
            perfcast::check::show(a.bytes),
            "a size in [0, 1e18] bytes",
        ));
    }
    let mut t = time(op, algo, a.bytes, &c, curve.as_ref())?;
    // A bare collective has no codec stage: the codec costs are never read.
    let no_codec = CodecCost {
        launch_s: 0.0,
        bw_bytes_per_s: f64::INFINITY,
        matmul_flops_per_s: f64::INFINITY,
        vector_flops_per_s: f64::INFINITY,
        cache_bytes: 0.0,
        cache_bw_bytes_per_s: 0.0,
        sync_s: 0.0,
        block_step_s: 0.0,
    };
    let mut env = Env::new(c, algo, curve, no_codec);
    if let Some(gpu) = &a.gpu {
        let name = g.catalog.gpu(gpu)?.name.clone();
        env = calibrated_env(&g.catalog, &name, env, a.intra_node_gbps.is_none())?;
        if env
            .calibrated
            .as_ref()
            .is_some_and(|k| k.model(op).is_some())
            && c.workers > 1
        {
            let time_s = env.coll(op, a.bytes);
            let algbw = if time_s > 0.0 { a.bytes / time_s } else { 0.0 };
            t = CollectiveTime {
                time_s,
                algbw_bytes_per_s: algbw,
                busbw_bytes_per_s: algbw * op.bus_factor(c.workers),
            };
        }
    }
    let out = Out {
        op: op.as_str(),
        algo: algo.as_str(),
        bytes: a.bytes,
        workers: c.workers,
        gpus_per_node: c.gpus_per_node,
        nodes: c.nodes(),
        time_s: t.time_s,
        algbw_bytes_per_s: t.algbw_bytes_per_s,
        busbw_bytes_per_s: t.busbw_bytes_per_s,
        collectives: env.collectives_source(),
    };
    Ok(Outcome::ok(print_records(
        &Rows::from_serialize(&[out]),
        g.format,
        false,
    )))
}
