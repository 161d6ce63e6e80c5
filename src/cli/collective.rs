//! `perfcast collective`: one collective's α–β time on a cluster, in nccl-tests vocabulary.

use super::{Globals, Outcome};
use clap::Args;
use perfcast::gradcomp::collective::{time, Algo, BusBwCurve, Cluster, Op};
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
    /// nccl-tests size: buffer bytes (all-gather: gathered output; reduce-scatter: input).
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
    #[arg(long, default_value_t = 3600.0)]
    pub intra_node_gbps: f64,
    /// Per-step latency α, µs.
    #[arg(long, default_value_t = 10.0)]
    pub latency_us: f64,
    /// Measured bus-bandwidth curve (CSV `bytes,busbw_bytes_per_s`) replacing the bandwidth term.
    #[arg(long, value_name = "CSV")]
    pub busbw_csv: Option<PathBuf>,
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
        a.intra_node_gbps,
        a.latency_us,
    )?;
    let curve = a
        .busbw_csv
        .as_deref()
        .map(BusBwCurve::from_csv)
        .transpose()?;
    let t = time(op, algo, a.bytes, &c, curve.as_ref())?;
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
    };
    Ok(Outcome::ok(print_records(
        &Rows::from_serialize(&[out]),
        g.format,
        false,
    )))
}
