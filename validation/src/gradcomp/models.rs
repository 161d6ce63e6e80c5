//! The two model families the DDP harness trains, behind one [`Net`] interface of units run one
//! at a time (so backward can run unit by unit, see [`super::step`]):
//!
//! - **BERT-base-class encoder**: the freeze harness's [`Bert`] (`crate::freeze::model`, presets
//!   `val-bert-base`, `val-bert-tiny`), used as is, with a 2-class head (the catalog's
//!   `bert-base` head) and the sequence-classification cross-entropy loss.
//! - **GPT-2-small-like causal decoder** ([`Gpt2`], presets `val-gpt2` and `val-gpt2-tiny`):
//!   Radford et al. 2019 ("Language Models are Unsupervised Multitask Learners"; the Hugging Face
//!   `GPT2LMHeadModel` layout): learned token and position embeddings, `layers` pre-LN blocks
//!   (LayerNorm, fused QKV, causal softmax attention, output projection, residual; LayerNorm,
//!   FFN with tanh-GELU, residual), a final LayerNorm and an LM head tied to the token embedding,
//!   next-token cross-entropy over every position. `val-gpt2`: 12 × 768, 12 heads, FFN 3072,
//!   vocabulary 50257, 1024 positions: 124,439,808 parameters, the catalog's `gpt2`. Built from
//!   the same primitive, differentiable ops as the encoder (its [`layer_norm`]); no dropout.
//!
//! A second transformer rather than a ResNet: candle 0.11's conv2d backward (`backprop.rs`)
//! computes the input gradient with its CUDA `conv_transpose2d`, a direct kernel (one thread per
//! output element looping over channels and taps, no cuDNN backward-data), and the weight
//! gradient as a conv2d of the transposed input with the output gradient as an output-sized
//! kernel (im2col + matmul over odd shapes, no cuDNN backward-filter); BatchNorm would be
//! composed of elementwise ops. That is far from a fair stand-in for production CNN training
//! (DESIGN.md §7), while the decoder runs on the same cuBLAS matmuls as the encoder.
//!
//! **Units** (what the bucketing and the per-layer rows count): `embeddings`, `block.0` …
//! `block.{L−1}`, `head`, in forward order, as the library's DNN profiles (`src/dnn/arch.rs`)
//! name them. GPT-2's tied token embedding belongs to `embeddings` (its gradient is complete only
//! after the embeddings' backward; the head's contribution is added there), as in the library.
//!
//! **Batches** are synthetic and seeded ([`Net::batch`]): uniform token ids (BERT: `[CLS]`
//! first, uniform labels; GPT-2: targets are the inputs shifted by one).

use candle_core::{DType, Device, Result, Tensor, Var, D};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::freeze::model::{layer_norm, Bert, BertCfg};

/// What a unit is, as the `name=` parameter of the per-layer rows writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitKind {
    /// Token (and position) embeddings.
    Embeddings,
    /// A transformer block.
    Layer,
    /// Pooler and classifier, or final LayerNorm and LM head (with the loss).
    Head,
}

impl UnitKind {
    /// `embeddings`, `layer` or `head`.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::Embeddings => "embeddings",
            UnitKind::Layer => "layer",
            UnitKind::Head => "head",
        }
    }
}

/// One training batch on the device.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Token ids `[batch, seq]` (u32).
    pub ids: Tensor,
    /// Labels: BERT `[batch]` class ids; GPT-2 `[batch·seq]` next tokens (u32).
    pub labels: Tensor,
    /// GPT-2's additive causal mask `[seq, seq]` (0 on and below the diagonal, −∞ above), f32.
    pub mask: Option<Tensor>,
}

/// A model trained unit by unit.
pub trait Net {
    /// Harness model name (the rows' `model` column).
    fn name(&self) -> String;
    /// Units (embeddings, blocks, head).
    fn units(&self) -> usize;
    /// Kind of unit `u`.
    fn kind(&self, u: usize) -> UnitKind {
        if u == 0 {
            UnitKind::Embeddings
        } else if u + 1 == self.units() {
            UnitKind::Head
        } else {
            UnitKind::Layer
        }
    }
    /// Master weights (f32 [`Var`]s) per unit, in the unit's parameter order.
    fn vars(&self) -> &[Vec<Var>];
    /// Runs unit `u` on `x` (token ids for unit 0, hidden states `[b, s, H]` otherwise); the
    /// head returns the scalar loss (nats, mean over the batch's predictions).
    ///
    /// # Errors
    /// Shape or device errors.
    fn forward(&self, u: usize, x: &Tensor, batch: &Batch) -> Result<Tensor>;
    /// A seeded synthetic batch for this model.
    ///
    /// # Errors
    /// A sequence longer than the positions, or a device error.
    fn batch(&self, batch: usize, seq: usize, seed: u64, dev: &Device) -> Result<Batch>;
    /// Matmul FLOPs of one training step (forward + backward = 3 × forward, 2 FLOPs per
    /// multiply-add) on `batch × seq` tokens, including the materialized attention products
    /// (full `seq²`, causal or not: the masked half is computed too). Elementwise work, softmax,
    /// LayerNorm, embedding gathers and the optimizer are not counted.
    fn train_flops(&self, batch: usize, seq: usize) -> f64;
    /// Parameters of all units.
    fn params(&self) -> usize {
        self.vars()
            .iter()
            .flatten()
            .map(|v| v.as_tensor().elem_count())
            .sum()
    }
}

/// Classes of the BERT classifier (the catalog's `bert-base` head).
pub const BERT_CLASSES: usize = 2;

impl Net for Bert {
    fn name(&self) -> String {
        self.cfg.name.clone()
    }
    fn units(&self) -> usize {
        self.cfg.units()
    }
    fn vars(&self) -> &[Vec<Var>] {
        &self.vars
    }
    fn train_flops(&self, batch: usize, seq: usize) -> f64 {
        self.cfg.train_flops(batch, seq)
    }
    fn forward(&self, u: usize, x: &Tensor, batch: &Batch) -> Result<Tensor> {
        let y = self.unit(u, x)?;
        if u + 1 == self.cfg.units() {
            candle_nn::loss::cross_entropy(&y, &batch.labels)
        } else {
            Ok(y)
        }
    }
    fn batch(&self, batch: usize, seq: usize, seed: u64, dev: &Device) -> Result<Batch> {
        if seq < 2 || seq > self.cfg.max_pos {
            candle_core::bail!("seq {seq}: expected 2..={}", self.cfg.max_pos)
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let vocab = self.cfg.vocab as u32;
        let ids: Vec<u32> = (0..batch * seq)
            .map(|i| {
                if i % seq == 0 {
                    crate::freeze::data::CLS
                } else {
                    rng.random_range(2..vocab)
                }
            })
            .collect();
        let labels: Vec<u32> = (0..batch)
            .map(|_| rng.random_range(0..self.cfg.classes as u32))
            .collect();
        Ok(Batch {
            ids: Tensor::from_vec(ids, (batch, seq), dev)?,
            labels: Tensor::from_vec(labels, batch, dev)?,
            mask: None,
        })
    }
}

/// Shape of a decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gpt2Cfg {
    /// Preset name (`val-gpt2…`).
    pub name: String,
    /// Blocks.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// FFN inner size.
    pub ffn: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// Learned positions.
    pub max_pos: usize,
}

/// Decoder preset names.
pub const GPT2_PRESETS: &[&str] = &["val-gpt2", "val-gpt2-tiny"];

impl Gpt2Cfg {
    /// `val-gpt2` (12 × 768, 12 heads, FFN 3072, vocabulary 50257, 1024 positions) or
    /// `val-gpt2-tiny` (2 × 32, 2 heads, FFN 64, vocabulary 512, 128 positions; CPU tests).
    ///
    /// # Errors
    /// An unknown name, listing the presets.
    pub fn preset(name: &str) -> Result<Gpt2Cfg> {
        let (layers, hidden, heads, ffn, vocab, max_pos) = match name {
            "val-gpt2" => (12, 768, 12, 3072, 50257, 1024),
            "val-gpt2-tiny" => (2, 32, 2, 64, 512, 128),
            o => candle_core::bail!(
                "unknown model {o}: expected one of {}",
                GPT2_PRESETS.join(", ")
            ),
        };
        Ok(Gpt2Cfg {
            name: name.into(),
            layers,
            hidden,
            heads,
            ffn,
            vocab,
            max_pos,
        })
    }

    /// Parameter shapes of unit `u`: embeddings `[wte (V,H), wpe (P,H)]`; block `[ln1_g, ln1_b,
    /// w_qkv (H,3H), b_qkv, w_o (H,H), b_o, ln2_g, ln2_b, w_1 (H,F), b_1, w_2 (F,H), b_2]`; head
    /// `[lnf_g, lnf_b]` (the LM head is the embeddings' `wte`, tied). Matrices are `(in, out)`.
    pub fn shapes(&self, u: usize) -> Vec<Vec<usize>> {
        let (h, f) = (self.hidden, self.ffn);
        if u == 0 {
            vec![vec![self.vocab, h], vec![self.max_pos, h]]
        } else if u <= self.layers {
            vec![
                vec![h],
                vec![h],
                vec![h, 3 * h],
                vec![3 * h],
                vec![h, h],
                vec![h],
                vec![h],
                vec![h],
                vec![h, f],
                vec![f],
                vec![f, h],
                vec![h],
            ]
        } else {
            vec![vec![h], vec![h]]
        }
    }
}

/// The decoder: f32 master [`Var`]s per unit (see [`Gpt2Cfg::shapes`] for their order).
pub struct Gpt2 {
    /// Shape.
    pub cfg: Gpt2Cfg,
    /// Master weights per unit.
    pub vars: Vec<Vec<Var>>,
}

impl Gpt2 {
    /// Seeded initialization on `dev` (the freeze encoder's recipe): matrices uniform with
    /// standard deviation 0.02 (GPT-2's `initializer_range`; uniform on ±0.02·√3), biases 0,
    /// LayerNorm gains 1, drawn on the host from Xoshiro256++ seeded with `seed`.
    ///
    /// # Errors
    /// A device error.
    pub fn new(cfg: &Gpt2Cfg, dev: &Device, seed: u64) -> Result<Gpt2> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let a = 0.02 * 3f64.sqrt();
        let units = cfg.layers + 2;
        let mut vars = Vec::with_capacity(units);
        for u in 0..units {
            let mut vs = Vec::new();
            for (i, s) in cfg.shapes(u).iter().enumerate() {
                let n: usize = s.iter().product();
                let gain = s.len() == 1
                    && ((u >= 1 && u <= cfg.layers && (i == 0 || i == 6))
                        || (u > cfg.layers && i == 0));
                let v: Vec<f32> = if s.len() == 2 {
                    (0..n)
                        .map(|_| (rng.random::<f64>() * 2.0 * a - a) as f32)
                        .collect()
                } else if gain {
                    vec![1.0; n]
                } else {
                    vec![0.0; n]
                };
                vs.push(Var::from_tensor(&Tensor::from_vec(v, s.as_slice(), dev)?)?);
            }
            vars.push(vs);
        }
        Ok(Gpt2 {
            cfg: cfg.clone(),
            vars,
        })
    }
}

fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.matmul(w)?.broadcast_add(b)
}

/// One pre-LN causal block on `[b, s, H]` with the additive mask `[s, s]`.
fn causal_block(w: &[Tensor], x: &Tensor, mask: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, s, h) = x.dims3()?;
    let hd = h / heads;
    let x2 = x.reshape((b * s, h))?;
    let a = layer_norm(&x2, &w[0], &w[1])?;
    let qkv = linear(&a, &w[2], &w[3])?
        .reshape((b, s, 3, heads, hd))?
        .permute((2, 0, 3, 1, 4))?;
    let q = qkv.get(0)?.contiguous()?;
    let k = qkv.get(1)?.contiguous()?;
    let v = qkv.get(2)?.contiguous()?;
    let sc = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?.broadcast_add(mask)?;
    // Row maximum detached: softmax does not depend on it (as the encoder's softmax).
    let max = sc.max_keepdim(D::Minus1)?.detach();
    let e = sc.broadcast_sub(&max)?.exp()?;
    let p = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
    let ctx = p
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * s, h))?;
    let x1 = (x2 + linear(&ctx, &w[4], &w[5])?)?;
    let m = layer_norm(&x1, &w[6], &w[7])?;
    let f = linear(&linear(&m, &w[8], &w[9])?.gelu()?, &w[10], &w[11])?;
    (x1 + f)?.reshape((b, s, h))
}

impl Net for Gpt2 {
    fn name(&self) -> String {
        self.cfg.name.clone()
    }
    fn units(&self) -> usize {
        self.cfg.layers + 2
    }
    fn vars(&self) -> &[Vec<Var>] {
        &self.vars
    }
    fn train_flops(&self, batch: usize, seq: usize) -> f64 {
        let (h, f, v) = (
            self.cfg.hidden as f64,
            self.cfg.ffn as f64,
            self.cfg.vocab as f64,
        );
        let tokens = (batch * seq) as f64;
        let p_block = h * 3.0 * h + h * h + 2.0 * h * f;
        let attn = 12.0 * batch as f64 * (seq * seq) as f64 * h;
        self.cfg.layers as f64 * (6.0 * p_block * tokens + attn) + 6.0 * tokens * h * v
    }
    fn forward(&self, u: usize, x: &Tensor, batch: &Batch) -> Result<Tensor> {
        let w: Vec<Tensor> = self.vars[u].iter().map(|v| v.as_tensor().clone()).collect();
        if u == 0 {
            let (b, s) = x.dims2()?;
            let h = self.cfg.hidden;
            let tok = w[0].embedding(&x.flatten_all()?)?.reshape((b, s, h))?;
            tok.broadcast_add(&w[1].narrow(0, 0, s)?)
        } else if u <= self.cfg.layers {
            let mask = batch
                .mask
                .as_ref()
                .ok_or_else(|| candle_core::Error::Msg("GPT-2 batch without a mask".into()))?;
            causal_block(&w, x, mask, self.cfg.heads)
        } else {
            let (b, s, h) = x.dims3()?;
            let y = layer_norm(&x.reshape((b * s, h))?, &w[0], &w[1])?;
            let logits = y.matmul(&self.vars[0][0].as_tensor().t()?)?;
            candle_nn::loss::cross_entropy(&logits, &batch.labels)
        }
    }
    fn batch(&self, batch: usize, seq: usize, seed: u64, dev: &Device) -> Result<Batch> {
        if seq < 2 || seq > self.cfg.max_pos {
            candle_core::bail!("seq {seq}: expected 2..={}", self.cfg.max_pos)
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let vocab = self.cfg.vocab as u32;
        let toks: Vec<Vec<u32>> = (0..batch)
            .map(|_| (0..=seq).map(|_| rng.random_range(0..vocab)).collect())
            .collect();
        let ids: Vec<u32> = toks.iter().flat_map(|t| t[..seq].to_vec()).collect();
        let next: Vec<u32> = toks.iter().flat_map(|t| t[1..].to_vec()).collect();
        let mask: Vec<f32> = (0..seq * seq)
            .map(|i| {
                if i % seq > i / seq {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Batch {
            ids: Tensor::from_vec(ids, (batch, seq), dev)?,
            labels: Tensor::from_vec(next, batch * seq, dev)?,
            mask: Some(Tensor::from_vec(mask, (seq, seq), dev)?),
        })
    }
}

/// Model names `--model` accepts: `bert` (= `val-bert-base`), `gpt2` (= `val-gpt2`), or a preset.
pub const MODELS: &[&str] = &[
    "bert",
    "gpt2",
    "val-bert-base",
    "val-bert-tiny",
    "val-gpt2",
    "val-gpt2-tiny",
];

/// Builds model `name` (see [`MODELS`]) in f32 on `dev`, seeded with `seed` (every rank builds
/// the same weights from the same seed).
///
/// # Errors
/// An unknown name (listing [`MODELS`]), or a device error.
pub fn build(name: &str, dev: &Device, seed: u64) -> Result<Box<dyn Net>> {
    let name = match name {
        "bert" => "val-bert-base",
        "gpt2" => "val-gpt2",
        o => o,
    };
    if name.starts_with("val-bert") && crate::freeze::model::PRESETS.contains(&name) {
        let cfg = BertCfg::preset(name, BERT_CLASSES)?;
        Ok(Box::new(Bert::new(&cfg, DType::F32, dev, seed)?))
    } else if GPT2_PRESETS.contains(&name) {
        Ok(Box::new(Gpt2::new(&Gpt2Cfg::preset(name)?, dev, seed)?))
    } else {
        candle_core::bail!("--model {name}: expected one of {}", MODELS.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_counts_match_the_catalog() {
        let c = Gpt2Cfg::preset("val-gpt2").unwrap();
        let n: usize = (0..c.layers + 2)
            .flat_map(|u| c.shapes(u))
            .map(|s| s.iter().product::<usize>())
            .sum();
        // models/dnn/models.toml: gpt2 124,439,808 (tied head).
        assert_eq!(n, 124_439_808);
        assert!(build("resnet", &Device::Cpu, 1)
            .err()
            .unwrap()
            .to_string()
            .contains("val-gpt2"));
    }

    #[test]
    fn gpt2_is_causal_and_inits_gains() {
        let dev = Device::Cpu;
        let m = Gpt2::new(&Gpt2Cfg::preset("val-gpt2-tiny").unwrap(), &dev, 3).unwrap();
        // LayerNorm gains 1, biases 0 (block: ln1_g = 1, ln1_b = 0; head: lnf_g = 1, lnf_b = 0).
        let v = |u: usize, i: usize| m.vars[u][i].as_tensor().to_vec1::<f32>().unwrap();
        assert!(v(1, 0).iter().all(|&x| x == 1.0) && v(1, 1).iter().all(|&x| x == 0.0));
        assert!(v(3, 0).iter().all(|&x| x == 1.0) && v(3, 1).iter().all(|&x| x == 0.0));
        let b = m.batch(2, 8, 5, &dev).unwrap();
        let h0 = m.forward(0, &b.ids, &b).unwrap();
        let h1 = m.forward(1, &h0, &b).unwrap();
        // Changing the last token leaves every earlier position's output unchanged (causal).
        let mut ids = b.ids.to_vec2::<u32>().unwrap();
        ids[0][7] = (ids[0][7] + 1) % 512;
        let ids2 = Tensor::new(ids, &dev).unwrap();
        let h1b = m.forward(1, &m.forward(0, &ids2, &b).unwrap(), &b).unwrap();
        let d = (h1 - h1b).unwrap().abs().unwrap();
        let early = d.narrow(1, 0, 7).unwrap().max_all().unwrap();
        let last = d.narrow(1, 7, 1).unwrap().max_all().unwrap();
        assert_eq!(early.to_scalar::<f32>().unwrap(), 0.0);
        assert!(last.to_scalar::<f32>().unwrap() > 0.0);
        let loss = m.forward(3, &h0, &b).unwrap().to_scalar::<f32>().unwrap();
        // Near-uniform logits at init: loss ≈ ln 512 = 6.24 (tolerance 0.1).
        assert!((loss - 512f32.ln()).abs() < 0.1, "{loss}");
    }
}
