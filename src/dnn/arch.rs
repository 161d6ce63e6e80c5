//! Architecture specs (`models/dnn/models.toml`) and the generators that turn them into layers.
//!
//! Conventions, per sample (one image or one sequence):
//! - A convolution `cin → cout` with a `k×k` kernel is a weight of `cin·k² × cout` applied at every
//!   output pixel; its batch norm (2·cout parameters) and activation are folded into the layer.
//!   Memory traffic counts the conv input and output plus one read and one write of the output per
//!   following elementwise kernel (batch norm, ReLU, residual add).
//! - A transformer block has weights `qkv` (d × 3d), `out` (d × d), `fc1` (d × f), `fc2` (f × d)
//!   applied at every token, biases and two LayerNorms as vector parameters, and attention matmuls
//!   `QKᵀ` and `AV` of `2·s²·d` FLOPs each (halved when causal, as flash attention skips the
//!   masked half). Memory traffic assumes fused (flash) attention: `22·s·d + 4·s·f` elements
//!   (norms, projections, residual adds, GELU), the score matrix never reaching memory.
//! - Embedding tables are lookups (no FLOPs); a tied LM head multiplies by the word table, which
//!   stays owned by the embeddings layer.

use super::{DnnModel, Layer, LayerKind, Weight};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// One `[[dnn]]` entry: name, provenance and exactly one family sub-table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnnSpec {
    /// Catalog name (`resnet-50`).
    pub name: String,
    /// Parameter count of the reference implementation named in `source`.
    pub published_params: f64,
    /// Paper and reference implementation.
    pub source: String,
    /// Bottleneck ResNet.
    #[serde(default)]
    pub resnet: Option<ResNetSpec>,
    /// VGG-style plain CNN.
    #[serde(default)]
    pub vgg: Option<VggSpec>,
    /// Transformer encoder or decoder (BERT, GPT-2, RoBERTa, ViT).
    #[serde(default)]
    pub transformer: Option<TransformerSpec>,
}

/// Bottleneck ResNet (He et al. 2016), torchvision v1.5 layout (stride on the 3×3 conv).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetSpec {
    /// Bottleneck blocks per stage (ResNet-50: `[3, 4, 6, 3]`).
    pub blocks: Vec<u32>,
    /// Input image side, pixels.
    pub image_size: u32,
    /// Output classes.
    pub classes: u32,
}

/// VGG-style CNN: 3×3 convolutions with biases and ReLU, 2×2 max-pools, fully-connected layers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VggSpec {
    /// Output channels of each conv in order; `0` is a 2×2 max-pool.
    pub convs: Vec<u32>,
    /// Hidden fully-connected widths.
    pub fc: Vec<u32>,
    /// Input image side, pixels.
    pub image_size: u32,
    /// Output classes.
    pub classes: u32,
}

/// Output head of a transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    /// Dense d×d + tanh on the first token, then a classifier (BERT pooler, RoBERTa head).
    Pooled,
    /// A classifier on the first token (ViT).
    Linear,
    /// Language-model head tied to the word embeddings, over every token, with the loss.
    LmTied,
}

fn three() -> u32 {
    3
}

/// Transformer (post- or pre-norm does not matter for the counts).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerSpec {
    /// Model width d.
    pub hidden: u32,
    /// Blocks.
    pub layers: u32,
    /// Attention heads (must divide `hidden`).
    pub heads: u32,
    /// MLP inner width f.
    pub ffn: u32,
    /// Vocabulary (0 for a vision transformer).
    #[serde(default)]
    pub vocab: u32,
    /// Rows of the learned position table (text models; ViT derives it from the patches).
    #[serde(default)]
    pub max_positions: u32,
    /// Rows of the token-type table (0 = none).
    #[serde(default)]
    pub token_types: u32,
    /// LayerNorm after the embeddings (BERT, RoBERTa).
    #[serde(default)]
    pub embed_layernorm: bool,
    /// LayerNorm before the head (GPT-2, ViT).
    #[serde(default)]
    pub final_layernorm: bool,
    /// Causal attention (decoder).
    #[serde(default)]
    pub causal: bool,
    /// Tokens per training sample (text models).
    #[serde(default)]
    pub seq_len: u32,
    /// Patch side in pixels (vision transformer; 0 for text).
    #[serde(default)]
    pub patch: u32,
    /// Image side in pixels (vision transformer).
    #[serde(default)]
    pub image_size: u32,
    /// Image channels (vision transformer).
    #[serde(default = "three")]
    pub channels: u32,
    /// Output head.
    pub head: HeadKind,
    /// Classes of a `pooled` or `linear` head.
    #[serde(default)]
    pub classes: u32,
}

impl DnnSpec {
    /// Checks the spec is buildable.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming `dnn.<name>.<field>`.
    pub fn validate(&self) -> Result<()> {
        let p = |f: &str| format!("dnn.{}.{f}", self.name);
        let pos = |f: &str, v: u32| -> Result<()> {
            if v == 0 {
                Err(Error::range(p(f), v, "an integer >= 1"))
            } else {
                Ok(())
            }
        };
        crate::check::positive(&p("published_params"), self.published_params)?;
        let families = [
            self.resnet.is_some(),
            self.vgg.is_some(),
            self.transformer.is_some(),
        ];
        if families.iter().filter(|&&b| b).count() != 1 {
            return Err(Error::range(
                p("family"),
                format!("{} sub-tables", families.iter().filter(|&&b| b).count()),
                "exactly one of [dnn.resnet], [dnn.vgg], [dnn.transformer]",
            ));
        }
        if let Some(r) = &self.resnet {
            if r.blocks.is_empty() || r.blocks.contains(&0) {
                return Err(Error::range(
                    p("resnet.blocks"),
                    format!("{:?}", r.blocks),
                    "non-empty, each >= 1",
                ));
            }
            pos("resnet.classes", r.classes)?;
            if r.image_size < 32 {
                return Err(Error::range(
                    p("resnet.image_size"),
                    r.image_size,
                    "an integer >= 32",
                ));
            }
        }
        if let Some(v) = &self.vgg {
            pos("vgg.classes", v.classes)?;
            let pools = v.convs.iter().filter(|&&c| c == 0).count() as u32;
            if v.convs.iter().all(|&c| c == 0) || v.image_size >> pools == 0 {
                return Err(Error::range(
                    p("vgg.convs"),
                    format!("{:?}", v.convs),
                    "at least one conv and fewer pools than log2(image_size)",
                ));
            }
        }
        if let Some(t) = &self.transformer {
            pos("transformer.hidden", t.hidden)?;
            pos("transformer.layers", t.layers)?;
            pos("transformer.heads", t.heads)?;
            pos("transformer.ffn", t.ffn)?;
            if t.hidden % t.heads != 0 {
                return Err(Error::range(
                    p("transformer.heads"),
                    t.heads,
                    format!("a divisor of hidden = {}", t.hidden),
                ));
            }
            if t.patch > 0 {
                pos("transformer.image_size", t.image_size)?;
                pos("transformer.channels", t.channels)?;
                if t.image_size % t.patch != 0 {
                    return Err(Error::range(
                        p("transformer.patch"),
                        t.patch,
                        format!("a divisor of image_size = {}", t.image_size),
                    ));
                }
                if t.head == HeadKind::LmTied {
                    return Err(Error::range(
                        p("transformer.head"),
                        "lm-tied",
                        "pooled or linear for a vision transformer",
                    ));
                }
            } else {
                pos("transformer.vocab", t.vocab)?;
                pos("transformer.seq_len", t.seq_len)?;
                if t.max_positions > 0 && t.seq_len > t.max_positions {
                    return Err(Error::range(
                        p("transformer.seq_len"),
                        t.seq_len,
                        format!("an integer in [1, {}] (max_positions)", t.max_positions),
                    ));
                }
            }
            if t.head != HeadKind::LmTied {
                pos("transformer.classes", t.classes)?;
            }
        }
        Ok(())
    }

    /// Builds the layer list. Call [`DnnSpec::validate`] first (catalog loading does).
    pub fn build(&self) -> DnnModel {
        let (sample, layers) = if let Some(r) = &self.resnet {
            ("image".to_string(), resnet(r))
        } else if let Some(v) = &self.vgg {
            ("image".to_string(), vgg(v))
        } else if let Some(t) = &self.transformer {
            let s = t.tokens();
            let what = if t.patch > 0 { "image" } else { "sequence" };
            (format!("{what} of {s} tokens"), transformer(t))
        } else {
            (String::new(), Vec::new())
        };
        DnnModel {
            name: self.name.clone(),
            published_params: self.published_params,
            source: self.source.clone(),
            sample,
            layers,
        }
    }
}

/// A convolution layer with folded batch norm and `elementwise` following elementwise kernels.
#[allow(clippy::too_many_arguments)]
fn conv(
    name: &str,
    cin: u64,
    cout: u64,
    k: u64,
    hin: u64,
    hout: u64,
    bn: bool,
    bias: bool,
    elementwise: u32,
) -> Layer {
    let in_elems = (cin * hin * hin) as f64;
    let out_elems = (cout * hout * hout) as f64;
    Layer {
        name: name.to_string(),
        kind: LayerKind::Conv,
        weights: vec![Weight::new("conv", cin * k * k, cout, (hout * hout) as f64)],
        vector_params: if bn { 2 * cout } else { 0 } + if bias { cout } else { 0 },
        tied_flops_per_sample: 0.0,
        act_flops_per_sample: 0.0,
        in_elems_per_sample: in_elems,
        out_elems_per_sample: out_elems,
        mem_elems_per_sample: in_elems + out_elems * (1.0 + 2.0 * elementwise as f64),
        kernels: 1 + elementwise,
    }
}

fn pool(name: &str, in_elems: f64, out_elems: f64) -> Layer {
    Layer {
        name: name.to_string(),
        kind: LayerKind::Pool,
        weights: Vec::new(),
        vector_params: 0,
        tied_flops_per_sample: 0.0,
        act_flops_per_sample: 0.0,
        in_elems_per_sample: in_elems,
        out_elems_per_sample: out_elems,
        mem_elems_per_sample: in_elems + out_elems,
        kernels: 1,
    }
}

fn linear(name: &str, kind: LayerKind, din: u64, dout: u64, elementwise: u32) -> Layer {
    Layer {
        name: name.to_string(),
        kind,
        weights: vec![Weight::new("fc", din, dout, 1.0)],
        vector_params: dout,
        tied_flops_per_sample: 0.0,
        act_flops_per_sample: 0.0,
        in_elems_per_sample: din as f64,
        out_elems_per_sample: dout as f64,
        mem_elems_per_sample: (din + dout * (1 + 2 * elementwise as u64)) as f64,
        kernels: 1 + elementwise,
    }
}

fn resnet(r: &ResNetSpec) -> Vec<Layer> {
    let mut layers = Vec::new();
    let h0 = r.image_size as u64;
    let h1 = (h0 + 2 * 3 - 7) / 2 + 1;
    layers.push(conv("conv1", 3, 64, 7, h0, h1, true, false, 2));
    let h2 = (h1 + 2 - 3) / 2 + 1;
    layers.push(pool(
        "maxpool",
        (64 * h1 * h1) as f64,
        (64 * h2 * h2) as f64,
    ));
    let (mut cin, mut h) = (64u64, h2);
    for (stage, &n) in r.blocks.iter().enumerate() {
        let w = 64u64 << stage;
        for b in 0..n as u64 {
            let s = if stage > 0 && b == 0 { 2 } else { 1 };
            let hout = (h - 1) / s + 1;
            let pre = format!("layer{}.{b}", stage + 1);
            layers.push(conv(
                &format!("{pre}.conv1"),
                cin,
                w,
                1,
                h,
                h,
                true,
                false,
                2,
            ));
            layers.push(conv(
                &format!("{pre}.conv2"),
                w,
                w,
                3,
                h,
                hout,
                true,
                false,
                2,
            ));
            // batch norm, residual add (reads two, writes one: counted as 1.5 passes ≈ 2), ReLU
            layers.push(conv(
                &format!("{pre}.conv3"),
                w,
                4 * w,
                1,
                hout,
                hout,
                true,
                false,
                3,
            ));
            if b == 0 && (s != 1 || cin != 4 * w) {
                layers.push(conv(
                    &format!("{pre}.downsample"),
                    cin,
                    4 * w,
                    1,
                    h,
                    hout,
                    true,
                    false,
                    1,
                ));
            }
            cin = 4 * w;
            h = hout;
        }
    }
    layers.push(pool("avgpool", (cin * h * h) as f64, cin as f64));
    layers.push(linear("fc", LayerKind::Linear, cin, r.classes as u64, 0));
    layers
}

fn vgg(v: &VggSpec) -> Vec<Layer> {
    let mut layers = Vec::new();
    let (mut cin, mut h) = (3u64, v.image_size as u64);
    let (mut block, mut idx) = (1, 1);
    for &c in &v.convs {
        if c == 0 {
            let out = h / 2;
            layers.push(pool(
                &format!("pool{block}"),
                (cin * h * h) as f64,
                (cin * out * out) as f64,
            ));
            h = out;
            block += 1;
            idx = 1;
        } else {
            let c = c as u64;
            layers.push(conv(
                &format!("conv{block}_{idx}"),
                cin,
                c,
                3,
                h,
                h,
                false,
                true,
                1,
            ));
            cin = c;
            idx += 1;
        }
    }
    let mut din = cin * h * h;
    for (i, &w) in v.fc.iter().enumerate() {
        // ReLU and dropout follow each hidden fully-connected layer.
        layers.push(linear(
            &format!("fc{}", 6 + i),
            LayerKind::Linear,
            din,
            w as u64,
            2,
        ));
        din = w as u64;
    }
    layers.push(linear(
        &format!("fc{}", 6 + v.fc.len()),
        LayerKind::Linear,
        din,
        v.classes as u64,
        0,
    ));
    layers
}

impl TransformerSpec {
    /// Tokens per sample: `seq_len`, or patches + class token for a vision transformer.
    pub fn tokens(&self) -> u64 {
        match self.image_size.checked_div(self.patch) {
            Some(n) if self.patch > 0 => (n as u64) * (n as u64) + 1,
            _ => self.seq_len as u64,
        }
    }
}

fn transformer(t: &TransformerSpec) -> Vec<Layer> {
    let d = t.hidden as u64;
    let f = t.ffn as u64;
    let s = t.tokens();
    let (sf, df, ff) = (s as f64, d as f64, f as f64);
    let mut layers = Vec::new();
    // Embeddings.
    let emb = if t.patch > 0 {
        let p = t.patch as u64;
        let c = t.channels as u64;
        let img = (c * t.image_size as u64 * t.image_size as u64) as f64;
        Layer {
            name: "embeddings".into(),
            kind: LayerKind::Embedding,
            weights: vec![
                Weight::new("patch", c * p * p, d, (s - 1) as f64),
                Weight::new("position", s, d, 0.0),
            ],
            // patch-conv bias + class token
            vector_params: 2 * d,
            tied_flops_per_sample: 0.0,
            act_flops_per_sample: 0.0,
            in_elems_per_sample: img,
            out_elems_per_sample: sf * df,
            // conv reads the image, writes patches; concat and position add: 2 more passes
            mem_elems_per_sample: img + 5.0 * sf * df,
            kernels: 3,
        }
    } else {
        let mut weights = vec![Weight::new("word", t.vocab as u64, d, 0.0)];
        if t.max_positions > 0 {
            weights.push(Weight::new("position", t.max_positions as u64, d, 0.0));
        }
        if t.token_types > 0 {
            weights.push(Weight::new("token_type", t.token_types as u64, d, 0.0));
        }
        let tables = weights.len() as f64;
        let ln = if t.embed_layernorm { 1.0 } else { 0.0 };
        Layer {
            name: "embeddings".into(),
            kind: LayerKind::Embedding,
            vector_params: if t.embed_layernorm { 2 * d } else { 0 },
            tied_flops_per_sample: 0.0,
            act_flops_per_sample: 0.0,
            in_elems_per_sample: sf,
            out_elems_per_sample: sf * df,
            // each gather writes s·d, each add reads two and writes one, the norm reads and writes
            mem_elems_per_sample: sf * df * (tables + 3.0 * (tables - 1.0) + 2.0 * ln),
            kernels: (2.0 * tables - 1.0 + ln) as u32,
            weights,
        }
    };
    layers.push(emb);
    let attn = 2.0 * 2.0 * sf * sf * df * if t.causal { 0.5 } else { 1.0 };
    for i in 0..t.layers {
        layers.push(Layer {
            name: format!("block.{i}"),
            kind: LayerKind::Block,
            weights: vec![
                Weight::new("qkv", d, 3 * d, sf),
                Weight::new("out", d, d, sf),
                Weight::new("fc1", d, f, sf),
                Weight::new("fc2", f, d, sf),
            ],
            // biases (3d + d + f + d) and two LayerNorms (4d)
            vector_params: 9 * d + f,
            tied_flops_per_sample: 0.0,
            act_flops_per_sample: attn,
            in_elems_per_sample: sf * df,
            out_elems_per_sample: sf * df,
            mem_elems_per_sample: 22.0 * sf * df + 4.0 * sf * ff,
            kernels: 12,
        });
    }
    let ln_params = if t.final_layernorm { 2 * d } else { 0 };
    let ln_mem = if t.final_layernorm {
        2.0 * sf * df
    } else {
        0.0
    };
    let classes = t.classes as u64;
    let head = match t.head {
        HeadKind::Pooled => Layer {
            name: "head".into(),
            kind: LayerKind::Head,
            weights: vec![
                Weight::new("dense", d, d, 1.0),
                Weight::new("classifier", d, classes, 1.0),
            ],
            vector_params: d + classes + ln_params,
            tied_flops_per_sample: 0.0,
            act_flops_per_sample: 0.0,
            in_elems_per_sample: sf * df,
            out_elems_per_sample: classes as f64,
            mem_elems_per_sample: ln_mem + 4.0 * df + 2.0 * classes as f64,
            kernels: 5,
        },
        HeadKind::Linear => Layer {
            name: "head".into(),
            kind: LayerKind::Head,
            weights: vec![Weight::new("classifier", d, classes, 1.0)],
            vector_params: classes + ln_params,
            tied_flops_per_sample: 0.0,
            act_flops_per_sample: 0.0,
            in_elems_per_sample: sf * df,
            out_elems_per_sample: classes as f64,
            mem_elems_per_sample: ln_mem + df + 2.0 * classes as f64,
            kernels: 3,
        },
        HeadKind::LmTied => {
            let v = t.vocab as f64;
            Layer {
                name: "head".into(),
                kind: LayerKind::Head,
                weights: Vec::new(),
                vector_params: ln_params,
                tied_flops_per_sample: 2.0 * sf * df * v,
                act_flops_per_sample: 0.0,
                in_elems_per_sample: sf * df,
                out_elems_per_sample: sf * v,
                // logits written, then read and written by the softmax cross-entropy
                mem_elems_per_sample: ln_mem + sf * df + 3.0 * sf * v,
                kernels: 4,
            }
        }
    };
    layers.push(head);
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> DnnSpec {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn resnet_spatial_sizes_follow_the_strides() {
        let s = spec("name='r'\npublished_params=1\nsource=''\n[resnet]\nblocks=[3,4,6,3]\nimage_size=224\nclasses=1000\n");
        let m = s.build();
        // conv1 output 64×112×112, last stage 2048×7×7.
        assert_eq!(m.layers[0].out_elems_per_sample, (64 * 112 * 112) as f64);
        let l = m
            .layers
            .iter()
            .find(|l| l.name == "layer4.2.conv3")
            .unwrap();
        assert_eq!(l.out_elems_per_sample, (2048 * 7 * 7) as f64);
        // 16 blocks × 3 convs + 4 downsamples + conv1 + maxpool + avgpool + fc
        assert_eq!(m.layers.len(), 16 * 3 + 4 + 4);
    }

    #[test]
    fn invalid_specs_name_the_field() {
        let s = spec("name='x'\npublished_params=1\nsource=''\n");
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("dnn.x.family"));
        let s = spec("name='t'\npublished_params=1\nsource=''\n[transformer]\nhidden=10\nlayers=1\nheads=3\nffn=4\nvocab=5\nseq_len=4\nhead='lm-tied'\n");
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("dnn.t.transformer.heads"));
        let s = spec("name='t'\npublished_params=1\nsource=''\n[transformer]\nhidden=12\nlayers=1\nheads=3\nffn=4\nvocab=5\nseq_len=40\nmax_positions=8\nhead='lm-tied'\n");
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("seq_len = 40"));
    }

    #[test]
    fn tied_head_has_no_params_but_flops() {
        let s = spec("name='t'\npublished_params=1\nsource=''\n[transformer]\nhidden=8\nlayers=1\nheads=2\nffn=32\nvocab=100\nseq_len=4\nhead='lm-tied'\n");
        s.validate().unwrap();
        let m = s.build();
        let head = m.layers.last().unwrap();
        assert_eq!(head.params(), 0);
        assert_eq!(head.fwd_flops_per_sample(), 2.0 * 4.0 * 8.0 * 100.0);
        assert_eq!(
            head.weight_grad_flops_per_sample(),
            head.fwd_flops_per_sample()
        );
        // block: 12 d² + 13 d with f = 4d
        assert_eq!(m.layers[1].params(), 12 * 64 + 13 * 8);
        // attention: input grad = weight flops + 2 × attention flops
        let b = &m.layers[1];
        assert_eq!(
            b.input_grad_flops_per_sample(),
            b.weight_flops_per_sample() + 2.0 * b.act_flops_per_sample
        );
    }
}
