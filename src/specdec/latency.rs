//! Latency of one transformer forward on a GPU: a per-layer roofline plus fixed overheads.
//!
//! A forward of `b` sequences × `n` new tokens each, at a mean of `c` tokens already in the KV
//! cache, costs per layer
//!
//! ```text
//! t_layer = max(F_lin / P, B_w / BW)            weights: 2·b·n·W FLOPs, W·d bytes
//!         + max(F_attn / P, B_kv / BW)          attention: scores and values over c + (n+1)/2 keys
//!         + layer_overhead_s
//! ```
//!
//! and the forward adds the LM head's roofline and `step_overhead_s`. An attention that
//! materialises its score matrix (no fused kernel) adds `score_elem_s` per score element
//! (b·n query positions × keys × heads): the scores are written, normalised and read back, which
//! the KV-cache bytes above do not count (0 for FlashAttention-style kernels). A layer never takes less
//! than `host_layer_s`, the host's time to launch its kernels: when the GPU outruns the host
//! (small models, small batches) the layer costs `max(host_layer_s, t_layer)`; every layer of a
//! forward has the same shape, so this equals max(host time, GPU time) of the layer stack.
//! A forward with more than one new token per sequence (verification) adds
//! `multi_token_layer_s` per layer: the fixed cost of kernels a one-token decode step does not
//! launch (on the validation harness, the layout copies of multi-token attention), and a forward
//! with more than one token row in all (batch × new tokens > 1) adds `multi_row_layer_s`
//! (matrix-matrix kernels where a single row runs matrix-vector ones). Both are fitted; on the
//! H200 harness a one-row decode layer costs ~41–45 µs of fixed time, a verification layer 56–60. `P` and `BW` are the
//! effective FLOP rate and bandwidth (datasheet peak × efficiency, or fitted by `calibrate`);
//! attention's KV reads use their own bandwidth `BW_attn` (`attn_bw_efficiency`, default equal
//! to `bw_efficiency`), since attention kernels seldom stream as efficiently as weight GEMMs.
//! Attention also parallelises only over its `b × kv_heads` streams (one per sequence and KV
//! head: a batched matmul or a decode kernel gives each a few thread blocks), so at small batch it
//! reads no faster than `streams × BW_stream` (`attn_stream_bw_bytes_per_s`); the attention
//! term is `max(F/P, B_kv/BW_attn, B_kv/(streams·BW_stream))`. Finally every layer pays
//! `act_elem_s` per activation element (token rows × hidden) for the element-wise kernels an
//! unfused implementation runs over the activations (norms, RoPE, SwiGLU, residual adds, layout
//! copies); 0 for a fused one.
//! Draft latency is dominated by depth through the per-layer overhead (Yan et al. 2024,
//! "Decoding Speculative Decoding"), which is why the overhead is per layer, not per forward.
//!
//! CHAI (Agarwal et al. 2024, "CHAI: Clustered Head Attention for Efficient LLM Inference")
//! clusters the attention heads of a layer: only one representative per cluster computes
//! attention scores, so score FLOPs scale by clusters/heads and the K cache keeps only the
//! representatives' keys (min(clusters, kv_heads)/kv_heads of the K bytes); values are untouched.
//!
//! Tensor parallelism over `tp` GPUs (Megatron-LM, Shoeybi et al. 2019) splits every layer's
//! weights, FLOPs, heads and KV cache by `tp` and adds two all-reduces of the activations
//! (`b·n·hidden` elements) per layer, each costing `α + 2(tp−1)/tp · bytes / link_bw` (ring).

use crate::catalog::{Gpu, LatencyDefaults, LlmArch};
use crate::check;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Effective hardware rates and fixed overheads of the latency model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HwRates {
    /// Effective matmul rate, FLOP/s.
    pub flops_per_s: f64,
    /// Effective memory bandwidth of weight streaming (linear layers, LM head), bytes/s.
    pub bw_bytes_per_s: f64,
    /// Effective bandwidth of attention's KV-cache reads, bytes/s (equal to `bw_bytes_per_s`
    /// unless calibrated separately: attention kernels rarely stream as well as GEMMs).
    pub attn_bw_bytes_per_s: f64,
    /// Fixed cost per layer per forward, seconds.
    pub layer_overhead_s: f64,
    /// Fixed cost per forward, seconds.
    pub step_overhead_s: f64,
    /// Host time to launch one layer's kernels, seconds (a layer takes at least this long).
    pub host_layer_s: f64,
    /// Time per materialised attention-score element, seconds (0 for fused attention).
    pub score_elem_s: f64,
    /// Extra fixed cost per layer when a forward has more than one new token per sequence,
    /// seconds.
    #[serde(default)]
    pub multi_token_layer_s: f64,
    /// Extra fixed cost per layer when a forward has more than one token row (batch × new
    /// tokens > 1), seconds.
    #[serde(default)]
    pub multi_row_layer_s: f64,
    /// Bandwidth one attention stream (one sequence's KV head) reaches, bytes/s: attention over
    /// `streams = batch × kv_heads` streams reads the KV cache at no more than `streams ×` this
    /// (few streams leave most SMs idle). None = no per-stream limit.
    #[serde(default)]
    pub attn_stream_bw_bytes_per_s: Option<f64>,
    /// Time per activation element (token row × hidden) per layer, seconds: the unfused
    /// element-wise kernels (norms, RoPE, SwiGLU, residual adds, layout copies) that touch every
    /// activation. 0 = fused or negligible.
    #[serde(default)]
    pub act_elem_s: f64,
    /// Bytes per weight / KV element (2 for bf16).
    pub dtype_bytes: f64,
}

impl HwRates {
    /// The per-layer fixed cost that depends on the forward's shape: `multi_token_layer_s` when
    /// it carries more than one new token per sequence, plus `multi_row_layer_s` when it carries
    /// more than one token row in all ([`Shape::multi_token`], [`Shape::multi_row`]), seconds.
    pub fn shape_layer_overhead_s(&self, s: Shape) -> f64 {
        let mut t = 0.0;
        if s.multi_token() {
            t += self.multi_token_layer_s;
        }
        if s.multi_row() {
            t += self.multi_row_layer_s;
        }
        t
    }

    /// Rates for bf16 inference on `gpu` with latency-model parameters `lat`.
    pub fn bf16(gpu: &Gpu, lat: &LatencyDefaults) -> Self {
        HwRates {
            flops_per_s: gpu.bf16_flops * lat.flops_efficiency,
            bw_bytes_per_s: gpu.hbm_bw_bytes_per_s * lat.bw_efficiency,
            attn_bw_bytes_per_s: gpu.hbm_bw_bytes_per_s
                * lat.attn_bw_efficiency.unwrap_or(lat.bw_efficiency),
            layer_overhead_s: lat.layer_overhead_s,
            step_overhead_s: lat.step_overhead_s,
            host_layer_s: lat.host_layer_s,
            score_elem_s: lat.score_elem_s,
            multi_token_layer_s: lat.multi_token_layer_s,
            multi_row_layer_s: lat.multi_row_layer_s,
            attn_stream_bw_bytes_per_s: lat.attn_stream_bw_bytes_per_s,
            act_elem_s: lat.act_elem_s,
            dtype_bytes: 2.0,
        }
    }
}

/// CHAI head clustering: clusters per layer (one count for all layers, or one per layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chai {
    /// Clusters per layer; length 1 means the same count for every layer.
    pub clusters: Vec<u32>,
}

impl Chai {
    /// Validates clusters against the architecture: 1 ≤ clusters ≤ heads, one or `layers` values.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] on `chai_clusters`.
    pub fn new(clusters: Vec<u32>, arch: &LlmArch) -> Result<Self> {
        if clusters.len() != 1 && clusters.len() != arch.layers as usize {
            return Err(Error::range(
                "chai_clusters",
                format!("{} values", clusters.len()),
                format!(
                    "1 value or one per layer ({} for {})",
                    arch.layers, arch.name
                ),
            ));
        }
        for (i, &c) in clusters.iter().enumerate() {
            if c == 0 || c > arch.heads {
                return Err(Error::range(
                    format!("chai_clusters[{i}]"),
                    c,
                    format!(
                        "an integer in [1, {}] (the heads of {})",
                        arch.heads, arch.name
                    ),
                ));
            }
        }
        Ok(Chai { clusters })
    }
    fn at(&self, layer: usize) -> u32 {
        if self.clusters.len() == 1 {
            self.clusters[0]
        } else {
            self.clusters[layer]
        }
    }
}

/// The latency model of one architecture on one GPU.
#[derive(Debug, Clone)]
pub struct ForwardModel {
    /// The architecture.
    pub arch: LlmArch,
    /// Hardware rates.
    pub hw: HwRates,
    /// Optional CHAI clustering.
    pub chai: Option<Chai>,
    /// Tensor-parallel degree (1 = one GPU).
    pub tp: u32,
    /// Interconnect of the tensor-parallel group (used when `tp` > 1).
    pub tp_link: TpLink,
    layer_w_flops_per_token: f64,
    layer_w_bytes: f64,
    head_flops_per_token: f64,
    head_bytes: f64,
    kv_bytes_per_token_layer: f64,
}

/// Whether Megatron-style tensor parallelism can split `arch` over `tp` GPUs: `tp` divides the
/// attention heads, and divides the KV heads or is a multiple of them (KV heads replicated).
pub fn tp_divides(arch: &LlmArch, tp: u32) -> bool {
    tp >= 1 && arch.heads % tp == 0 && (arch.kv_heads % tp == 0 || tp % arch.kv_heads == 0)
}

/// The interconnect of a tensor-parallel group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TpLink {
    /// Per-direction bandwidth per GPU, bytes/s (NVLink: half the bidirectional datasheet figure).
    pub bw_bytes_per_s: f64,
    /// Fixed cost of one small all-reduce, seconds.
    pub latency_s: f64,
}

impl TpLink {
    /// NVLink (or PCIe when the GPU has none) of `gpu`, with a 10 µs all-reduce latency (NCCL's
    /// small-message latency within one node is of that order; calibrate to replace it).
    pub fn of_gpu(gpu: &Gpu) -> Self {
        let bidir = gpu
            .nvlink_bw_bytes_per_s
            .or(gpu.pcie_bw_bytes_per_s)
            .unwrap_or(64e9);
        TpLink {
            bw_bytes_per_s: bidir / 2.0,
            latency_s: 10e-6,
        }
    }
}

/// Work of one roofline term: FLOPs and bytes moved; its time is `max(flops/P, bytes/BW)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Work {
    /// Floating-point operations.
    pub flops: f64,
    /// Bytes read or written from device memory.
    pub bytes: f64,
}

impl Work {
    /// `max(flops / P, bytes / BW)` at rates `hw`, seconds.
    pub fn time_s(&self, hw: &HwRates) -> f64 {
        (self.flops / hw.flops_per_s).max(self.bytes / hw.bw_bytes_per_s)
    }

    /// Whether the term is compute-bound at rates `hw` (`flops/P ≥ bytes/BW`).
    pub fn compute_bound(&self, hw: &HwRates) -> bool {
        self.flops / hw.flops_per_s >= self.bytes / hw.bw_bytes_per_s
    }

    /// Attention term time at rates `hw` over `streams` parallel (sequence, KV head) streams:
    /// `max(flops / P, bytes / BW_attn, bytes / (streams · BW_stream))`, seconds.
    pub fn attn_time_s(&self, hw: &HwRates, streams: f64) -> f64 {
        match self.attn_regime(hw, streams) {
            AttnRegime::Compute => self.flops / hw.flops_per_s,
            AttnRegime::Bandwidth => self.bytes / hw.attn_bw_bytes_per_s,
            AttnRegime::Streams => {
                self.bytes / (streams * hw.attn_stream_bw_bytes_per_s.unwrap_or(f64::INFINITY))
            }
        }
    }

    /// Which of the three bounds of [`Work::attn_time_s`] is binding.
    pub fn attn_regime(&self, hw: &HwRates, streams: f64) -> AttnRegime {
        let c = self.flops / hw.flops_per_s;
        let b = self.bytes / hw.attn_bw_bytes_per_s;
        let s = match hw.attn_stream_bw_bytes_per_s {
            Some(bw) => self.bytes / (streams * bw),
            None => 0.0,
        };
        if c >= b && c >= s {
            AttnRegime::Compute
        } else if b >= s {
            AttnRegime::Bandwidth
        } else {
            AttnRegime::Streams
        }
    }
}

/// The binding bound of an attention term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttnRegime {
    /// FLOPs at the effective matmul rate.
    Compute,
    /// KV bytes at the attention bandwidth.
    Bandwidth,
    /// KV bytes at the per-stream bandwidth times the number of streams.
    Streams,
}

/// The two roofline terms of one transformer layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerWork {
    /// Weight matmuls (QKV, output and FFN projections): 2·b·n·W FLOPs, W·dtype bytes.
    pub lin: Work,
    /// Attention scores and values over the KV cache.
    pub attn: Work,
    /// Attention-score elements (query positions × keys × scoring heads) an unfused attention
    /// materialises; each costs `score_elem_s` on top of the roofline.
    pub score_elems: f64,
    /// Parallel attention streams: sequences × KV heads (on this GPU).
    pub attn_streams: f64,
    /// Activation elements: token rows × hidden; each costs `act_elem_s`.
    pub act_elems: f64,
}

/// Shape of one forward: `batch` sequences × `new_tokens` each at mean context `context_tokens`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Sequences in the batch.
    pub batch: f64,
    /// New tokens per sequence in this forward.
    pub new_tokens: f64,
    /// Mean tokens already in each sequence's KV cache.
    pub context_tokens: f64,
}

impl Shape {
    /// More than one new token per sequence (a verification or prefill forward).
    pub fn multi_token(&self) -> bool {
        self.new_tokens > 1.0
    }

    /// More than one token row in all (batch × new tokens > 1).
    pub fn multi_row(&self) -> bool {
        self.batch * self.new_tokens > 1.0
    }
}

impl ForwardModel {
    /// Builds the model.
    ///
    /// # Errors
    /// Non-positive rates or negative overheads.
    pub fn new(arch: LlmArch, hw: HwRates, chai: Option<Chai>) -> Result<Self> {
        check::positive("flops_per_s", hw.flops_per_s)?;
        check::positive("bw_bytes_per_s", hw.bw_bytes_per_s)?;
        check::positive("attn_bw_bytes_per_s", hw.attn_bw_bytes_per_s)?;
        check::non_negative("layer_overhead_s", hw.layer_overhead_s)?;
        check::non_negative("step_overhead_s", hw.step_overhead_s)?;
        check::non_negative("host_layer_s", hw.host_layer_s)?;
        check::non_negative("multi_token_layer_s", hw.multi_token_layer_s)?;
        check::non_negative("multi_row_layer_s", hw.multi_row_layer_s)?;
        check::non_negative("score_elem_s", hw.score_elem_s)?;
        check::non_negative("act_elem_s", hw.act_elem_s)?;
        if let Some(bw) = hw.attn_stream_bw_bytes_per_s {
            check::positive("attn_stream_bw_bytes_per_s", bw)?;
        }
        check::positive("dtype_bytes", hw.dtype_bytes)?;
        let d = hw.dtype_bytes;
        Ok(ForwardModel {
            layer_w_flops_per_token: 2.0 * arch.layer_matmul_params() as f64,
            layer_w_bytes: arch.layer_params() as f64 * d,
            head_flops_per_token: 2.0 * arch.lm_head_params() as f64,
            head_bytes: arch.lm_head_params() as f64 * d,
            kv_bytes_per_token_layer: arch.kv_dim() as f64 * d,
            arch,
            hw,
            chai,
            tp: 1,
            tp_link: TpLink {
                bw_bytes_per_s: 1.0,
                latency_s: 0.0,
            },
        })
    }

    /// Splits the model over `tp` GPUs joined by `link`.
    ///
    /// # Errors
    /// `tp` outside [1, 64], not dividing the heads and KV heads, or a non-positive link bandwidth.
    pub fn with_tp(mut self, tp: u32, link: TpLink) -> Result<Self> {
        check::int_in("tp", i64::from(tp), 1, 64)?;
        if !tp_divides(&self.arch, tp) {
            return Err(Error::range(
                "tp",
                tp,
                format!(
                    "a divisor of the {} heads and {} KV heads of {}",
                    self.arch.heads, self.arch.kv_heads, self.arch.name
                ),
            ));
        }
        check::positive("tp_link.bw_bytes_per_s", link.bw_bytes_per_s)?;
        check::non_negative("tp_link.latency_s", link.latency_s)?;
        self.tp = tp;
        self.tp_link = link;
        Ok(self)
    }

    fn allreduce_s(&self, tokens: f64) -> f64 {
        if self.tp <= 1 {
            return 0.0;
        }
        let bytes = tokens * f64::from(self.arch.hidden) * self.hw.dtype_bytes;
        let n = f64::from(self.tp);
        self.tp_link.latency_s + 2.0 * (n - 1.0) / n * bytes / self.tp_link.bw_bytes_per_s
    }

    /// FLOPs and bytes of one layer's two roofline terms (linear part and attention part) at
    /// shape `s`, with `clusters` CHAI clusters (None = all heads). [`ForwardModel::forward_s`] is
    /// built from exactly these numbers, and `perfcast calibrate` fits the rates against them.
    pub fn layer_work(&self, s: Shape, clusters: Option<u32>) -> LayerWork {
        let tokens = s.batch * s.new_tokens;
        let (score_frac, k_frac) = match clusters {
            None => (1.0, 1.0),
            Some(c) => (
                f64::from(c) / f64::from(self.arch.heads),
                f64::from(c.min(self.arch.kv_heads)) / f64::from(self.arch.kv_heads),
            ),
        };
        let keys = s.context_tokens + 0.5 * (s.new_tokens + 1.0);
        let qd = f64::from(self.arch.heads) * self.arch.head_dim() as f64;
        let kv = self.kv_bytes_per_token_layer * (1.0 + k_frac);
        LayerWork {
            lin: Work {
                flops: tokens * self.layer_w_flops_per_token,
                bytes: self.layer_w_bytes,
            },
            attn: Work {
                flops: 2.0 * tokens * keys * qd * (1.0 + score_frac),
                bytes: s.batch * (s.context_tokens + s.new_tokens) * kv,
            },
            score_elems: tokens * keys * f64::from(self.arch.heads) * score_frac,
            attn_streams: s.batch * f64::from(self.arch.kv_heads),
            act_elems: tokens * f64::from(self.arch.hidden),
        }
    }

    /// FLOPs and bytes of the LM head over `batch × new_tokens` positions.
    pub fn head_work(&self, s: Shape) -> Work {
        Work {
            flops: s.batch * s.new_tokens * self.head_flops_per_token,
            bytes: self.head_bytes,
        }
    }

    /// One layer on one GPU of the tensor-parallel group: the work of [`ForwardModel::layer_work`]
    /// split `tp` ways (the KV cache by at most the KV heads; attention streams and bytes alike,
    /// so the stream bound per GPU is unchanged), plus the group's two all-reduces. The
    /// activation-element cost is not split: Megatron-style TP replicates the norms and residual
    /// adds on every GPU (the split SwiGLU/RoPE share is not modelled; calibrated on one GPU).
    fn layer_s(&self, s: Shape, clusters: Option<u32>) -> f64 {
        let w = self.layer_work(s, clusters);
        let tp = f64::from(self.tp);
        let kv_split = f64::from(self.tp.min(self.arch.kv_heads));
        let lin = Work {
            flops: w.lin.flops / tp,
            bytes: w.lin.bytes / tp,
        };
        let attn = Work {
            flops: w.attn.flops / tp,
            bytes: w.attn.bytes / kv_split,
        };
        (lin.time_s(&self.hw)
            + attn.attn_time_s(&self.hw, w.attn_streams / kv_split)
            + w.score_elems / tp * self.hw.score_elem_s
            + w.act_elems * self.hw.act_elem_s
            + 2.0 * self.allreduce_s(s.batch * s.new_tokens)
            + self.hw.layer_overhead_s
            + self.hw.shape_layer_overhead_s(s))
        .max(self.hw.host_layer_s)
    }

    /// Seconds for layers `[from, to)` only (no LM head, no per-step overhead).
    pub fn layers_s(&self, s: Shape, from: u32, to: u32) -> f64 {
        match &self.chai {
            Some(c) if c.clusters.len() > 1 => (from..to)
                .map(|l| self.layer_s(s, Some(c.at(l as usize))))
                .sum(),
            Some(c) => f64::from(to - from) * self.layer_s(s, Some(c.at(0))),
            None => f64::from(to - from) * self.layer_s(s, None),
        }
    }

    /// Seconds for the LM head over `batch × new_tokens` positions.
    pub fn head_s(&self, s: Shape) -> f64 {
        let w = self.head_work(s);
        let tp = f64::from(self.tp);
        Work {
            flops: w.flops / tp,
            bytes: w.bytes / tp,
        }
        .time_s(&self.hw)
    }

    /// Seconds for one full forward (all layers, LM head, per-step overhead).
    pub fn forward_s(&self, s: Shape) -> f64 {
        self.layers_s(s, 0, self.arch.layers) + self.head_s(s) + self.hw.step_overhead_s
    }

    /// Bytes a forward must stream at least once (weights + KV cache): the bandwidth floor is
    /// this over the peak bandwidth.
    pub fn forward_bytes(&self, s: Shape) -> f64 {
        let layers = f64::from(self.arch.layers);
        layers
            * (self.layer_w_bytes
                + s.batch * (s.context_tokens + s.new_tokens) * 2.0 * self.kv_bytes_per_token_layer)
            + self.head_bytes
    }

    /// Device memory needed per GPU: weights plus a KV cache for `batch` sequences of
    /// `max_context` tokens, split over the tensor-parallel group.
    pub fn memory_bytes(&self, batch: f64, max_context: f64) -> f64 {
        (self.arch.param_count() as f64 * self.hw.dtype_bytes) / f64::from(self.tp)
            + batch * max_context * self.arch.kv_bytes_per_token(self.hw.dtype_bytes)
                / f64::from(self.tp.min(self.arch.kv_heads))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn model(name: &str, chai: Option<Vec<u32>>) -> ForwardModel {
        let c = Catalog::embedded().unwrap();
        let arch = c.llm(name).unwrap().clone();
        let hw = HwRates {
            flops_per_s: 1e15,
            bw_bytes_per_s: 4e12,
            attn_bw_bytes_per_s: 4e12,
            layer_overhead_s: 0.0,
            step_overhead_s: 0.0,
            host_layer_s: 0.0,
            score_elem_s: 0.0,
            multi_token_layer_s: 0.0,
            multi_row_layer_s: 0.0,
            attn_stream_bw_bytes_per_s: None,
            act_elem_s: 0.0,
            dtype_bytes: 2.0,
        };
        let chai = chai.map(|v| Chai::new(v, &arch).unwrap());
        ForwardModel::new(arch, hw, chai).unwrap()
    }

    #[test]
    fn batch1_decode_is_the_bandwidth_floor() {
        // Llama-2-7B, b = 1, n = 1, c = 0: memory bound; weights 6.74e9 × 2 B (minus the
        // embedding table, which a forward reads one row of) over 4e12 B/s.
        let m = model("llama-2-7b", None);
        let s = Shape {
            batch: 1.0,
            new_tokens: 1.0,
            context_tokens: 0.0,
        };
        let t = m.forward_s(s);
        let weights = (32.0 * m.arch.layer_params() as f64 + 32000.0 * 4096.0) * 2.0;
        let kv = 32.0 * 1.0 * 2.0 * 4096.0 * 2.0;
        let floor = (weights + kv) / 4e12;
        assert!((t - floor).abs() / floor < 1e-9, "{t} vs {floor}");
    }

    #[test]
    fn large_batch_becomes_compute_bound() {
        let m = model("llama-2-7b", None);
        let s = Shape {
            batch: 512.0,
            new_tokens: 8.0,
            context_tokens: 0.0,
        };
        let lin_compute = 32.0 * 512.0 * 8.0 * 2.0 * m.arch.layer_matmul_params() as f64 / 1e15;
        assert!(m.layers_s(s, 0, 32) >= lin_compute);
    }

    #[test]
    fn chai_reduces_time_and_never_increases_it() {
        let plain = model("llama-2-7b", None);
        let chai = model("llama-2-7b", Some(vec![8]));
        let s = Shape {
            batch: 8.0,
            new_tokens: 1.0,
            context_tokens: 4096.0,
        };
        assert!(chai.forward_s(s) < plain.forward_s(s));
        let all = model("llama-2-7b", Some(vec![32]));
        assert!((all.forward_s(s) - plain.forward_s(s)).abs() < 1e-15);
        let per_layer = model("llama-2-7b", Some(vec![8; 32]));
        assert!((per_layer.forward_s(s) - chai.forward_s(s)).abs() < 1e-12);
    }

    #[test]
    fn tensor_parallel_halves_the_memory_bound_time_plus_allreduce() {
        let one = model("llama-2-70b", None);
        let link = TpLink {
            bw_bytes_per_s: 450e9,
            latency_s: 10e-6,
        };
        let two = model("llama-2-70b", None).with_tp(2, link).unwrap();
        let s = Shape {
            batch: 1.0,
            new_tokens: 1.0,
            context_tokens: 1024.0,
        };
        // Memory bound at b = 1: per layer time halves, plus 2 all-reduces of 8192 × 2 bytes:
        // 10 µs + 2·(1/2)·16384 B / 450e9 B/s each.
        let ar = 10e-6 + 16384.0 / 450e9;
        let want = one.layers_s(s, 0, 80) / 2.0 + 80.0 * 2.0 * ar;
        assert!((two.layers_s(s, 0, 80) - want).abs() / want < 1e-9);
        assert!((two.memory_bytes(1.0, 1024.0) * 2.0 - one.memory_bytes(1.0, 1024.0)).abs() < 1.0);
        assert!(model("llama-2-70b", None).with_tp(3, link).is_err());
    }

    #[test]
    fn chai_validation() {
        let c = Catalog::embedded().unwrap();
        let arch = c.llm("llama-2-7b").unwrap();
        assert!(Chai::new(vec![0], arch).is_err());
        assert!(Chai::new(vec![33], arch).is_err());
        assert!(Chai::new(vec![4, 4], arch).is_err());
    }

    #[test]
    fn attention_is_stream_bound_at_small_batch_and_act_elems_add_per_row() {
        // Llama-2-7B layer (32 KV heads), b = 1, n = 1, c = 4095: KV bytes = 4096 · 2 · 4096 · 2
        // = 67,108,864. At 4e12 B/s that is 16.78 µs; with a 20 GB/s stream limit over 32
        // streams (640 GB/s) it is 104.86 µs, the binding bound. At b = 64 (2048 streams,
        // 40.96 TB/s) the attention bandwidth binds again. act_elem_s = 1e-10 adds
        // b·n·hidden·1e-10 = 4096e-10 s per layer at b = n = 1.
        let base = model("llama-2-7b", None);
        let mut hw = base.hw;
        hw.attn_stream_bw_bytes_per_s = Some(20e9);
        hw.act_elem_s = 1e-10;
        let m = ForwardModel::new(base.arch.clone(), hw, None).unwrap();
        let s1 = Shape {
            batch: 1.0,
            new_tokens: 1.0,
            context_tokens: 4095.0,
        };
        let w = m.layer_work(s1, None);
        assert_eq!(w.attn.bytes, 67_108_864.0);
        assert_eq!(w.attn_streams, 32.0);
        assert_eq!(w.attn.attn_regime(&hw, w.attn_streams), AttnRegime::Streams);
        let want = 67_108_864.0 / 640e9;
        assert!((w.attn.attn_time_s(&hw, 32.0) - want).abs() < 1e-15);
        let plain = base.layers_s(s1, 0, 1);
        let limited = m.layers_s(s1, 0, 1);
        let extra = want - 67_108_864.0 / 4e12 + 4096.0 * 1e-10;
        assert!(
            (limited - plain - extra).abs() < 1e-12,
            "{limited} {plain} {extra}"
        );
        let w64 = m.layer_work(Shape { batch: 64.0, ..s1 }, None);
        assert_eq!(
            w64.attn.attn_regime(&hw, w64.attn_streams),
            AttnRegime::Bandwidth
        );
        // Invalid values are refused by name.
        hw.attn_stream_bw_bytes_per_s = Some(0.0);
        assert!(ForwardModel::new(base.arch.clone(), hw, None)
            .unwrap_err()
            .to_string()
            .contains("attn_stream_bw_bytes_per_s"));
    }
}
