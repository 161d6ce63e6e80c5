//! Collective communication costs by the α–β model, in nccl-tests vocabulary.
//!
//! Shared layer: gradcomp prices gradient buckets with it, embcache the dense-parameter
//! all-reduce of its pipeline model, `perfcast collective` one call (one model, not copies).
//!
//! `P` ranks on `N = P / K` nodes of `K` GPUs. `α` is the per-step latency, `β_inter` the node's
//! network bandwidth (one direction; a ring crossing the node boundary uses all of it, as NCCL runs
//! one ring per NIC), `β_intra` the per-GPU intra-node bandwidth (NVLink, one direction). A flat
//! algorithm runs at the bottleneck bandwidth `β = min(β_inter, β_intra)` when it crosses nodes.
//! `S` is the nccl-tests `size`: the buffer of an all-reduce or broadcast, the gathered output of an
//! all-gather, the input of a reduce-scatter.
//!
//! | op | ring | tree (double binary tree) | hierarchical (intra ring · inter ring · intra ring) |
//! | --- | --- | --- | --- |
//! | all-reduce | `2(P−1)α + 2(P−1)/P·S/β` | `2⌈log₂P⌉α + 2S/β` | `RS_K + AR_N + AG_K` |
//! | all-gather | `(P−1)α + (P−1)/P·S/β` | — (ring only, as in NCCL) | `AG_N + AG_K` |
//! | reduce-scatter | as all-gather | — | `RS_K + RS_N` |
//! | broadcast | `(P−1)α + S/β` (pipelined chain) | `⌈log₂P⌉α + S/β` | `BC_N + BC_K` |
//!
//! where the `_K` phases run the ring formula on `K` ranks at `β_intra` and the `_N` phases on `N`
//! nodes at `β_inter` with the whole `S` crossing the node's NIC (its `K` GPUs each carry `S/K`).
//! References: Thakur, Rabenseifner & Gropp 2005, "Optimization of Collective Communication
//! Operations in MPICH"; Sanders, Speck & Träff 2009, "Two-tree algorithms for full bandwidth
//! broadcast, reduction and scan" (NCCL's double binary tree); nccl-tests `doc/PERFORMANCE.md` for
//! `algbw = S / t` and `busbw = algbw · f` with `f = 2(n−1)/n` (all-reduce), `(n−1)/n` (all-gather,
//! reduce-scatter), `1` (broadcast).
//!
//! A measured bus-bandwidth curve ([`BusBwCurve`], e.g. from nccl-tests) replaces the bandwidth
//! term: `t = latency term + S·f / busbw(S)`, with `busbw` interpolated log–log in `S`.
//!
//! Worked example: ring all-reduce of 1 GB on 16 ranks, one per node, 100 Gb/s, 10 µs:
//! `2·15·10 µs + 2·15/16 · 1 GB / 12.5 GB/s = 0.0003 + 0.15 = 0.1503 s`.

use crate::check;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A collective operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Sum across ranks, result on every rank.
    AllReduce,
    /// Concatenate every rank's shard on every rank.
    AllGather,
    /// Sum across ranks, each rank keeps one shard.
    ReduceScatter,
    /// Copy one rank's buffer to all.
    Broadcast,
}

impl Op {
    /// Parses `allreduce|allgather|reducescatter|broadcast`.
    ///
    /// # Errors
    /// [`Error::UnknownName`].
    pub fn parse(s: &str) -> Result<Self> {
        const N: [&str; 4] = ["allreduce", "allgather", "reducescatter", "broadcast"];
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "allreduce" => Ok(Op::AllReduce),
            "allgather" => Ok(Op::AllGather),
            "reducescatter" => Ok(Op::ReduceScatter),
            "broadcast" => Ok(Op::Broadcast),
            _ => Err(Error::unknown("collective op", s, N)),
        }
    }

    /// nccl-tests bus-bandwidth factor `f` on `n` ranks (`busbw = algbw · f`).
    pub fn bus_factor(self, n: u32) -> f64 {
        let n = n as f64;
        match self {
            Op::AllReduce => 2.0 * (n - 1.0) / n,
            Op::AllGather | Op::ReduceScatter => (n - 1.0) / n,
            Op::Broadcast => 1.0,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::AllReduce => "allreduce",
            Op::AllGather => "allgather",
            Op::ReduceScatter => "reducescatter",
            Op::Broadcast => "broadcast",
        }
    }
}

/// A collective algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    /// Ring over all ranks.
    #[default]
    Ring,
    /// NCCL double binary tree (all-reduce and broadcast only).
    Tree,
    /// Two-level: rings inside nodes and across nodes.
    Hierarchical,
}

impl Algo {
    /// Parses `ring|tree|hierarchical`.
    ///
    /// # Errors
    /// [`Error::UnknownName`].
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ring" => Ok(Algo::Ring),
            "tree" => Ok(Algo::Tree),
            "hierarchical" | "hier" => Ok(Algo::Hierarchical),
            _ => Err(Error::unknown(
                "collective algorithm",
                s,
                ["ring", "tree", "hierarchical"],
            )),
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algo::Ring => "ring",
            Algo::Tree => "tree",
            Algo::Hierarchical => "hierarchical",
        }
    }
}

/// The data-parallel cluster: ranks, nodes and links.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// Ranks (GPUs), P.
    pub workers: u32,
    /// GPUs per node, K (divides P).
    pub gpus_per_node: u32,
    /// Node network bandwidth, one direction, bytes/s.
    pub inter_node_bw_bytes_per_s: f64,
    /// Per-GPU intra-node bandwidth, one direction, bytes/s.
    pub intra_node_bw_bytes_per_s: f64,
    /// Per-step latency α, seconds.
    pub latency_s: f64,
}

/// Gb/s (network units, 10⁹ bits) to bytes/s.
pub fn gbps_to_bytes_per_s(gbps: f64) -> f64 {
    gbps * 1e9 / 8.0
}

impl Cluster {
    /// Builds a validated cluster. Bandwidths in Gb/s, latency in µs, as on the command line.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming `--workers`, `--gpus-per-node`, `--inter-node-gbps`,
    /// `--intra-node-gbps` or `--latency-us`.
    pub fn new(
        workers: i64,
        gpus_per_node: i64,
        inter_gbps: f64,
        intra_gbps: f64,
        latency_us: f64,
    ) -> Result<Self> {
        check::int_in("--workers", workers, 1, 1 << 20)?;
        check::int_in("--gpus-per-node", gpus_per_node, 1, 1024)?;
        if workers % gpus_per_node != 0 {
            return Err(Error::range(
                "--workers",
                workers,
                format!("a multiple of --gpus-per-node = {gpus_per_node}"),
            ));
        }
        check::gbps("--inter-node-gbps", inter_gbps)?;
        check::gbps("--intra-node-gbps", intra_gbps)?;
        // At most 10^6 s per message (check::MAX_SECONDS): the DES counts integer nanoseconds.
        if !(latency_us.is_finite() && (0.0..=check::MAX_SECONDS * 1e6).contains(&latency_us)) {
            return Err(Error::range(
                "--latency-us",
                check::show(latency_us),
                format!("a latency in [0, {:e}] µs", check::MAX_SECONDS * 1e6),
            ));
        }
        Ok(Cluster {
            workers: workers as u32,
            gpus_per_node: gpus_per_node as u32,
            inter_node_bw_bytes_per_s: gbps_to_bytes_per_s(inter_gbps),
            intra_node_bw_bytes_per_s: gbps_to_bytes_per_s(intra_gbps),
            latency_s: latency_us * 1e-6,
        })
    }

    /// Nodes, N = P / K.
    pub fn nodes(&self) -> u32 {
        self.workers / self.gpus_per_node
    }

    /// Bottleneck bandwidth of a flat algorithm, bytes/s.
    pub fn flat_bw(&self) -> f64 {
        if self.nodes() > 1 {
            self.inter_node_bw_bytes_per_s
                .min(self.intra_node_bw_bytes_per_s)
        } else {
            self.intra_node_bw_bytes_per_s
        }
    }
}

/// A measured bus-bandwidth curve: `busbw` (bytes/s) against size (bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusBwCurve {
    /// `(bytes, busbw_bytes_per_s)`, sorted by size, sizes distinct and > 0.
    pub points: Vec<(f64, f64)>,
}

impl BusBwCurve {
    /// Builds a curve from points (sorted here).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for no points, or a size or bandwidth ≤ 0.
    pub fn new(mut points: Vec<(f64, f64)>) -> Result<Self> {
        if points.is_empty() {
            return Err(Error::range("busbw curve", "0 points", "at least 1 point"));
        }
        for &(s, b) in &points {
            check::positive("busbw curve bytes", s)?;
            check::positive("busbw curve busbw_bytes_per_s", b)?;
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points.dedup_by(|a, b| a.0 == b.0);
        Ok(BusBwCurve { points })
    }

    /// Reads a CSV with columns `bytes,busbw_bytes_per_s` (header required, `#` comments).
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Parse`] naming the line.
    pub fn from_csv(path: &Path) -> Result<Self> {
        #[derive(Deserialize)]
        struct Row {
            bytes: f64,
            busbw_bytes_per_s: f64,
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut rdr = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut pts = Vec::new();
        for r in rdr.deserialize::<Row>() {
            let r = r.map_err(|e| {
                Error::parse(
                    path,
                    e.position().map(|p| p.line()),
                    e.to_string().replace('\n', " "),
                )
            })?;
            if !(r.bytes > 0.0
                && r.busbw_bytes_per_s > 0.0
                && r.bytes.is_finite()
                && r.busbw_bytes_per_s.is_finite())
            {
                return Err(Error::parse(
                    path,
                    Some(pts.len() as u64 + 2),
                    format!(
                        "bytes = {}, busbw_bytes_per_s = {}: both must be > 0",
                        r.bytes, r.busbw_bytes_per_s
                    ),
                ));
            }
            pts.push((r.bytes, r.busbw_bytes_per_s));
        }
        Self::new(pts).map_err(|e| Error::parse(path, None, e.to_string()))
    }

    /// Bus bandwidth at `bytes`, log–log interpolation, clamped to the end points.
    pub fn at(&self, bytes: f64) -> f64 {
        let p = &self.points;
        if bytes <= p[0].0 {
            return p[0].1;
        }
        if bytes >= p[p.len() - 1].0 {
            return p[p.len() - 1].1;
        }
        let i = p.partition_point(|q| q.0 <= bytes);
        let (x0, y0) = p[i - 1];
        let (x1, y1) = p[i];
        let t = (bytes.ln() - x0.ln()) / (x1.ln() - x0.ln());
        (y0.ln() + t * (y1.ln() - y0.ln())).exp()
    }
}

/// One size regime of a fitted collective: for nccl-tests sizes `S ≥ from_bytes` (up to the next
/// regime's), `t = α + S·f / busbw` with `f` the nccl-tests bus factor ([`Op::bus_factor`]): the
/// α–β form of Thakur, Rabenseifner & Gropp 2005 written in nccl-tests `doc/PERFORMANCE.md` terms,
/// so `busbw` is the bus bandwidth the regime approaches at large sizes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regime {
    /// Smallest nccl-tests size of the regime, bytes.
    pub from_bytes: f64,
    /// Fixed cost per call, seconds.
    pub alpha_s: f64,
    /// Asymptotic bus bandwidth, bytes/s (`f64::INFINITY` when the fit gives the size term no
    /// weight: a latency-only regime).
    pub busbw_bytes_per_s: f64,
}

/// A collective time model fitted to measurements of one (op, ranks, transport): one to three
/// size [`Regime`]s (NCCL switches protocol — LL, LL128, Simple — and channel count with the
/// message size, so one α–β line rarely covers 8 B – 1 GiB; the regimes are fitted breakpoints
/// motivated by that switching, not identified protocols). One regime is the plain α–β model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegimeModel {
    /// The regimes, sorted by `from_bytes`; the first applies below its `from_bytes` too.
    pub regimes: Vec<Regime>,
}

impl RegimeModel {
    /// Time of `op` on `ranks` ranks moving `bytes` (nccl-tests size), seconds: the regime whose
    /// `from_bytes` is the largest ≤ `bytes` (the first below all), `α + bytes·f/busbw`.
    pub fn time_s(&self, op: Op, ranks: u32, bytes: f64) -> f64 {
        let i = self
            .regimes
            .partition_point(|r| r.from_bytes <= bytes)
            .saturating_sub(1);
        match self.regimes.get(i) {
            Some(r) => r.alpha_s + bytes * op.bus_factor(ranks) / r.busbw_bytes_per_s,
            None => 0.0,
        }
    }

    /// Predicted nccl-tests bus bandwidth at `bytes`, bytes/s (`S·f / t`).
    pub fn busbw_bytes_per_s(&self, op: Op, ranks: u32, bytes: f64) -> f64 {
        let t = self.time_s(op, ranks, bytes);
        if t > 0.0 {
            bytes * op.bus_factor(ranks) / t
        } else {
            0.0
        }
    }
}

/// Fitted collective models for one cluster shape (e.g. 2×H200 over NVLink), one per op, with the
/// label the what-if prints (`calibrated (2×H200 NVLink, run 12)`).
#[derive(Debug, Clone, PartialEq)]
pub struct CalibratedCollectives {
    /// Ranks the models were measured on.
    pub ranks: u32,
    /// `(op, model)`; an op without a model falls back to the α–β formulas.
    pub models: Vec<(Op, RegimeModel)>,
    /// Human-readable provenance, e.g. `calibrated (2×H200 NVLink, run 12)`.
    pub label: String,
}

impl CalibratedCollectives {
    /// The model of `op`, if fitted.
    pub fn model(&self, op: Op) -> Option<&RegimeModel> {
        self.models.iter().find(|(o, _)| *o == op).map(|(_, m)| m)
    }
}

/// One collective's cost in nccl-tests vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CollectiveTime {
    /// Time, seconds.
    pub time_s: f64,
    /// `S / time_s`, bytes/s (0 for one rank or zero bytes).
    pub algbw_bytes_per_s: f64,
    /// `algbw · f`, bytes/s.
    pub busbw_bytes_per_s: f64,
}

fn ceil_log2(n: u32) -> f64 {
    (32 - (n.max(1) - 1).leading_zeros()) as f64
}

/// Latency and bandwidth terms (seconds) of a ring phase of `op` on `n` ranks at bandwidth `bw`.
fn ring(op: Op, n: u32, bytes: f64, alpha: f64, bw: f64) -> (f64, f64) {
    if n <= 1 {
        return (0.0, 0.0);
    }
    let steps = (n - 1) as f64;
    match op {
        Op::AllReduce => (2.0 * steps * alpha, 2.0 * steps / n as f64 * bytes / bw),
        Op::AllGather | Op::ReduceScatter => (steps * alpha, steps / n as f64 * bytes / bw),
        Op::Broadcast => (steps * alpha, bytes / bw),
    }
}

/// Latency and bandwidth terms of `op` with `algo` on `c`, seconds.
///
/// # Errors
/// [`Error::Unsupported`] for tree all-gather / reduce-scatter.
pub fn terms(op: Op, algo: Algo, bytes: f64, c: &Cluster) -> Result<(f64, f64)> {
    let p = c.workers;
    let a = c.latency_s;
    Ok(match algo {
        Algo::Ring => ring(op, p, bytes, a, c.flat_bw()),
        Algo::Tree => {
            if p <= 1 {
                return Ok((0.0, 0.0));
            }
            let bw = c.flat_bw();
            match op {
                Op::AllReduce => (2.0 * ceil_log2(p) * a, 2.0 * bytes / bw),
                Op::Broadcast => (ceil_log2(p) * a, bytes / bw),
                _ => {
                    return Err(Error::Unsupported(format!(
                    "--algo tree supports allreduce and broadcast, not {} (NCCL runs it as a ring)",
                    op.as_str()
                )))
                }
            }
        }
        Algo::Hierarchical => {
            let (k, n) = (c.gpus_per_node, c.nodes());
            let (bi, be) = (c.intra_node_bw_bytes_per_s, c.inter_node_bw_bytes_per_s);
            let phases: &[(Op, u32, f64)] = match op {
                Op::AllReduce => &[
                    (Op::ReduceScatter, k, bi),
                    (Op::AllReduce, n, be),
                    (Op::AllGather, k, bi),
                ],
                Op::AllGather => &[(Op::AllGather, n, be), (Op::AllGather, k, bi)],
                Op::ReduceScatter => &[(Op::ReduceScatter, k, bi), (Op::ReduceScatter, n, be)],
                Op::Broadcast => &[(Op::Broadcast, n, be), (Op::Broadcast, k, bi)],
            };
            phases.iter().fold((0.0, 0.0), |(l, b), &(o, ranks, bw)| {
                let (dl, db) = ring(o, ranks, bytes, a, bw);
                (l + dl, b + db)
            })
        }
    })
}

/// Time of `op` with `algo` moving `bytes` on `c`; a measured curve replaces the bandwidth term.
///
/// # Errors
/// [`Error::OutOfRange`] for negative or NaN `bytes`; [`Error::Unsupported`] as [`terms`].
pub fn time(
    op: Op,
    algo: Algo,
    bytes: f64,
    c: &Cluster,
    curve: Option<&BusBwCurve>,
) -> Result<CollectiveTime> {
    check::non_negative("--bytes", bytes)?;
    let (lat, bw_term) = terms(op, algo, bytes, c)?;
    let bw_term = match curve {
        Some(cv) if c.workers > 1 && bytes > 0.0 => bytes * op.bus_factor(c.workers) / cv.at(bytes),
        _ => bw_term,
    };
    let t = lat + bw_term;
    let algbw = if t > 0.0 && bytes > 0.0 {
        bytes / t
    } else {
        0.0
    };
    Ok(CollectiveTime {
        time_s: t,
        algbw_bytes_per_s: algbw,
        busbw_bytes_per_s: algbw * op.bus_factor(c.workers),
    })
}

/// Time only, seconds (hot path; tree all-gather / reduce-scatter fall back to the ring).
pub fn time_s(op: Op, algo: Algo, bytes: f64, c: &Cluster, curve: Option<&BusBwCurve>) -> f64 {
    let algo = if algo == Algo::Tree && matches!(op, Op::AllGather | Op::ReduceScatter) {
        Algo::Ring
    } else {
        algo
    };
    if c.workers <= 1 || bytes <= 0.0 {
        return 0.0;
    }
    let (lat, bw_term) = terms(op, algo, bytes, c).unwrap_or((0.0, 0.0));
    match curve {
        Some(cv) => lat + bytes * op.bus_factor(c.workers) / cv.at(bytes),
        None => lat + bw_term,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    /// The worked example, tolerance 1e-12 relative.
    #[test]
    fn ring_allreduce_worked_example() {
        let c = Cluster::new(16, 1, 100.0, 3600.0, 10.0).unwrap();
        let t = time(Op::AllReduce, Algo::Ring, 1e9, &c, None).unwrap();
        assert!(close(t.time_s, 0.1503, 1e-12), "{}", t.time_s);
        assert!(close(t.algbw_bytes_per_s, 1e9 / 0.1503, 1e-12));
        assert!(close(
            t.busbw_bytes_per_s,
            1e9 / 0.1503 * 30.0 / 16.0,
            1e-12
        ));
        // busbw approaches the link bandwidth as latency vanishes.
        let c0 = Cluster::new(16, 1, 100.0, 3600.0, 0.0).unwrap();
        let t0 = time(Op::AllReduce, Algo::Ring, 1e9, &c0, None).unwrap();
        assert!(close(t0.busbw_bytes_per_s, 12.5e9, 1e-12));
    }

    #[test]
    fn hierarchical_reduces_to_ring_with_one_gpu_per_node_and_beats_it_on_latency() {
        let c = Cluster::new(16, 1, 100.0, 3600.0, 10.0).unwrap();
        for op in [
            Op::AllReduce,
            Op::AllGather,
            Op::ReduceScatter,
            Op::Broadcast,
        ] {
            let r = time(op, Algo::Ring, 1e8, &c, None).unwrap().time_s;
            let h = time(op, Algo::Hierarchical, 1e8, &c, None).unwrap().time_s;
            assert!(close(r, h, 1e-12), "{op:?} {r} {h}");
        }
        let c = Cluster::new(64, 8, 100.0, 3600.0, 10.0).unwrap();
        let r = time(Op::AllReduce, Algo::Ring, 1e4, &c, None)
            .unwrap()
            .time_s;
        let h = time(Op::AllReduce, Algo::Hierarchical, 1e4, &c, None)
            .unwrap()
            .time_s;
        assert!(h < r);
        // hand: RS_8 = 7α + 7/8·S/β_i, AR_8 = 14α + 14/8·S/β_e, AG_8 = 7α + 7/8·S/β_i
        let (s, a, bi, be) = (1e4, 10e-6, 450e9, 12.5e9);
        let want = 28.0 * a + 14.0 / 8.0 * s / bi + 14.0 / 8.0 * s / be;
        assert!(close(h, want, 1e-12), "{h} {want}");
    }

    #[test]
    fn tree_has_log_latency_and_rejects_allgather() {
        let c = Cluster::new(64, 1, 100.0, 3600.0, 10.0).unwrap();
        let t = time(Op::AllReduce, Algo::Tree, 0.0, &c, None).unwrap();
        assert_eq!(t.algbw_bytes_per_s, 0.0);
        let t = time(Op::AllReduce, Algo::Tree, 8.0, &c, None)
            .unwrap()
            .time_s;
        assert!(close(t, 12.0 * 10e-6 + 16.0 / 12.5e9, 1e-12));
        assert!(time(Op::AllGather, Algo::Tree, 8.0, &c, None).is_err());
        assert_eq!(
            time_s(Op::AllGather, Algo::Tree, 8.0, &c, None),
            time_s(Op::AllGather, Algo::Ring, 8.0, &c, None)
        );
    }

    #[test]
    fn measured_curve_replaces_bandwidth_term() {
        let c = Cluster::new(16, 1, 100.0, 3600.0, 10.0).unwrap();
        let cv = BusBwCurve::new(vec![(1e6, 1e9), (1e8, 1e10)]).unwrap();
        assert!(close(cv.at(1e7), 10f64.powf(9.5), 1e-12));
        assert_eq!(cv.at(1.0), 1e9);
        let t = time(Op::AllReduce, Algo::Ring, 1e9, &c, Some(&cv))
            .unwrap()
            .time_s;
        assert!(close(t, 300e-6 + 1e9 * 30.0 / 16.0 / 1e10, 1e-12));
    }

    #[test]
    fn bad_cluster_names_the_field() {
        let e = Cluster::new(12, 8, 100.0, 100.0, 1.0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--workers = 12") && e.contains("multiple of --gpus-per-node = 8"),
            "{e}"
        );
        assert!(Cluster::new(8, 8, 0.0, 100.0, 1.0)
            .unwrap_err()
            .to_string()
            .contains("--inter-node-gbps"));
        assert!(Cluster::new(8, 8, -5.0, 100.0, 1.0).is_err());
        assert!(Cluster::new(0, 1, 5.0, 100.0, 1.0)
            .unwrap_err()
            .to_string()
            .contains("--workers"));
        assert!(Cluster::new(8, 8, 5.0, 100.0, -1.0)
            .unwrap_err()
            .to_string()
            .contains("--latency-us"));
    }
}
