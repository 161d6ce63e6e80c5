//! Per-layer times of one training step: roofline on a catalog GPU, or a measured CSV.
//!
//! Roofline (Williams et al. 2009) per layer and pass at batch `b`, with effective rates
//! `P = peak(precision) · flops_efficiency` and `BW = hbm_bw · bw_efficiency`:
//!
//! ```text
//! t = max(FLOPs / P, bytes / BW) + kernels · kernel_overhead_s
//! forward      FLOPs = b·fwd_flops      bytes = params·a + b·mem_elems·a
//! input grad   FLOPs = b·igrad_flops    bytes = params·a + b·mem_elems·a      (0 for layer 0)
//! weight grad  FLOPs = b·wgrad_flops    bytes = b·(in+out)·a + 2·params·g      (0 without weights)
//! optimizer    bytes = params · optimizer.bytes_per_param()                    (0 without params)
//! ```
//!
//! where `a` is the activation dtype's bytes and `g` the gradient's (4: fp32 gradients, as with
//! PyTorch AMP's fp32 master weights). Layer 0's input is data and needs no gradient.
//!
//! # Measured profile CSV
//! One row per layer in forward order, header required, `#` lines are comments:
//!
//! | column | meaning |
//! | --- | --- |
//! | `layer` | layer name |
//! | `kind` | conv, linear, embedding, block, pool, head |
//! | `params` | parameters owned by the layer |
//! | `batch` | batch size the times were measured at (same on every row) |
//! | `forward_s` | forward time of the layer, seconds, at `batch` |
//! | `input_grad_s` | input-gradient time, seconds |
//! | `weight_grad_s` | weight-gradient time, seconds |
//! | `optimizer_s` | optimizer-step time of the layer's parameters, seconds |
//! | `out_act_bytes_per_sample` | output activation bytes per sample |
//! | `fwd_flops_per_sample` | optional: forward FLOPs per sample |

use super::{DnnModel, LayerKind};
use crate::catalog::Gpu;
use crate::check;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Numeric precision of activations and matmuls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// fp32 everywhere (fp32 CUDA-core peak).
    Fp32,
    /// fp32 storage, tf32 tensor-core matmuls.
    Tf32,
    /// fp16 mixed precision (AMP).
    Fp16,
    /// bf16 mixed precision (AMP).
    #[default]
    Bf16,
}

impl Precision {
    /// Bytes per activation element.
    pub fn act_bytes(self) -> f64 {
        match self {
            Precision::Fp32 | Precision::Tf32 => 4.0,
            Precision::Fp16 | Precision::Bf16 => 2.0,
        }
    }

    /// Peak matmul rate of `gpu` at this precision, FLOP/s.
    pub fn peak_flops(self, gpu: &Gpu) -> f64 {
        match self {
            Precision::Fp32 => gpu.fp32_flops,
            Precision::Tf32 => gpu.tf32_flops,
            Precision::Fp16 => gpu.fp16_flops,
            Precision::Bf16 => gpu.bf16_flops,
        }
    }

    /// Parses `fp32|tf32|fp16|bf16`.
    ///
    /// # Errors
    /// [`Error::UnknownName`].
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "fp32" => Ok(Precision::Fp32),
            "tf32" => Ok(Precision::Tf32),
            "fp16" => Ok(Precision::Fp16),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(Error::unknown(
                "precision",
                s,
                ["fp32", "tf32", "fp16", "bf16"],
            )),
        }
    }
}

/// Optimizer, by the memory traffic of one step (it is bandwidth-bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// Plain SGD: read p, g; write p (fp32): 12 bytes per parameter.
    Sgd,
    /// SGD with momentum: read p, g, m; write p, m: 20 bytes per parameter.
    Momentum,
    /// Adam / AdamW: read p, g, m, v; write p, m, v: 28 bytes per parameter.
    #[default]
    Adam,
}

impl Optimizer {
    /// Bytes moved per parameter by one step.
    pub fn bytes_per_param(self) -> f64 {
        match self {
            Optimizer::Sgd => 12.0,
            Optimizer::Momentum => 20.0,
            Optimizer::Adam => 28.0,
        }
    }

    /// Parses `sgd|momentum|adam|adamw`.
    ///
    /// # Errors
    /// [`Error::UnknownName`].
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sgd" => Ok(Optimizer::Sgd),
            "momentum" => Ok(Optimizer::Momentum),
            "adam" | "adamw" => Ok(Optimizer::Adam),
            _ => Err(Error::unknown(
                "optimizer",
                s,
                ["sgd", "momentum", "adam", "adamw"],
            )),
        }
    }
}

/// Roofline parameters for training-step layer times.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roofline {
    /// Fraction of the precision's peak reached by matmuls and convolutions, in (0, 1].
    pub flops_efficiency: f64,
    /// Fraction of HBM bandwidth reached by memory-bound kernels, in (0, 1].
    pub bw_efficiency: f64,
    /// Fixed cost per kernel launch, seconds.
    pub kernel_overhead_s: f64,
    /// Activation and matmul precision.
    pub precision: Precision,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// Bytes per gradient element (4 = fp32 gradients).
    pub grad_bytes: f64,
}

impl Roofline {
    /// Defaults for `gpu`: its catalog latency efficiencies, 4 µs per kernel, bf16 AMP, Adam, fp32
    /// gradients. Engineering guesses until calibrated.
    pub fn for_gpu(gpu: &Gpu) -> Self {
        Roofline {
            flops_efficiency: gpu.latency.flops_efficiency,
            bw_efficiency: gpu.latency.bw_efficiency,
            kernel_overhead_s: 4e-6,
            precision: Precision::Bf16,
            optimizer: Optimizer::Adam,
            grad_bytes: 4.0,
        }
    }

    /// Checks efficiencies in (0, 1], overhead ≥ 0 and gradient bytes in {2, 4}.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming the field.
    pub fn validate(&self) -> Result<()> {
        check::in_closed(
            "roofline.flops_efficiency",
            self.flops_efficiency,
            1e-6,
            1.0,
        )?;
        check::in_closed("roofline.bw_efficiency", self.bw_efficiency, 1e-6, 1.0)?;
        check::non_negative("roofline.kernel_overhead_s", self.kernel_overhead_s)?;
        if self.grad_bytes != 2.0 && self.grad_bytes != 4.0 {
            return Err(Error::range(
                "roofline.grad_bytes",
                self.grad_bytes,
                "2 or 4",
            ));
        }
        Ok(())
    }
}

/// Times and sizes of one layer for one training step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerProfile {
    /// Layer name.
    pub name: String,
    /// Layer kind.
    pub kind: LayerKind,
    /// Parameters owned by the layer.
    pub params: u64,
    /// Forward FLOPs per sample (0 when a measured profile does not give them).
    pub fwd_flops_per_sample: f64,
    /// Output activation bytes per sample, in the activation dtype.
    pub out_act_bytes_per_sample: f64,
    /// Forward time, seconds.
    pub forward_s: f64,
    /// Input-gradient time, seconds.
    pub input_grad_s: f64,
    /// Weight-gradient time, seconds.
    pub weight_grad_s: f64,
    /// Optimizer-step time of the layer's parameters, seconds.
    pub optimizer_s: f64,
}

impl LayerProfile {
    /// Backward time, `input_grad_s + weight_grad_s`.
    pub fn backward_s(&self) -> f64 {
        self.input_grad_s + self.weight_grad_s
    }
}

/// Per-layer profile of one training step at one batch size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Model name.
    pub model: String,
    /// Per-GPU batch (samples).
    pub batch: u32,
    /// Where the times come from (`roofline h200 bf16` or the CSV path).
    pub source: String,
    /// Bytes per gradient element.
    pub grad_bytes: f64,
    /// Layers in forward order.
    pub layers: Vec<LayerProfile>,
}

impl Profile {
    /// Roofline profile of `model` on `gpu` at per-GPU batch `batch`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for batch 0 or invalid roofline parameters.
    pub fn roofline(model: &DnnModel, gpu: &Gpu, batch: u32, rf: &Roofline) -> Result<Self> {
        if batch == 0 {
            return Err(Error::range("batch", 0, "an integer >= 1"));
        }
        rf.validate()?;
        let p = rf.precision.peak_flops(gpu) * rf.flops_efficiency;
        let bw = gpu.hbm_bw_bytes_per_s * rf.bw_efficiency;
        let a = rf.precision.act_bytes();
        let b = batch as f64;
        let k = rf.kernel_overhead_s;
        let t = |flops: f64, bytes: f64, kernels: f64| (flops / p).max(bytes / bw) + kernels * k;
        let layers = model
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let params = l.params();
                let pf = params as f64;
                let fwd = t(
                    b * l.fwd_flops_per_sample(),
                    pf * a + b * l.mem_elems_per_sample * a,
                    l.kernels as f64,
                );
                let igrad = if i == 0 {
                    0.0
                } else {
                    t(
                        b * l.input_grad_flops_per_sample(),
                        pf * a + b * l.mem_elems_per_sample * a,
                        l.kernels as f64,
                    )
                };
                let wg_flops = l.weight_grad_flops_per_sample();
                let wgrad = if params == 0 && wg_flops == 0.0 {
                    0.0
                } else {
                    let launches =
                        (l.weights.len() + usize::from(l.vector_params > 0)).max(1) as f64;
                    t(
                        b * wg_flops,
                        b * (l.in_elems_per_sample + l.out_elems_per_sample) * a
                            + 2.0 * pf * rf.grad_bytes,
                        launches,
                    )
                };
                let opt = if params == 0 {
                    0.0
                } else {
                    pf * rf.optimizer.bytes_per_param() / bw + k
                };
                LayerProfile {
                    name: l.name.clone(),
                    kind: l.kind,
                    params,
                    fwd_flops_per_sample: l.fwd_flops_per_sample(),
                    out_act_bytes_per_sample: l.out_elems_per_sample * a,
                    forward_s: fwd,
                    input_grad_s: igrad,
                    weight_grad_s: wgrad,
                    optimizer_s: opt,
                }
            })
            .collect();
        Ok(Profile {
            model: model.name.clone(),
            batch,
            source: format!(
                "roofline {} {:?} (flops_eff {}, bw_eff {})",
                gpu.name, rf.precision, rf.flops_efficiency, rf.bw_efficiency
            )
            .to_lowercase(),
            grad_bytes: rf.grad_bytes,
            layers,
        })
    }

    /// Reads a measured profile CSV (columns in the module docs).
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::Parse`] naming the file and line.
    pub fn from_csv(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_csv_str(&text, path)
    }

    /// Parses measured-profile CSV text; `path` names it in errors.
    ///
    /// # Errors
    /// [`Error::Parse`] naming the line: missing column, bad number, negative time, unknown kind,
    /// differing batch, no rows.
    pub fn from_csv_str(text: &str, path: &Path) -> Result<Self> {
        #[derive(Deserialize)]
        struct Row {
            layer: String,
            kind: String,
            params: u64,
            batch: u32,
            forward_s: f64,
            input_grad_s: f64,
            weight_grad_s: f64,
            optimizer_s: f64,
            out_act_bytes_per_sample: f64,
            #[serde(default)]
            fwd_flops_per_sample: Option<f64>,
        }
        let mut rdr = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers = rdr
            .headers()
            .map_err(|e| Error::parse(path, Some(1), e.to_string().replace('\n', " ")))?
            .clone();
        let mut layers = Vec::new();
        let mut batch = None;
        let mut rec = csv::StringRecord::new();
        loop {
            let more = rdr.read_record(&mut rec).map_err(|e| {
                let line = e.position().map(|p| p.line());
                Error::parse(path, line, e.to_string().replace('\n', " "))
            })?;
            if !more {
                break;
            }
            let line = rec.position().map(|p| p.line());
            let r: Row = rec
                .deserialize(Some(&headers))
                .map_err(|e| Error::parse(path, line, e.to_string().replace('\n', " ")))?;
            let kind =
                LayerKind::parse(&r.kind).map_err(|e| Error::parse(path, line, e.to_string()))?;
            for (f, v) in [
                ("forward_s", r.forward_s),
                ("input_grad_s", r.input_grad_s),
                ("weight_grad_s", r.weight_grad_s),
                ("optimizer_s", r.optimizer_s),
                ("out_act_bytes_per_sample", r.out_act_bytes_per_sample),
                (
                    "fwd_flops_per_sample",
                    r.fwd_flops_per_sample.unwrap_or(0.0),
                ),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(Error::parse(
                        path,
                        line,
                        format!("{f} = {v}: must be a finite number >= 0"),
                    ));
                }
            }
            if r.batch == 0 || batch.is_some_and(|b| b != r.batch) {
                return Err(Error::parse(
                    path,
                    line,
                    format!(
                        "batch = {}: must be >= 1 and the same on every row",
                        r.batch
                    ),
                ));
            }
            batch = Some(r.batch);
            layers.push(LayerProfile {
                name: r.layer,
                kind,
                params: r.params,
                fwd_flops_per_sample: r.fwd_flops_per_sample.unwrap_or(0.0),
                out_act_bytes_per_sample: r.out_act_bytes_per_sample,
                forward_s: r.forward_s,
                input_grad_s: r.input_grad_s,
                weight_grad_s: r.weight_grad_s,
                optimizer_s: r.optimizer_s,
            });
        }
        let Some(batch) = batch else {
            return Err(Error::parse(path, None, "no layer rows"));
        };
        Ok(Profile {
            model: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            batch,
            source: path.display().to_string(),
            grad_bytes: 4.0,
            layers,
        })
    }

    /// Total forward time, seconds.
    pub fn forward_s(&self) -> f64 {
        self.layers.iter().map(|l| l.forward_s).sum()
    }

    /// Total backward time (input + weight gradients), seconds.
    pub fn backward_s(&self) -> f64 {
        self.layers.iter().map(LayerProfile::backward_s).sum()
    }

    /// Total optimizer time, seconds.
    pub fn optimizer_s(&self) -> f64 {
        self.layers.iter().map(|l| l.optimizer_s).sum()
    }

    /// Compute time of one step on one GPU: forward + backward + optimizer, seconds.
    pub fn step_compute_s(&self) -> f64 {
        self.forward_s() + self.backward_s() + self.optimizer_s()
    }

    /// Total parameters.
    pub fn params(&self) -> u64 {
        self.layers.iter().map(|l| l.params).sum()
    }

    /// Gradient bytes of the whole model.
    pub fn grad_bytes_total(&self) -> f64 {
        self.params() as f64 * self.grad_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::dnn::model;

    fn setup(name: &str) -> (DnnModel, Gpu) {
        let c = Catalog::embedded().unwrap();
        (model(&c, name).unwrap(), c.gpu("h100").unwrap().clone())
    }

    /// Large-batch transformer blocks are compute-bound: forward = FLOPs / (peak · eff) +
    /// kernels · overhead exactly, backward = 2× forward weight matmuls + 2× attention.
    #[test]
    fn compute_bound_block_matches_hand_roofline() {
        let (m, g) = setup("bert-large");
        let rf = Roofline::for_gpu(&g);
        let p = Profile::roofline(&m, &g, 64, &rf).unwrap();
        let l = &m.layers[5];
        let lp = &p.layers[5];
        let rate = g.bf16_flops * rf.flops_efficiency;
        let want = 64.0 * l.fwd_flops_per_sample() / rate + 12.0 * rf.kernel_overhead_s;
        assert!(
            (lp.forward_s - want).abs() / want < 1e-12,
            "{} vs {want}",
            lp.forward_s
        );
        let wg = 64.0 * l.weight_flops_per_sample() / rate + 5.0 * rf.kernel_overhead_s;
        assert!((lp.weight_grad_s - wg).abs() / wg < 1e-12);
        // Backward / forward ≈ 2 when attention is small relative to weight matmuls (s = 128).
        let ratio = lp.backward_s() / lp.forward_s;
        assert!((1.9..2.2).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn first_layer_has_no_input_grad_and_pools_no_weight_grad_or_optimizer() {
        let (m, g) = setup("resnet-50");
        let p = Profile::roofline(&m, &g, 32, &Roofline::for_gpu(&g)).unwrap();
        assert_eq!(p.layers[0].input_grad_s, 0.0);
        let pool = p.layers.iter().find(|l| l.name == "maxpool").unwrap();
        assert_eq!(
            (pool.weight_grad_s, pool.optimizer_s, pool.params),
            (0.0, 0.0, 0)
        );
        assert!(pool.forward_s > 0.0 && pool.input_grad_s > 0.0);
        assert_eq!(p.params(), m.params());
        // bf16 activations: conv1 output 64×112×112 × 2 bytes
        assert_eq!(
            p.layers[0].out_act_bytes_per_sample,
            64.0 * 112.0 * 112.0 * 2.0
        );
    }

    /// Optimizer time is bandwidth-bound: params × 28 B / (bw · eff) + one launch.
    #[test]
    fn adam_time_is_bytes_over_bandwidth() {
        let (m, g) = setup("gpt2");
        let rf = Roofline::for_gpu(&g);
        let p = Profile::roofline(&m, &g, 8, &rf).unwrap();
        let bw = g.hbm_bw_bytes_per_s * rf.bw_efficiency;
        let want = m.params() as f64 * 28.0 / bw
            + rf.kernel_overhead_s * p.layers.iter().filter(|l| l.params > 0).count() as f64;
        assert!((p.optimizer_s() - want).abs() / want < 1e-12);
    }

    #[test]
    fn time_grows_with_batch_and_falls_with_precision() {
        let (m, g) = setup("vit-b16");
        let mut rf = Roofline::for_gpu(&g);
        let t8 = Profile::roofline(&m, &g, 8, &rf).unwrap().step_compute_s();
        let t64 = Profile::roofline(&m, &g, 64, &rf).unwrap().step_compute_s();
        // More work in total, less per sample (fixed costs amortize; optimizer is per step).
        assert!(t64 > 2.0 * t8 && t64 / 64.0 < t8 / 8.0, "{t64} vs {t8}");
        rf.precision = Precision::Fp32;
        let t64_fp32 = Profile::roofline(&m, &g, 64, &rf).unwrap().step_compute_s();
        assert!(t64_fp32 > 5.0 * t64);
        assert!(Profile::roofline(&m, &g, 0, &rf).is_err());
    }

    #[test]
    fn measured_csv_round_trip_and_errors() {
        let csv = "# measured on nothing; test data\n\
            layer,kind,params,batch,forward_s,input_grad_s,weight_grad_s,optimizer_s,out_act_bytes_per_sample\n\
            embeddings,embedding,100,8,0.001,0,0.002,0.0001,64\n\
            block.0,block,200,8,0.003,0.003,0.003,0.0002,64\n";
        let p = Profile::from_csv_str(csv, Path::new("m.csv")).unwrap();
        assert_eq!(p.batch, 8);
        assert_eq!(p.layers.len(), 2);
        assert!((p.backward_s() - 0.008).abs() < 1e-15);
        assert_eq!(p.params(), 300);
        let bad = csv.replace("0.003,0.003,0.003", "0.003,-1,0.003");
        let e = Profile::from_csv_str(&bad, Path::new("m.csv"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("m.csv:") && e.contains("input_grad_s = -1"),
            "{e}"
        );
        let bad = csv.replace("block,200,8", "lstm,200,8");
        assert!(Profile::from_csv_str(&bad, Path::new("m.csv"))
            .unwrap_err()
            .to_string()
            .contains("lstm"));
        let bad = csv.replace("block,200,8", "block,200,16");
        assert!(Profile::from_csv_str(&bad, Path::new("m.csv"))
            .unwrap_err()
            .to_string()
            .contains("batch = 16"));
        let e = Profile::from_csv_str("layer,kind\n", Path::new("m.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.csv"), "{e}");
    }
}
