//! GPU datasheet numbers and latency-model defaults.

use crate::check;
use crate::error::Result;
use serde::{Deserialize, Serialize};

/// One GPU of the catalog. Rates are dense tensor-core peaks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    /// Short name used on the command line (`h200`).
    pub name: String,
    /// Marketing name.
    pub full_name: String,
    /// Device memory, bytes.
    pub memory_bytes: f64,
    /// Peak device-memory bandwidth, bytes/s.
    pub hbm_bw_bytes_per_s: f64,
    /// Dense bf16 tensor-core peak, FLOP/s.
    pub bf16_flops: f64,
    /// Dense fp16 tensor-core peak, FLOP/s.
    pub fp16_flops: f64,
    /// Dense tf32 tensor-core peak, FLOP/s.
    pub tf32_flops: f64,
    /// fp32 (non-tensor) peak, FLOP/s.
    pub fp32_flops: f64,
    /// Per-GPU NVLink bandwidth (both directions), bytes/s, if the part has NVLink.
    #[serde(default)]
    pub nvlink_bw_bytes_per_s: Option<f64>,
    /// Host link (PCIe) bandwidth (both directions), bytes/s.
    #[serde(default)]
    pub pcie_bw_bytes_per_s: Option<f64>,
    /// Where the numbers come from.
    pub source: String,
    /// Defaults of the roofline latency model.
    pub latency: LatencyDefaults,
}

/// Defaults of the roofline latency model for one GPU (see [`crate::specdec::latency`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LatencyDefaults {
    /// Fraction of the bf16 peak reached by large matmuls, in (0, 1].
    pub flops_efficiency: f64,
    /// Fraction of the memory bandwidth reached by weight and KV streaming, in (0, 1].
    pub bw_efficiency: f64,
    /// Fraction of the memory bandwidth reached by attention's KV-cache reads, in (0, 1]
    /// (default: `bw_efficiency`). Fitted by `perfcast calibrate`.
    #[serde(default)]
    pub attn_bw_efficiency: Option<f64>,
    /// Fixed cost per transformer layer per forward (kernel launches, syncs), seconds.
    pub layer_overhead_s: f64,
    /// Fixed cost per forward (embedding, sampling, host work), seconds.
    pub step_overhead_s: f64,
    /// Host time to launch one layer's kernels, seconds: a layer never takes less (the GPU
    /// waits for the host). 0 = never host-bound. Fitted by `perfcast calibrate`.
    #[serde(default)]
    pub host_layer_s: f64,
    /// Time per attention-score element an unfused attention materialises, seconds (0 = fused
    /// attention). Fitted by `perfcast calibrate`.
    #[serde(default)]
    pub score_elem_s: f64,
    /// Extra fixed cost per layer of a forward with more than one new token per sequence
    /// (verification, prefill), seconds: kernels a single-token decode step does without (for
    /// example the layout copies of multi-token attention). 0 = decode and verification layers
    /// have the same fixed cost. Fitted by `perfcast calibrate`.
    #[serde(default)]
    pub multi_token_layer_s: f64,
    /// Extra fixed cost per layer of a forward with more than one token row in all (batch ×
    /// new tokens > 1), seconds: matrix-matrix kernels where a single row runs matrix-vector
    /// ones. 0 = no difference. Fitted by `perfcast calibrate`.
    #[serde(default)]
    pub multi_row_layer_s: f64,
    /// Bandwidth of one attention stream (one sequence's KV head), bytes/s: attention reads the
    /// KV cache no faster than streams × this. Absent = no per-stream limit. Fitted by
    /// `perfcast calibrate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attn_stream_bw_bytes_per_s: Option<f64>,
    /// Time per activation element (token row × hidden) per layer of the unfused element-wise
    /// kernels, seconds (0 = fused). Fitted by `perfcast calibrate`.
    #[serde(default)]
    pub act_elem_s: f64,
}

impl Gpu {
    /// Checks that every number is positive and finite.
    ///
    /// # Errors
    /// [`crate::Error::OutOfRange`] naming the field.
    pub fn validate(&self) -> Result<()> {
        let f = |field: &str, v: f64| check::positive(&format!("gpu.{}.{field}", self.name), v);
        f("memory_bytes", self.memory_bytes)?;
        f("hbm_bw_bytes_per_s", self.hbm_bw_bytes_per_s)?;
        f("bf16_flops", self.bf16_flops)?;
        f("fp16_flops", self.fp16_flops)?;
        f("tf32_flops", self.tf32_flops)?;
        f("fp32_flops", self.fp32_flops)?;
        self.latency.validate(&format!("gpu.{}.latency", self.name))
    }
}

impl LatencyDefaults {
    /// Checks efficiencies in (0, 1] and overheads ≥ 0.
    ///
    /// # Errors
    /// [`crate::Error::OutOfRange`] naming the field under `prefix`.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        check::in_closed(
            &format!("{prefix}.flops_efficiency"),
            self.flops_efficiency,
            1e-6,
            1.0,
        )?;
        check::in_closed(
            &format!("{prefix}.bw_efficiency"),
            self.bw_efficiency,
            1e-6,
            1.0,
        )?;
        if let Some(a) = self.attn_bw_efficiency {
            check::in_closed(&format!("{prefix}.attn_bw_efficiency"), a, 1e-6, 1.0)?;
        }
        check::non_negative(&format!("{prefix}.layer_overhead_s"), self.layer_overhead_s)?;
        check::non_negative(&format!("{prefix}.step_overhead_s"), self.step_overhead_s)?;
        check::non_negative(&format!("{prefix}.host_layer_s"), self.host_layer_s)?;
        check::non_negative(&format!("{prefix}.score_elem_s"), self.score_elem_s)?;
        check::non_negative(
            &format!("{prefix}.multi_token_layer_s"),
            self.multi_token_layer_s,
        )?;
        check::non_negative(
            &format!("{prefix}.multi_row_layer_s"),
            self.multi_row_layer_s,
        )?;
        check::non_negative(&format!("{prefix}.act_elem_s"), self.act_elem_s)?;
        if let Some(bw) = self.attn_stream_bw_bytes_per_s {
            check::positive(&format!("{prefix}.attn_stream_bw_bytes_per_s"), bw)?;
        }
        Ok(())
    }
}
