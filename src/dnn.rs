//! DNN layer profiles for training-time models (data-parallel gradients, layer freezing).
//!
//! A [`DnnModel`] is a list of [`Layer`]s in forward order, derived from a few architecture numbers
//! in `models/dnn/models.toml` (see [`arch`]): ResNet-50/101, VGG-16, BERT-base/large, GPT-2
//! small/medium, RoBERTa-base, ViT-B/16. Each layer knows its weight matrices (shape and how many
//! positions of a sample each one is applied at), its other parameters (biases, norms), its forward
//! FLOPs per sample and the activation elements it reads, writes and outputs. Transformers are
//! grouped per block (embeddings and the head are their own layers); CNNs are per convolution (with
//! its batch norm and activation folded in) plus pooling and fully-connected layers.
//!
//! A [`Profile`] turns a model into per-layer times for one training step at a batch size: forward,
//! input gradient, weight gradient and optimizer time, from a roofline on a catalog
//! [`Gpu`](crate::catalog::Gpu) ([`Profile::roofline`]) or read from a measured CSV
//! ([`Profile::from_csv`]). Backward ≈ input-grad + weight-grad, each about the forward FLOPs of the
//! layer's weight matmuls (the standard 1:2 forward:backward ratio, e.g. Narayanan et al. 2021,
//! "Efficient Large-Scale Language Model Training on GPU Clusters", §5.1); matmuls between two
//! activations (attention scores and values) have no weight gradient and an input gradient of twice
//! their forward FLOPs.

pub mod arch;
pub mod profile;

pub use arch::{DnnSpec, HeadKind, ResNetSpec, TransformerSpec, VggSpec};
pub use profile::{LayerProfile, Optimizer, Precision, Profile, Roofline};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Catalog path of the DNN architecture file (relative to `models/`).
pub const MODELS_FILE: &str = "dnn/models.toml";

/// What a layer is (decides nothing in the timing model; lets policies select layers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    /// Convolution (+ batch norm + activation folded in).
    Conv,
    /// Fully-connected layer (+ activation).
    Linear,
    /// Token / position / patch embeddings.
    Embedding,
    /// One transformer block (attention + MLP + norms + residuals).
    Block,
    /// Pooling (no parameters).
    Pool,
    /// Output head (pooler, classifier or LM head, with its final norm and the loss).
    Head,
}

impl LayerKind {
    /// Lower-case name, as in CSV files.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerKind::Conv => "conv",
            LayerKind::Linear => "linear",
            LayerKind::Embedding => "embedding",
            LayerKind::Block => "block",
            LayerKind::Pool => "pool",
            LayerKind::Head => "head",
        }
    }

    /// Parses a lower-case name.
    ///
    /// # Errors
    /// [`Error::UnknownName`] with the known kinds.
    pub fn parse(s: &str) -> Result<Self> {
        const ALL: [LayerKind; 6] = [
            LayerKind::Conv,
            LayerKind::Linear,
            LayerKind::Embedding,
            LayerKind::Block,
            LayerKind::Pool,
            LayerKind::Head,
        ];
        ALL.into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| Error::unknown("layer kind", s, ALL.iter().map(|k| k.as_str())))
    }
}

/// One weight matrix of a layer. Applying it to one position costs `2·rows·cols` FLOPs (a
/// convolution is a matrix of `cin·k² × cout` applied at every output pixel; an embedding table is
/// a lookup, `positions_per_sample = 0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weight {
    /// Name inside the layer (`qkv`, `fc1`, `conv`, `word`).
    pub name: String,
    /// Input dimension (`cin·k²` for a convolution).
    pub rows: u64,
    /// Output dimension.
    pub cols: u64,
    /// Positions of one sample the matrix is applied at (tokens, output pixels; 0 for a lookup).
    pub positions_per_sample: f64,
}

impl Weight {
    /// Builds a weight.
    pub fn new(name: &str, rows: u64, cols: u64, positions_per_sample: f64) -> Self {
        Weight {
            name: name.to_string(),
            rows,
            cols,
            positions_per_sample,
        }
    }

    /// Parameters, `rows·cols`.
    pub fn params(&self) -> u64 {
        self.rows * self.cols
    }

    /// Forward FLOPs per sample, `2·rows·cols·positions`.
    pub fn flops_per_sample(&self) -> f64 {
        2.0 * self.rows as f64 * self.cols as f64 * self.positions_per_sample
    }
}

/// One layer of a [`DnnModel`], architecture-derived quantities only (no hardware).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Name (`layer1.0.conv2`, `block.3`, `embeddings`, `head`).
    pub name: String,
    /// What the layer is.
    pub kind: LayerKind,
    /// Weight matrices owned by the layer.
    pub weights: Vec<Weight>,
    /// Other parameters (biases, norm scales and shifts, class tokens).
    pub vector_params: u64,
    /// Matmul FLOPs per sample against a weight owned by another layer (a tied LM head).
    pub tied_flops_per_sample: f64,
    /// Matmul FLOPs per sample between two activations (attention scores and values); backward
    /// costs twice this in input gradients and nothing in weight gradients.
    pub act_flops_per_sample: f64,
    /// Activation elements per sample entering the layer.
    pub in_elems_per_sample: f64,
    /// Activation elements per sample leaving the layer (what a frozen-prefix cache stores).
    pub out_elems_per_sample: f64,
    /// Activation elements per sample read plus written by the forward (all kernels of the layer).
    pub mem_elems_per_sample: f64,
    /// Kernels launched by the forward.
    pub kernels: u32,
}

impl Layer {
    /// Parameters owned by the layer.
    pub fn params(&self) -> u64 {
        self.weights.iter().map(Weight::params).sum::<u64>() + self.vector_params
    }

    /// Forward FLOPs per sample: weight matmuls + tied matmuls + activation matmuls.
    pub fn fwd_flops_per_sample(&self) -> f64 {
        self.weight_flops_per_sample() + self.tied_flops_per_sample + self.act_flops_per_sample
    }

    /// Forward FLOPs per sample of the layer's own weight matmuls.
    pub fn weight_flops_per_sample(&self) -> f64 {
        self.weights.iter().map(Weight::flops_per_sample).sum()
    }

    /// Input-gradient FLOPs per sample: one matmul per weight use, two per activation matmul.
    pub fn input_grad_flops_per_sample(&self) -> f64 {
        self.weight_flops_per_sample()
            + self.tied_flops_per_sample
            + 2.0 * self.act_flops_per_sample
    }

    /// Weight-gradient FLOPs per sample: one matmul per weight use (tied uses included).
    pub fn weight_grad_flops_per_sample(&self) -> f64 {
        self.weight_flops_per_sample() + self.tied_flops_per_sample
    }
}

/// A model: layers in forward order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnnModel {
    /// Catalog name.
    pub name: String,
    /// Published parameter count of the reference implementation.
    pub published_params: f64,
    /// Where the architecture and the count come from.
    pub source: String,
    /// What one sample is (`image` or `sequence of N tokens`).
    pub sample: String,
    /// Layers in forward order.
    pub layers: Vec<Layer>,
}

impl DnnModel {
    /// Total parameters.
    pub fn params(&self) -> u64 {
        self.layers.iter().map(Layer::params).sum()
    }

    /// Forward FLOPs per sample.
    pub fn fwd_flops_per_sample(&self) -> f64 {
        self.layers.iter().map(Layer::fwd_flops_per_sample).sum()
    }

    /// Index of the layer called `name`.
    ///
    /// # Errors
    /// [`Error::UnknownName`] with the nearest layer name.
    pub fn layer_index(&self, name: &str) -> Result<usize> {
        self.layers
            .iter()
            .position(|l| l.name == name)
            .ok_or_else(|| {
                Error::unknown("layer", name, self.layers.iter().map(|l| l.name.as_str()))
            })
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelsFile {
    dnn: Vec<DnnSpec>,
}

/// Every DNN architecture spec of the catalog, validated, in file order.
///
/// # Errors
/// [`Error::Parse`] for malformed TOML, [`Error::OutOfRange`] for an invalid spec.
pub fn specs(cat: &Catalog) -> Result<Vec<DnnSpec>> {
    let file: ModelsFile = cat.parse_toml(MODELS_FILE)?;
    for s in &file.dnn {
        s.validate()?;
    }
    Ok(file.dnn)
}

/// The catalog model `name` with its tokens per sample set to `seq` (text transformers only;
/// `None` keeps the catalog's `seq_len`).
///
/// # Errors
/// As [`model`]; `seq` for a model that is not a text transformer, or outside
/// `[1, max_positions]`, naming `seq`.
pub fn model_with_seq(cat: &Catalog, name: &str, seq: Option<u32>) -> Result<DnnModel> {
    let Some(seq) = seq else {
        return model(cat, name);
    };
    let all = specs(cat)?;
    let mut spec = all
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| Error::unknown("model", name, all.iter().map(|s| s.name.as_str())))?
        .clone();
    match spec.transformer.as_mut() {
        Some(t) if t.patch == 0 => {
            let max = if t.max_positions > 0 {
                t.max_positions
            } else {
                u32::MAX
            };
            if seq == 0 || seq > max {
                return Err(Error::range(
                    "seq",
                    seq,
                    format!("an integer in [1, {max}] (max_positions of {})", spec.name),
                ));
            }
            t.seq_len = seq;
        }
        _ => {
            return Err(Error::range(
                "seq",
                seq,
                format!("used with a text transformer ({} is not one)", spec.name),
            ))
        }
    }
    Ok(spec.build())
}

/// Names of the DNN models of the catalog.
///
/// # Errors
/// As [`specs`].
pub fn names(cat: &Catalog) -> Result<Vec<String>> {
    Ok(specs(cat)?.into_iter().map(|s| s.name).collect())
}

/// Builds the model called `name` (case-insensitive) from the catalog.
///
/// # Errors
/// [`Error::UnknownName`] with the nearest name, or as [`specs`].
pub fn model(cat: &Catalog, name: &str) -> Result<DnnModel> {
    let all = specs(cat)?;
    let spec = all
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| Error::unknown("model", name, all.iter().map(|s| s.name.as_str())))?;
    Ok(spec.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalog {
        Catalog::embedded().unwrap()
    }

    #[test]
    fn every_required_model_is_in_the_catalog() {
        let names = names(&cat()).unwrap();
        for m in [
            "resnet-50",
            "resnet-101",
            "vgg-16",
            "bert-base",
            "bert-large",
            "gpt2",
            "gpt2-medium",
            "roberta-base",
            "vit-b16",
        ] {
            assert!(names.iter().any(|n| n == m), "{m} missing from {names:?}");
        }
    }

    /// Derived totals against the published counts of the reference implementations (cited in
    /// `models/dnn/models.toml`); tolerance 1%.
    #[test]
    fn parameter_counts_match_published_within_one_percent() {
        let c = cat();
        for s in specs(&c).unwrap() {
            let m = s.build();
            let derived = m.params() as f64;
            let err = (derived - m.published_params).abs() / m.published_params;
            assert!(
                err < 0.01,
                "{}: derived {derived} vs published {} ({:.3}% off, tolerance 1%)",
                m.name,
                m.published_params,
                err * 100.0
            );
        }
    }

    /// Exact counts where the layer structure matches the reference implementation exactly
    /// (torchvision CNNs, timm ViT): any difference is a derivation bug.
    #[test]
    fn cnn_and_vit_counts_are_exact() {
        let c = cat();
        for (name, want) in [
            ("resnet-50", 25_557_032u64),
            ("resnet-101", 44_549_160),
            ("vgg-16", 138_357_544),
            ("vit-b16", 86_567_656),
            ("gpt2", 124_439_808),
            ("gpt2-medium", 354_823_168),
        ] {
            assert_eq!(model(&c, name).unwrap().params(), want, "{name}");
        }
        // BERT/RoBERTa: published BertModel/RobertaModel + a 2-class classifier (768·2 + 2).
        assert_eq!(model(&c, "bert-base").unwrap().params(), 109_482_240 + 1538);
        assert_eq!(
            model(&c, "roberta-base").unwrap().params(),
            124_645_632 + 1538
        );
        assert_eq!(
            model(&c, "bert-large").unwrap().params(),
            335_141_888 + 2050
        );
    }

    /// Forward FLOPs per sample against torchvision's model-card figures, which count
    /// multiply-accumulates (ResNet-50 4.09 G, ResNet-101 7.80 G, VGG-16 15.47 G, ViT-B/16
    /// 17.56 G; we count 2 FLOPs per MAC and only matmuls/convolutions), tolerance 5%; GPT-2 small
    /// against 2·(non-embedding params + tied head)·s + causal attention, tolerance 1%.
    #[test]
    fn forward_flops_match_quoted_figures() {
        let c = cat();
        let gmac = |n: &str| model(&c, n).unwrap().fwd_flops_per_sample() / 2e9;
        let close = |got: f64, want: f64| (got - want).abs() / want < 0.05;
        assert!(
            close(gmac("resnet-50"), 4.09),
            "resnet-50 {}",
            gmac("resnet-50")
        );
        assert!(
            close(gmac("resnet-101"), 7.80),
            "resnet-101 {}",
            gmac("resnet-101")
        );
        assert!(close(gmac("vgg-16"), 15.47), "vgg-16 {}", gmac("vgg-16"));
        assert!(close(gmac("vit-b16"), 17.56), "vit-b16 {}", gmac("vit-b16"));
        // GPT-2 small at 1024 tokens: 2·(non-embedding params + tied head)·s + causal attention.
        let m = model(&c, "gpt2").unwrap();
        let (s, d, v, l) = (1024.0, 768.0, 50257.0, 12.0);
        let want = 2.0 * (l * 12.0 * d * d + d * v) * s + l * 2.0 * s * s * d;
        let got = m.fwd_flops_per_sample();
        assert!((got - want).abs() / want < 0.01, "gpt2 {got} vs {want}");
    }

    #[test]
    fn transformers_are_grouped_per_block_with_embeddings_and_head_separate() {
        let m = model(&cat(), "bert-large").unwrap();
        assert_eq!(m.layers.len(), 24 + 2);
        assert_eq!(m.layers[0].kind, LayerKind::Embedding);
        assert_eq!(m.layers[0].name, "embeddings");
        assert!(m.layers[1..25].iter().all(|l| l.kind == LayerKind::Block));
        assert_eq!(m.layers[25].kind, LayerKind::Head);
        assert_eq!(m.layer_index("block.23").unwrap(), 24);
        assert!(m.layer_index("block.24").is_err());
    }

    #[test]
    fn unknown_model_suggests_nearest() {
        let e = model(&cat(), "resnet50").unwrap_err().to_string();
        assert!(
            e.contains("unknown model 'resnet50'") && e.contains("resnet-50"),
            "{e}"
        );
    }

    #[test]
    fn layer_kind_round_trips() {
        for k in ["conv", "linear", "embedding", "block", "pool", "head"] {
            assert_eq!(LayerKind::parse(k).unwrap().as_str(), k);
        }
        assert!(LayerKind::parse("lstm").is_err());
    }
}
