//! Gradient compressors behind one trait: what each does to a DDP bucket.
//!
//! # Contract
//! [`Compressor::stages`] turns one bucket's gradient ([`BucketContent`]: its weight matrices and
//! its other elements, fp32) into the ordered stages the bucket goes through after its last
//! gradient is ready: [`Stage::Compute`] stages run on the GPU's compute stream (they delay the rest
//! of backward), [`Stage::Comm`] stages on the communication stream. Stage times are ≥ 0 and
//! depend only on the bucket, the [`Env`] and the compressor's parameters (no randomness, no
//! state), so a step is a pure function of its inputs.
//!
//! Codec cost of a compute stage: `launches · launch_s + bytes / bw + flops / rate`
//! ([`CodecCost`]): fixed launch cost, memory traffic and arithmetic (matmul FLOPs at the tf32
//! rate, elementwise FLOPs at the fp32 rate). Defaults are engineering guesses until calibrated.
//!
//! | method | collective | payload per rank, bytes (n fp32 elements) | source |
//! | --- | --- | --- | --- |
//! | none | all-reduce | 4n | PyTorch DDP |
//! | fp16 / bf16 | all-reduce | 2n | DDP `fp16_compress_hook` / `bf16_compress_hook` |
//! | PowerSGD rank r | all-reduce of P, then of Q (+ uncompressed tensors) | 4·r·(m+c) per matrix | Vogels et al. 2019 |
//! | Top-k density D | all-gather of values + int32 indices | 8·⌈D·n⌉ | Aji & Heafield 2017 |
//! | Random-k density D (indices from a seed all ranks share) | all-reduce of the k values | 4·⌈D·n⌉ | Stich et al. 2018; Vogels et al. 2019 |
//! | signSGD majority vote | all-gather of packed signs | n/8 | Bernstein et al. 2019 |
//! | QSGD b bits | all-gather of levels + norm | b·n/8 + 4 | Alistarh et al. 2017 |
//!
//! An all-reduce's nccl-tests size is the payload; an all-gather's is the gathered output, P× the
//! payload, so its time grows with the number of ranks: why sparsification and sign/quantization
//! methods that are not all-reducible scale poorly (Agarwal et al. 2022).
//!
//! One file per compressor: [`none`], [`cast`], [`powersgd`], [`sparse`], [`signsgd`], [`qsgd`];
//! [`Method`] (parsed from `--method`) dispatches to them without boxing.

pub mod cast;
pub mod none;
pub mod powersgd;
pub mod qsgd;
pub mod signsgd;
pub mod sparse;

pub use cast::Cast16;
pub use none::NoCompression;
pub use powersgd::{powersgd_compresses, PowerSgd};
pub use qsgd::Qsgd;
pub use signsgd::SignSgd;
pub use sparse::{RandomK, TopK};

use super::collective::{self, Algo, BusBwCurve, CalibratedCollectives, Cluster, Op};
use crate::catalog::Gpu;
use crate::check;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// One stage of a bucket's pipeline, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Stage {
    /// Work on the compute stream (encode, decode, matmuls), seconds.
    Compute(f64),
    /// A collective on the communication stream, seconds.
    Comm(f64),
}

/// One gradient bucket's content (fp32 gradients).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketContent {
    /// Weight-matrix gradients `(rows, cols)`.
    pub matrices: Vec<(u64, u64)>,
    /// Elements not in matrices (biases, norms).
    pub vector_elems: u64,
}

impl BucketContent {
    /// Total gradient elements.
    pub fn elems(&self) -> u64 {
        self.matrices.iter().map(|(r, c)| r * c).sum::<u64>() + self.vector_elems
    }
}

/// Codec cost parameters of one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodecCost {
    /// Fixed cost per kernel launch, seconds.
    pub launch_s: f64,
    /// Effective memory bandwidth of codec kernels, bytes/s.
    pub bw_bytes_per_s: f64,
    /// Effective matmul rate (tf32), FLOP/s.
    pub matmul_flops_per_s: f64,
    /// Effective elementwise rate (fp32), FLOP/s.
    pub vector_flops_per_s: f64,
    /// Two-regime bandwidth (issue 14): the first `cache_bytes` of a stage's traffic move at
    /// `cache_bw_bytes_per_s` (data the previous kernel left in the GPU's L2), the rest at
    /// `bw_bytes_per_s`. 0 (the default): one regime, every byte at `bw_bytes_per_s`.
    #[serde(default)]
    pub cache_bytes: f64,
    /// Bandwidth of the first `cache_bytes` of a stage's traffic, bytes/s (unused when
    /// `cache_bytes` is 0).
    #[serde(default)]
    pub cache_bw_bytes_per_s: f64,
    /// Cost of one block-wide reduction of a one-block-per-matrix kernel, seconds (a warp
    /// shuffle tree and two `__syncthreads`; [`CodecWork::syncs`]; [`SYNC_S`] when absent).
    #[serde(default = "default_sync_s")]
    pub sync_s: f64,
    /// Cost of one step of such a block, seconds: its 1024 threads each doing one element's
    /// load, multiply-add and store ([`CodecWork::block_steps`]; [`BLOCK_STEP_S`] when absent).
    #[serde(default = "default_block_step_s")]
    pub block_step_s: f64,
}

fn default_sync_s() -> f64 {
    SYNC_S
}

fn default_block_step_s() -> f64 {
    BLOCK_STEP_S
}

/// Datasheet default of [`CodecCost::sync_s`], seconds: a 1024-thread block's shuffle-tree
/// reduction with two `__syncthreads` is of the order of 0.1 µs on Hopper (run 48's fit of
/// PowerSGD's `q` on an H200).
pub const SYNC_S: f64 = 0.1e-6;

/// Datasheet default of [`CodecCost::block_step_s`], seconds: one SM streaming a block's
/// 1024-element step through L1/L2 with a dependent reduction after it is latency-bound, of
/// the order of 0.1 µs (run 48's fit of PowerSGD's `q` on an H200).
pub const BLOCK_STEP_S: f64 = 0.1e-6;

impl CodecCost {
    /// Defaults for `gpu`: 5 µs per launch, catalog bandwidth and FLOP efficiencies, one
    /// bandwidth regime.
    pub fn for_gpu(gpu: &Gpu) -> Self {
        CodecCost {
            launch_s: 5e-6,
            bw_bytes_per_s: gpu.hbm_bw_bytes_per_s * gpu.latency.bw_efficiency,
            matmul_flops_per_s: gpu.tf32_flops * gpu.latency.flops_efficiency,
            vector_flops_per_s: gpu.fp32_flops * gpu.latency.flops_efficiency,
            cache_bytes: 0.0,
            cache_bw_bytes_per_s: 0.0,
            sync_s: SYNC_S,
            block_step_s: BLOCK_STEP_S,
        }
    }

    /// A stage's `bytes` split into (cached, beyond): the first `cache_bytes` and the rest;
    /// `(0, bytes)` with one regime.
    pub fn split_bytes(&self, bytes: f64) -> (f64, f64) {
        if self.cache_bytes > 0.0 && self.cache_bw_bytes_per_s > 0.0 {
            let c = bytes.min(self.cache_bytes);
            (c, bytes - c)
        } else {
            (0.0, bytes)
        }
    }

    /// Time to move `bytes` ([`CodecCost::split_bytes`]: `cached / cache_bw + beyond / bw`),
    /// seconds.
    pub fn mem_s(&self, bytes: f64) -> f64 {
        let (cached, beyond) = self.split_bytes(bytes);
        let cached_s = if cached > 0.0 {
            cached / self.cache_bw_bytes_per_s
        } else {
            0.0
        };
        cached_s + beyond / self.bw_bytes_per_s
    }

    /// `launches · launch_s + mem_s(bytes) + matmul / matmul_rate + vector / vector_rate`,
    /// seconds ([`CodecCost::mem_s`]).
    pub fn t(&self, launches: f64, bytes: f64, matmul_flops: f64, vector_flops: f64) -> f64 {
        launches * self.launch_s
            + self.mem_s(bytes)
            + matmul_flops / self.matmul_flops_per_s
            + vector_flops / self.vector_flops_per_s
    }

    /// Time of one codec stage's work, seconds: [`CodecCost::t`] of its counts plus `syncs ·
    /// sync_s + block_steps · block_step_s`; for an [`CodecWork::overlap`] stage the memory
    /// and vector terms overlap, `max(mem_s, vector / vector_rate)` in place of their sum (the
    /// roofline: Williams, Waterman & Patterson 2009, CACM 52(4)).
    pub fn time_of(&self, w: &CodecWork) -> f64 {
        let core = if w.overlap {
            self.launch_s * w.launches
                + self
                    .mem_s(w.bytes)
                    .max(w.vector_flops / self.vector_flops_per_s)
                + w.matmul_flops / self.matmul_flops_per_s
        } else {
            self.t(w.launches, w.bytes, w.matmul_flops, w.vector_flops)
        };
        core + w.syncs * self.sync_s + w.block_steps * self.block_step_s
    }
}

/// The work of one named codec stage: what [`CodecCost`] prices and what the GPU harness times
/// (rows of kind `codec`, params `op=<stage>`). Stage names: PowerSGD `p` (error-feedback add +
/// P = M·Q), `q` (orthogonalize P + Q = Mᵀ·P), `decode` (M̂ = P·Qᵀ + error update); every other
/// codec `encode` and `decode`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CodecWork {
    /// Stage name (`encode`, `decode`, `p`, `q`).
    pub op: &'static str,
    /// Kernel launches.
    pub launches: f64,
    /// Bytes moved to and from device memory.
    pub bytes: f64,
    /// Matmul FLOPs (tf32 rate).
    pub matmul_flops: f64,
    /// Elementwise FLOPs (fp32 rate).
    pub vector_flops: f64,
    /// Block-wide reductions on the stage's critical path (one-block-per-matrix kernels: the
    /// block of the largest matrix), each priced at [`CodecCost::sync_s`].
    #[serde(default)]
    pub syncs: f64,
    /// Steps of that block (each of its threads handles one element), each priced at
    /// [`CodecCost::block_step_s`]: work one SM does, which a whole-GPU rate cannot price.
    #[serde(default)]
    pub block_steps: f64,
    /// Whether the stage's memory traffic and vector FLOPs run in one fused kernel whose loads
    /// and arithmetic overlap, priced as the larger of the two ([`CodecCost::time_of`]);
    /// `false`: a sequence of kernels, each bound by one of them, priced as their sum.
    #[serde(default)]
    pub overlap: bool,
}

impl CodecWork {
    /// A stage `op` with its counts.
    pub const fn new(
        op: &'static str,
        launches: f64,
        bytes: f64,
        matmul_flops: f64,
        vector_flops: f64,
    ) -> Self {
        CodecWork {
            op,
            launches,
            bytes,
            matmul_flops,
            vector_flops,
            syncs: 0.0,
            block_steps: 0.0,
            overlap: false,
        }
    }

    /// This stage as one fused kernel whose memory and vector terms overlap
    /// ([`CodecWork::overlap`]).
    pub const fn with_overlap(mut self) -> Self {
        self.overlap = true;
        self
    }

    /// This stage with a one-block-per-matrix kernel on its critical path: `syncs` block-wide
    /// reductions and `block_steps` steps of its block.
    pub const fn with_block(mut self, syncs: f64, block_steps: f64) -> Self {
        self.syncs = syncs;
        self.block_steps = block_steps;
        self
    }
}

/// Where the buckets are sent: cluster, all-reduce algorithm, optional measured curve, codec costs.
#[derive(Debug, Clone, PartialEq)]
pub struct Env {
    /// The cluster.
    pub cluster: Cluster,
    /// All-reduce algorithm (all-gathers use the ring when this is `tree`).
    pub algo: Algo,
    /// Measured bus-bandwidth curve replacing the bandwidth term.
    pub curve: Option<BusBwCurve>,
    /// Codec costs (datasheet defaults, or the shared calibrated fit).
    pub codec: CodecCost,
    /// Calibrated codec costs per compressor family (`powersgd`, `topk`, ...), when the
    /// calibration fitted each compressor on its own; others use `codec`.
    pub codec_by_family: Vec<(String, CodecCost)>,
    /// Calibrated codec costs per (compressor family, stage), when the calibration fitted each
    /// stage on its own (`per-stage`); a stage not listed uses `codec_by_family`, then `codec`.
    pub codec_by_stage: Vec<(String, String, CodecCost)>,
    /// Whether `codec` (and `codec_by_family`, `codec_by_stage`) come from a calibration.
    pub codec_calibrated: bool,
    /// Whether those are the costs of codec calls captured as CUDA graphs and replayed
    /// (`--codec-exec graph`) rather than issued op by op.
    pub codec_graph: bool,
    /// Collective models fitted to measurements of this cluster shape, replacing the α–β
    /// formulas for the ops they cover (the measured curve `curve`, when given, wins).
    pub calibrated: Option<CalibratedCollectives>,
}

impl Env {
    /// An environment with datasheet codec costs and α–β collectives.
    pub fn new(cluster: Cluster, algo: Algo, curve: Option<BusBwCurve>, codec: CodecCost) -> Self {
        Env {
            cluster,
            algo,
            curve,
            codec,
            codec_by_family: Vec::new(),
            codec_by_stage: Vec::new(),
            codec_calibrated: false,
            codec_graph: false,
            calibrated: None,
        }
    }

    /// Time of collective `op` moving `bytes` (nccl-tests size), seconds.
    pub fn coll(&self, op: Op, bytes: f64) -> f64 {
        if self.curve.is_none() && self.cluster.workers > 1 && bytes > 0.0 {
            if let Some(m) = self
                .calibrated
                .as_ref()
                .filter(|c| c.ranks == self.cluster.workers)
                .and_then(|c| c.model(op))
            {
                return m.time_s(op, self.cluster.workers, bytes);
            }
        }
        collective::time_s(op, self.algo, bytes, &self.cluster, self.curve.as_ref())
    }

    /// Codec costs of the compressor family `family` (the method name before `:`).
    pub fn codec_for(&self, family: &str) -> &CodecCost {
        self.codec_by_family
            .iter()
            .find(|(f, _)| f == family)
            .map_or(&self.codec, |(_, c)| c)
    }

    /// Codec costs of stage `op` of the compressor family `family`: the stage's own calibrated
    /// cost, else [`Env::codec_for`].
    pub fn codec_stage(&self, family: &str, op: &str) -> &CodecCost {
        self.codec_by_stage
            .iter()
            .find(|(f, o, _)| f == family && o == op)
            .map_or_else(|| self.codec_for(family), |(_, _, c)| c)
    }

    /// Time of codec stage `w` of the compressor family `family`, seconds
    /// ([`CodecCost::time_of`] under [`Env::codec_stage`]).
    pub fn codec_time(&self, family: &str, w: &CodecWork) -> f64 {
        self.codec_stage(family, w.op).time_of(w)
    }

    /// Where the collective times come from: the calibration's label, the measured curve, or
    /// `datasheet α–β`.
    pub fn collectives_source(&self) -> String {
        match (&self.curve, &self.calibrated) {
            (Some(_), _) => "measured busbw curve (--busbw-csv)".into(),
            (None, Some(c)) if c.ranks == self.cluster.workers => c.label.clone(),
            _ => "datasheet α–β".into(),
        }
    }
}

/// A gradient compressor (see the module contract).
pub trait Compressor: Send + Sync {
    /// Name as on the command line (`powersgd:rank=4`).
    fn name(&self) -> String;
    /// Whether compressed gradients can be summed by an all-reduce.
    fn all_reducible(&self) -> bool;
    /// Appends the stages of `bucket` to `out`.
    fn stages(&self, bucket: &BucketContent, env: &Env, out: &mut Vec<Stage>);
    /// Appends the named codec stages of `bucket` on `ranks` ranks to `out`, in pipeline order
    /// (the counts [`Compressor::stages`] prices; empty when the method has no codec work).
    fn codec_work(&self, bucket: &BucketContent, ranks: u32, out: &mut Vec<CodecWork>);
    /// Payload bytes one rank sends for `bucket` (what the codec harness records as
    /// `wire_bytes`; the table in the module doc).
    fn wire_bytes(&self, bucket: &BucketContent) -> f64;
}

/// A compression method, parsed from `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Method {
    /// fp32 gradients, plain all-reduce.
    None,
    /// Cast to 16 bits (fp16 or bf16: same cost) before the all-reduce.
    Cast16 {
        /// `true` for bf16.
        bf16: bool,
    },
    /// PowerSGD (Vogels et al. 2019) rank r.
    PowerSgd {
        /// Rank r ≥ 1.
        rank: u32,
    },
    /// Top-k sparsification with error feedback.
    TopK {
        /// Fraction of elements kept, in (0, 1].
        density: f64,
    },
    /// Random-k sparsification.
    RandomK {
        /// Fraction of elements kept, in (0, 1].
        density: f64,
    },
    /// signSGD with majority vote (Bernstein et al. 2019).
    SignSgd,
    /// QSGD (Alistarh et al. 2017), b bits per element.
    Qsgd {
        /// Bits per element, 1..=16.
        bits: u32,
    },
}

/// Method names for error messages.
pub const METHODS: [&str; 8] = [
    "none",
    "fp16",
    "bf16",
    "powersgd:rank=R",
    "topk:density=D",
    "randomk:density=D",
    "signsgd",
    "qsgd:bits=B",
];

impl Method {
    /// Parses `none|fp16|bf16|powersgd:rank=R|topk:density=D|randomk:density=D|signsgd|qsgd:bits=B`.
    ///
    /// # Errors
    /// [`Error::UnknownName`] for an unknown method; [`Error::OutOfRange`] naming the parameter
    /// (`--method powersgd rank`, `--method topk density`, ...) and its allowed range.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.contains(',') {
            // No method takes two parameters, so a comma is a list: only `--solve min-workers`
            // takes one (it splits it and parses each).
            return Err(Error::range(
                "--method",
                s,
                "one method (a comma-separated list only with --solve min-workers: one row per method)",
            ));
        }
        let (name, args) = check::split_name(s);
        let name = name.to_ascii_lowercase();
        let kv: Vec<(String, String)> = check::kv_pairs(args)
            .map_err(|a| {
                Error::range(
                    format!("--method {name}"),
                    a,
                    "key=value pairs, e.g. powersgd:rank=4",
                )
            })?
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        let get = |key: &str, allowed: &str| -> Result<String> {
            for (k, _) in &kv {
                if k != key {
                    return Err(Error::range(
                        format!("--method {name} parameter"),
                        k,
                        format!("'{key}'"),
                    ));
                }
            }
            kv.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    Error::range(
                        format!("--method {name} {key}"),
                        "missing",
                        allowed.to_string(),
                    )
                })
        };
        let no_args = |m: Method| {
            if kv.is_empty() {
                Ok(m)
            } else {
                Err(Error::range(
                    format!("--method {name}"),
                    args,
                    "no parameters",
                ))
            }
        };
        let int = |key: &str, lo: i64, hi: i64| -> Result<i64> {
            let allowed = format!("an integer in [{lo}, {hi}]");
            let v = get(key, &allowed)?;
            let n: i64 = v
                .parse()
                .map_err(|_| Error::range(format!("--method {name} {key}"), &v, allowed.clone()))?;
            check::int_in(&format!("--method {name} {key}"), n, lo, hi)
        };
        let density = || -> Result<f64> {
            let allowed = "a number in (0, 1]";
            let v = get("density", allowed)?;
            let d: f64 = v
                .parse()
                .map_err(|_| Error::range(format!("--method {name} density"), &v, allowed))?;
            if d > 0.0 && d <= 1.0 {
                Ok(d)
            } else {
                Err(Error::range(format!("--method {name} density"), v, allowed))
            }
        };
        match name.as_str() {
            "none" | "fp32" => no_args(Method::None),
            "fp16" => no_args(Method::Cast16 { bf16: false }),
            "bf16" => no_args(Method::Cast16 { bf16: true }),
            "powersgd" => Ok(Method::PowerSgd {
                rank: int("rank", 1, 1 << 20)? as u32,
            }),
            "topk" => Ok(Method::TopK {
                density: density()?,
            }),
            "randomk" => Ok(Method::RandomK {
                density: density()?,
            }),
            "signsgd" => no_args(Method::SignSgd),
            "qsgd" => Ok(Method::Qsgd {
                bits: int("bits", 1, 16)? as u32,
            }),
            _ => Err(Error::unknown("method", s, METHODS)),
        }
    }

    /// Parses a `--baseline` (`fp32|fp16|bf16`).
    ///
    /// # Errors
    /// [`Error::UnknownName`].
    pub fn parse_baseline(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" | "none" => Ok(Method::None),
            "fp16" => Ok(Method::Cast16 { bf16: false }),
            "bf16" => Ok(Method::Cast16 { bf16: true }),
            _ => Err(Error::unknown("baseline", s, ["fp32", "fp16", "bf16"])),
        }
    }

    /// The name of this method as a `--baseline` (`fp32` for uncompressed gradients, where
    /// [`Compressor::name`] says `none`).
    pub fn baseline_name(&self) -> String {
        match self {
            Method::None => "fp32".into(),
            m => m.name(),
        }
    }
}

impl Method {
    fn with<R>(&self, f: impl FnOnce(&dyn Compressor) -> R) -> R {
        match *self {
            Method::None => f(&NoCompression),
            Method::Cast16 { bf16 } => f(&Cast16 { bf16 }),
            Method::PowerSgd { rank } => f(&PowerSgd { rank }),
            Method::TopK { density } => f(&TopK { density }),
            Method::RandomK { density } => f(&RandomK { density }),
            Method::SignSgd => f(&SignSgd),
            Method::Qsgd { bits } => f(&Qsgd { bits }),
        }
    }
}

impl Compressor for Method {
    fn name(&self) -> String {
        self.with(|c| c.name())
    }

    fn all_reducible(&self) -> bool {
        self.with(|c| c.all_reducible())
    }

    fn stages(&self, b: &BucketContent, env: &Env, out: &mut Vec<Stage>) {
        self.with(|c| c.stages(b, env, out))
    }

    fn codec_work(&self, b: &BucketContent, ranks: u32, out: &mut Vec<CodecWork>) {
        self.with(|c| c.codec_work(b, ranks, out))
    }

    fn wire_bytes(&self, b: &BucketContent) -> f64 {
        self.with(|c| c.wire_bytes(b))
    }
}

impl Method {
    /// The compressor family: the name before `:` (`powersgd`, `topk`, `fp16`, ...).
    pub fn family(&self) -> String {
        let n = self.name();
        n.split(':').next().unwrap_or(&n).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `time_of` by hand: 2 launches at 1 µs, 1 MB at 1 TB/s (1 µs), 2·10⁷ vector FLOPs at 10
    /// TFLOP/s (2 µs), one sync of 0.5 µs: 5.5 µs summed; 4.5 µs when the stage overlaps its
    /// memory and vector terms (max(1, 2) = 2 µs).
    #[test]
    fn overlap_stages_cost_the_larger_of_memory_and_vector_time() {
        let c = CodecCost {
            launch_s: 1e-6,
            bw_bytes_per_s: 1e12,
            matmul_flops_per_s: 1e15,
            vector_flops_per_s: 1e13,
            cache_bytes: 0.0,
            cache_bw_bytes_per_s: 0.0,
            sync_s: 0.5e-6,
            block_step_s: 0.0,
        };
        let w = CodecWork::new("decode", 2.0, 1e6, 0.0, 2e7).with_block(1.0, 0.0);
        assert!((c.time_of(&w) - 5.5e-6).abs() < 1e-15);
        assert!((c.time_of(&w.with_overlap()) - 4.5e-6).abs() < 1e-15);
        // Memory-bound: 4 MB (4 µs) against the same 2 µs of FLOPs.
        let w = CodecWork::new("decode", 2.0, 4e6, 0.0, 2e7).with_overlap();
        assert!((c.time_of(&w) - 6e-6).abs() < 1e-15);
    }

    fn env(workers: i64) -> Env {
        let cluster = Cluster::new(workers, 1, 100.0, 3600.0, 10.0).unwrap();
        Env::new(
            cluster,
            Algo::Ring,
            None,
            CodecCost {
                launch_s: 0.0,
                bw_bytes_per_s: 1e12,
                matmul_flops_per_s: 1e14,
                vector_flops_per_s: 1e13,
                cache_bytes: 0.0,
                cache_bw_bytes_per_s: 0.0,
                sync_s: 0.0,
                block_step_s: 0.0,
            },
        )
    }

    /// A stage with its own calibrated cost is priced by it; the family's other stages fall back
    /// to the family's cost, other families to the shared one; `stages()` uses the same prices.
    #[test]
    fn codec_time_prefers_the_stage_then_the_family() {
        let mut e = env(2);
        let fam = CodecCost {
            launch_s: 1e-5,
            ..e.codec
        };
        let q = CodecCost {
            launch_s: 1e-3,
            ..e.codec
        };
        e.codec_by_family = vec![("powersgd".into(), fam)];
        e.codec_by_stage = vec![("powersgd".into(), "q".into(), q)];
        let b = BucketContent {
            matrices: vec![(1024, 1024)],
            vector_elems: 0,
        };
        let m = Method::parse("powersgd:rank=4").unwrap();
        let mut w = Vec::new();
        m.codec_work(&b, 2, &mut w);
        let [p, qw, d] = [w[0], w[1], w[2]];
        assert_eq!(e.codec_time("powersgd", &qw), q.time_of(&qw));
        assert_eq!(e.codec_time("powersgd", &p), fam.time_of(&p));
        assert_eq!(e.codec_time("topk", &p), e.codec.time_of(&p));
        let mut st = Vec::new();
        m.stages(&b, &e, &mut st);
        let compute: Vec<f64> = st
            .iter()
            .filter_map(|s| {
                if let Stage::Compute(t) = s {
                    Some(*t)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(
            compute,
            vec![fam.time_of(&p), q.time_of(&qw), fam.time_of(&d)]
        );
    }

    fn comm_bytes(m: Method, b: &BucketContent, e: &Env) -> f64 {
        // Invert the α–β ring formula of each comm stage back to bytes on the wire per rank.
        let mut st = Vec::new();
        m.stages(b, e, &mut st);
        st.iter()
            .map(|s| if let Stage::Comm(t) = s { *t } else { 0.0 })
            .sum()
    }

    #[test]
    fn parse_accepts_the_grammar_and_names_bad_fields() {
        assert_eq!(
            Method::parse("powersgd:rank=4").unwrap(),
            Method::PowerSgd { rank: 4 }
        );
        assert_eq!(
            Method::parse("topk:density=0.01").unwrap(),
            Method::TopK { density: 0.01 }
        );
        assert_eq!(
            Method::parse("qsgd:bits=4").unwrap(),
            Method::Qsgd { bits: 4 }
        );
        assert_eq!(Method::parse("SignSGD").unwrap(), Method::SignSgd);
        // A list is named as one (its commas used to split the first method's parameters).
        let e = Method::parse("fp16,powersgd:rank=4,topk:density=0.01,signsgd")
            .unwrap_err()
            .to_string();
        assert!(e.contains("one method") && e.contains("--solve"), "{e}");
        let e = Method::parse("powersgd:rank=0").unwrap_err().to_string();
        assert!(
            e.contains("--method powersgd rank = 0") && e.contains("[1,"),
            "{e}"
        );
        let e = Method::parse("topk:density=1.5").unwrap_err().to_string();
        assert!(e.contains("density = 1.5") && e.contains("(0, 1]"), "{e}");
        assert!(Method::parse("topk:density=0").is_err());
        assert!(Method::parse("randomk:density=nan").is_err());
        assert!(Method::parse("topk")
            .unwrap_err()
            .to_string()
            .contains("missing"));
        assert!(Method::parse("qsgd:bits=4,rank=3").is_err());
        let e = Method::parse("powersdg:rank=4").unwrap_err().to_string();
        assert!(
            e.contains("unknown method") && e.contains("powersgd"),
            "{e}"
        );
        for m in [
            "none",
            "fp16",
            "bf16",
            "signsgd",
            "powersgd:rank=2",
            "topk:density=0.5",
            "randomk:density=0.5",
            "qsgd:bits=8",
        ] {
            assert_eq!(Method::parse(m).unwrap().name(), m);
        }
    }

    /// On one rank nothing is communicated; on 16 ranks the wire bytes follow the table.
    #[test]
    fn wire_bytes_follow_the_table() {
        let b = BucketContent {
            matrices: vec![(1024, 1024)],
            vector_elems: 0,
        };
        let n = 1024.0 * 1024.0;
        let e = env(16);
        let (a, beta) = (10e-6, 12.5e9);
        let ar = |bytes: f64| 30.0 * a + 30.0 / 16.0 * bytes / beta;
        let ag = |bytes: f64| 15.0 * a + 15.0 / 16.0 * bytes / beta;
        let close = |x: f64, y: f64| (x - y).abs() < 1e-12 * y.max(1e-9);
        assert!(close(comm_bytes(Method::None, &b, &e), ar(4.0 * n)));
        assert!(close(
            comm_bytes(Method::Cast16 { bf16: true }, &b, &e),
            ar(2.0 * n)
        ));
        assert!(close(
            comm_bytes(Method::PowerSgd { rank: 4 }, &b, &e),
            2.0 * ar(4.0 * 1024.0 * 4.0)
        ));
        assert!(close(
            comm_bytes(Method::TopK { density: 0.01 }, &b, &e),
            ag(16.0 * 8.0 * (0.01 * n).ceil())
        ));
        assert!(close(
            comm_bytes(Method::SignSgd, &b, &e),
            ag(16.0 * n / 8.0)
        ));
        assert!(close(
            comm_bytes(Method::Qsgd { bits: 4 }, &b, &e),
            ag(16.0 * (n / 2.0 + 4.0))
        ));
        assert_eq!(comm_bytes(Method::SignSgd, &b, &env(1)), 0.0);
    }

    #[test]
    fn powersgd_leaves_small_tensors_uncompressed() {
        assert!(powersgd_compresses(4, 1024, 1024));
        assert!(!powersgd_compresses(4, 2, 768));
        let b = BucketContent {
            matrices: vec![(2, 768)],
            vector_elems: 10,
        };
        let mut st = Vec::new();
        Method::PowerSgd { rank: 4 }.stages(&b, &env(8), &mut st);
        assert_eq!(st.len(), 1, "{st:?}");
        assert!(matches!(st[0], Stage::Comm(_)));
    }

    /// Top-k encode costs more than Random-k (selection passes); every stage is ≥ 0.
    #[test]
    fn codec_costs_are_ordered_and_non_negative() {
        let b = BucketContent {
            matrices: vec![(4096, 4096)],
            vector_elems: 4096,
        };
        let e = env(8);
        let first = |m: Method| {
            let mut st = Vec::new();
            m.stages(&b, &e, &mut st);
            assert!(st.iter().all(|s| match s {
                Stage::Compute(t) | Stage::Comm(t) => *t >= 0.0 && t.is_finite(),
            }));
            match st[0] {
                Stage::Compute(t) => t,
                Stage::Comm(_) => 0.0,
            }
        };
        assert!(first(Method::TopK { density: 0.01 }) > first(Method::RandomK { density: 0.01 }));
    }
}
