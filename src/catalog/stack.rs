//! Software stacks: the latency model's stack terms, kept apart from the GPU's hardware terms.
//!
//! The specdec latency model ([`crate::specdec::latency`]) multiplies *hardware terms* (a GPU's
//! datasheet bf16 peak, HBM bandwidth and NVLink bandwidth, [`super::Gpu`]) by *stack terms*:
//! kernel efficiencies relative to those peaks, and the fixed costs per layer, per forward and per
//! activation element that a given software stack (kernels, launches, graphs) adds
//! ([`super::LatencyDefaults`]). A stack measured on one GPU applies to another by keeping its
//! stack terms and swapping the hardware terms, so two GPUs can be compared on one footing.
//!
//! Stacks by name (`--stack` on the command line, `stack` in a scenario study):
//!
//! - `harness` (the default): the perfcast-gpu validation harness (candle kernels replayed from
//!   CUDA graphs, unfused attention), as `perfcast calibrate` fitted it from forward measurements:
//!   the GPU's own `calibration/<gpu>.toml` when it has one, else the reference GPU's
//!   ([`HARNESS_REFERENCE_GPU`]). Its measured end-to-end error (`<gpu>-validation.toml`) applies
//!   only on the GPU it was measured on.
//! - `datasheet`: the catalog's assumed efficiencies and overheads of the GPU (`[gpu.latency]` in
//!   `gpus.toml`: engineering guesses for a tuned engine, the same for the H100 and the H200).
//! - any other value: a TOML file in the calibration format (a `[latency]` table, optionally
//!   `gpu = "<catalog name>"` naming the GPU it was measured on and `[model.<name>.latency]`
//!   refits), so a calibration file written for one GPU can be applied to another.
//!
//! One stack term is an absolute rate: `attn_stream_bw_bytes_per_s`, the bandwidth one attention
//! stream reaches. A stack measured on GPU A applied to GPU B scales it by B's HBM bandwidth over
//! A's (a stream's share of the memory system is taken as the stack's property); every other
//! stack term is already relative to a peak or a fixed time.

use super::{Catalog, Gpu, GpuLatency, LatencyDefaults, LlmArch};
use crate::error::Result;
use std::path::PathBuf;

/// The GPU whose harness calibration the `harness` stack uses on GPUs without their own.
pub const HARNESS_REFERENCE_GPU: &str = "h200";

/// The name of the default stack.
pub const DEFAULT_STACK: &str = "harness";

/// A stack as a user names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackName {
    /// The validation harness's calibrated stack.
    Harness,
    /// The catalog's assumed (uncalibrated) efficiencies and overheads.
    Datasheet,
    /// A stack file in the calibration format.
    File(PathBuf),
}

impl StackName {
    /// `harness`, `datasheet` (case-insensitive) or a file path.
    pub fn parse(s: &str) -> Self {
        if s.eq_ignore_ascii_case("harness") {
            StackName::Harness
        } else if s.eq_ignore_ascii_case("datasheet") {
            StackName::Datasheet
        } else {
            StackName::File(PathBuf::from(s))
        }
    }
}

/// A resolved software stack for one GPU: its terms and where they come from.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Label for output: `harness`, `datasheet` or `file:<path>`.
    pub name: String,
    /// The catalog GPU the terms were measured on; None for assumed (datasheet) terms.
    pub measured_on: Option<String>,
    /// HBM bandwidth of `measured_on`, bytes/s (to transfer absolute rates to another GPU).
    measured_on_hbm_bw_bytes_per_s: Option<f64>,
    /// The terms: pooled and per-architecture.
    pub latency: GpuLatency,
}

impl Stack {
    /// Whether the terms come from measurements (a calibration) rather than assumptions.
    pub fn is_calibrated(&self) -> bool {
        self.measured_on.is_some()
    }

    /// The stack terms for `arch` on `gpu`: the architecture's refit when the stack has one, else
    /// the pooled terms, with `attn_stream_bw_bytes_per_s` scaled by `gpu`'s HBM bandwidth over
    /// that of the GPU the stack was measured on (unchanged on that GPU).
    pub fn terms(&self, arch: &LlmArch, gpu: &Gpu) -> LatencyDefaults {
        let mut t = *self.latency.for_model(arch);
        if let (Some(bw), Some(ref_bw)) = (
            t.attn_stream_bw_bytes_per_s,
            self.measured_on_hbm_bw_bytes_per_s,
        ) {
            t.attn_stream_bw_bytes_per_s = Some(bw * gpu.hbm_bw_bytes_per_s / ref_bw);
        }
        t
    }

    /// One line saying where the terms come from, for summaries.
    pub fn describe(&self) -> String {
        match (&self.measured_on, self.name.as_str()) {
            (None, _) => "datasheet (catalog's assumed efficiencies and overheads, uncalibrated)"
                .to_string(),
            (Some(g), "harness") => format!(
                "harness (perfcast-gpu harness stack: candle kernels from CUDA graphs, unfused attention; calibrated on {g}, models/calibration/{g}.toml)"
            ),
            (Some(g), n) => format!("{n} (stack terms measured on {g})"),
        }
    }
}

impl Catalog {
    /// Resolves stack `name` (see the module docs) for `gpu`.
    ///
    /// # Errors
    /// Unknown GPU; a stack file that cannot be read, is malformed, or names an unknown GPU or
    /// model; a malformed calibration file.
    pub fn stack(&self, name: &str, gpu: &str) -> Result<Stack> {
        let g = self.gpu(gpu)?;
        match StackName::parse(name) {
            StackName::Datasheet => Ok(Stack {
                name: "datasheet".into(),
                measured_on: None,
                measured_on_hbm_bw_bytes_per_s: None,
                latency: GpuLatency {
                    pooled: g.latency,
                    per_model: Default::default(),
                    held_out: Default::default(),
                },
            }),
            StackName::Harness => {
                let on = if self.is_calibrated(&g.name) {
                    Some(g)
                } else {
                    self.gpu(HARNESS_REFERENCE_GPU)
                        .ok()
                        .filter(|r| self.is_calibrated(&r.name))
                };
                match on {
                    Some(r) => Ok(Stack {
                        name: "harness".into(),
                        measured_on: Some(r.name.clone()),
                        measured_on_hbm_bw_bytes_per_s: Some(r.hbm_bw_bytes_per_s),
                        latency: self.latency(&r.name)?.clone(),
                    }),
                    // No harness calibration in this catalog: say so through the label.
                    None => Ok(Stack {
                        name: "datasheet".into(),
                        ..self.stack("datasheet", gpu)?
                    }),
                }
            }
            StackName::File(p) => {
                let (latency, on) = self.stack_file(&p)?;
                let on = on.map(|n| self.gpu(&n).cloned()).transpose()?;
                Ok(Stack {
                    name: format!("file:{}", p.display()),
                    measured_on_hbm_bw_bytes_per_s: on.as_ref().map(|g| g.hbm_bw_bytes_per_s),
                    // A file that does not say where it was measured is taken as measured on
                    // the GPU it is applied to (nothing to transfer).
                    measured_on: Some(on.map_or_else(|| g.name.clone(), |g| g.name)),
                    latency,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harness_transfers_and_datasheet_is_the_catalog_defaults() {
        let c = Catalog::embedded().unwrap();
        let arch = c.llm("llama-3.1-70b").unwrap();
        let (h200, h100) = (c.gpu("h200").unwrap(), c.gpu("h100").unwrap());
        let on200 = c.stack("harness", "h200").unwrap();
        let on100 = c.stack("HARNESS", "h100").unwrap();
        assert_eq!(on200.measured_on.as_deref(), Some("h200"));
        assert_eq!(on100.measured_on.as_deref(), Some("h200"));
        let (a, b) = (on200.terms(arch, h200), on100.terms(arch, h100));
        // Every relative term and fixed cost is the same; the stream rate scales by 3.35/4.8.
        assert_eq!(a.layer_overhead_s, b.layer_overhead_s);
        assert_eq!(a.bw_efficiency, b.bw_efficiency);
        let (sa, sb) = (
            a.attn_stream_bw_bytes_per_s.unwrap(),
            b.attn_stream_bw_bytes_per_s.unwrap(),
        );
        assert!((sb / sa - 3.35 / 4.8).abs() < 1e-12, "{sa} {sb}");
        assert_eq!(*on200.latency.for_model(arch), a);
        let d = c.stack("datasheet", "h100").unwrap();
        assert!(!d.is_calibrated());
        assert_eq!(d.terms(arch, h100), h100.latency);
        assert!(c.stack("harness", "h2000").is_err());
    }

    #[test]
    fn a_stack_file_is_read_validated_and_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.toml");
        std::fs::write(
            &p,
            "gpu = \"h200\"\n[latency]\nflops_efficiency = 0.5\nbw_efficiency = 0.5\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\nattn_stream_bw_bytes_per_s = 48e9\n",
        )
        .unwrap();
        let c = Catalog::embedded().unwrap();
        let s = c.stack(p.to_str().unwrap(), "h100").unwrap();
        assert_eq!(s.name, format!("file:{}", p.display()));
        assert_eq!(s.measured_on.as_deref(), Some("h200"));
        let t = s.terms(c.llm("llama-2-7b").unwrap(), c.gpu("h100").unwrap());
        assert_eq!(t.bw_efficiency, 0.5);
        assert!((t.attn_stream_bw_bytes_per_s.unwrap() - 48e9 * 3.35 / 4.8).abs() < 1.0);
        std::fs::write(&p, "gpu = \"h900\"\n[latency]\nflops_efficiency = 0.5\nbw_efficiency = 0.5\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n").unwrap();
        // A fresh catalog: files are parsed once per loaded catalog.
        let c = Catalog::embedded().unwrap();
        let e = c
            .stack(p.to_str().unwrap(), "h100")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown gpu 'h900'"), "{e}");
        std::fs::write(&p, "[latency]\nflops_efficiency = 2\nbw_efficiency = 0.5\nlayer_overhead_s = 1e-5\nstep_overhead_s = 1e-4\n").unwrap();
        let c = Catalog::embedded().unwrap();
        let e = c
            .stack(p.to_str().unwrap(), "h100")
            .unwrap_err()
            .to_string();
        assert!(e.contains("flops_efficiency"), "{e}");
        let e = c
            .stack("no/such/stack.toml", "h100")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no/such/stack.toml"), "{e}");
    }
}
