//! A BERT-base-class encoder for sequence classification, built from differentiable candle ops.
//!
//! Architecture (Devlin et al. 2019, "BERT", arXiv:1810.04805; the Hugging Face `BertModel`
//! layout): word + learned position + token-type embeddings, LayerNorm; `layers` post-LN
//! encoder blocks (fused QKV projection, `heads`-head softmax attention without mask — every
//! snippet is full length —, output projection, residual, LayerNorm, FFN with erf-GELU,
//! residual, LayerNorm); a pooler (dense + tanh on the first token) and a linear classifier.
//! No dropout (runs are deterministic). `val-bert-base` has 768 hidden, 12 heads, FFN 3072,
//! vocabulary 30522, 512 positions: 109,482,240 parameters without the classifier's
//! `768·classes + classes`, the count of `bert-base` in `models/dnn/models.toml`.
//!
//! **Units.** The model is a list of freezable units in the order of the library's profile of
//! `bert-base` (`src/dnn/arch.rs`): `embeddings`, `block.0` … `block.{L−1}`, `head`. Freezing `k`
//! means units `0..k` are frozen, exactly as `perfcast freeze --policy fixed:k=K` counts.
//!
//! **Precision.** Master weights are f32 [`Var`]s. In bf16 mixed precision the trainable forward
//! casts each weight to bf16 (`to_dtype` is differentiable, so gradients reach the f32 masters
//! in f32); LayerNorm statistics, softmax and the loss run in f32. Frozen units use a bf16 copy
//! made once when they freeze (their weights never change again).
//!
//! LayerNorm and softmax are composed from primitive ops: candle-nn's fused `layer_norm` and
//! `softmax_last_dim` have no backward (`apply_op*_no_bwd`). Attention is materialized (no
//! flash attention: candle has no differentiable fused kernel).

use candle_core::{DType, Device, Result, Tensor, Var, D};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Shape of an encoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BertCfg {
    /// Preset name (`val-bert-…`).
    pub name: String,
    /// Encoder blocks.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// FFN inner size.
    pub ffn: usize,
    /// Vocabulary (word-hash buckets).
    pub vocab: usize,
    /// Learned positions.
    pub max_pos: usize,
    /// Classes of the classifier.
    pub classes: usize,
}

/// Preset names.
pub const PRESETS: &[&str] = &["val-bert-base", "val-bert-small", "val-bert-tiny"];

impl BertCfg {
    /// A preset with `classes` classes: `val-bert-base` (12 × 768, 12 heads, FFN 3072, vocab
    /// 30522, 512 positions), `val-bert-small` (4 × 256, 4 heads, FFN 1024, vocab 8192, 512
    /// positions) and `val-bert-tiny` (2 × 32, 2 heads, FFN 64, vocab 512, 128 positions, for
    /// CPU tests).
    ///
    /// # Errors
    /// An unknown name, listing the presets.
    pub fn preset(name: &str, classes: usize) -> Result<BertCfg> {
        let (layers, hidden, heads, ffn, vocab, max_pos) = match name {
            "val-bert-base" => (12, 768, 12, 3072, 30522, 512),
            "val-bert-small" => (4, 256, 4, 1024, 8192, 512),
            "val-bert-tiny" => (2, 32, 2, 64, 512, 128),
            o => candle_core::bail!("unknown model {o}: expected one of {}", PRESETS.join(", ")),
        };
        Ok(BertCfg {
            name: name.to_string(),
            layers,
            hidden,
            heads,
            ffn,
            vocab,
            max_pos,
            classes,
        })
    }

    /// Freezable units: embeddings, the blocks, the head.
    pub fn units(&self) -> usize {
        self.layers + 2
    }

    /// Unit names, as the library's `bert-base` profile names its layers.
    pub fn unit_names(&self) -> Vec<String> {
        let mut v = vec!["embeddings".to_string()];
        v.extend((0..self.layers).map(|i| format!("block.{i}")));
        v.push("head".into());
        v
    }

    /// Parameter shapes of unit `u` (see [`Bert`] for their order).
    pub fn shapes(&self, u: usize) -> Vec<Vec<usize>> {
        let (h, f) = (self.hidden, self.ffn);
        if u == 0 {
            vec![
                vec![self.vocab, h],
                vec![self.max_pos, h],
                vec![2, h],
                vec![h],
                vec![h],
            ]
        } else if u <= self.layers {
            vec![
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
                vec![h],
                vec![h],
            ]
        } else {
            vec![
                vec![h, h],
                vec![h],
                vec![h, self.classes],
                vec![self.classes],
            ]
        }
    }

    /// Parameters of unit `u`.
    pub fn unit_params(&self, u: usize) -> usize {
        self.shapes(u)
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum()
    }

    /// All parameters.
    pub fn params(&self) -> usize {
        (0..self.units()).map(|u| self.unit_params(u)).sum()
    }

    /// Matmul FLOPs of one training iteration (forward + backward = 3 × forward) over `tokens =
    /// batch · seq` tokens: `6 · P_matmul · tokens` for the blocks' weight matrices, plus
    /// attention `3 · 4 · batch · seq² · hidden` per block (QKᵀ and AV, 2 FLOPs per multiply-add),
    /// plus the pooler and classifier on one token per sample. Embedding lookups, LayerNorm,
    /// softmax, GELU and the optimizer are not counted (they are memory-bound).
    pub fn train_flops(&self, batch: usize, seq: usize) -> f64 {
        let (h, f) = (self.hidden as f64, self.ffn as f64);
        let p_block = h * 3.0 * h + h * h + 2.0 * h * f;
        let tokens = (batch * seq) as f64;
        let attn = 12.0 * batch as f64 * (seq * seq) as f64 * h;
        let head = 6.0 * batch as f64 * (h * h + h * self.classes as f64);
        self.layers as f64 * (6.0 * p_block * tokens + attn) + head
    }
}

/// The encoder: per unit, its f32 master [`Var`]s, and the bf16/f32 detached weights of frozen
/// units.
///
/// Parameter order: embeddings `[word (V,H), position (P,H), type (2,H), ln_g, ln_b]`; block
/// `[w_qkv (H,3H), b_qkv, w_o (H,H), b_o, ln1_g, ln1_b, w_1 (H,F), b_1, w_2 (F,H), b_2, ln2_g,
/// ln2_b]`; head `[w_pool (H,H), b_pool, w_cls (H,C), b_cls]`. Matrices are stored `(in, out)`.
pub struct Bert {
    /// Shape.
    pub cfg: BertCfg,
    /// Master weights per unit (f32).
    pub vars: Vec<Vec<Var>>,
    frozen: Vec<Option<Vec<Tensor>>>,
    /// Activation dtype (f32, or bf16 for mixed precision).
    pub dtype: DType,
}

const LN_EPS: f64 = 1e-12;

impl Bert {
    /// Seeded initialization on `dev`: matrices and embeddings uniform with standard deviation
    /// 0.02 (BERT's `initializer_range`; uniform on ±0.02·√3), biases 0, LayerNorm gains 1,
    /// drawn on the host from Xoshiro256++ seeded with `seed` (identical on every device).
    ///
    /// # Errors
    /// `dtype` other than f32/bf16, or a device error.
    pub fn new(cfg: &BertCfg, dtype: DType, dev: &Device, seed: u64) -> Result<Bert> {
        if !matches!(dtype, DType::F32 | DType::BF16) {
            candle_core::bail!("dtype {dtype:?}: expected f32 or bf16")
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let a = 0.02 * 3f64.sqrt();
        let mut vars = Vec::with_capacity(cfg.units());
        for u in 0..cfg.units() {
            let shapes = cfg.shapes(u);
            let mut vs = Vec::with_capacity(shapes.len());
            for (i, s) in shapes.iter().enumerate() {
                let n: usize = s.iter().product();
                let v: Vec<f32> = if s.len() == 2 {
                    (0..n)
                        .map(|_| (rng.random::<f64>() * 2.0 * a - a) as f32)
                        .collect()
                } else if is_ln_gain(u, i, cfg) {
                    vec![1.0; n]
                } else {
                    vec![0.0; n]
                };
                vs.push(Var::from_tensor(&Tensor::from_vec(v, s.as_slice(), dev)?)?);
            }
            vars.push(vs);
        }
        Ok(Bert {
            cfg: cfg.clone(),
            vars,
            frozen: vec![None; cfg.units()],
            dtype,
        })
    }

    /// Freezes units `0..k` (idempotent; never unfreezes): makes their detached weights in the
    /// activation dtype once.
    ///
    /// # Errors
    /// A cast error.
    pub fn freeze_to(&mut self, k: usize) -> Result<()> {
        for u in 0..k.min(self.cfg.units()) {
            if self.frozen[u].is_none() {
                self.frozen[u] = Some(self.detached_weights(u)?);
            }
        }
        Ok(())
    }

    /// Frozen units (a prefix).
    pub fn frozen_units(&self) -> usize {
        self.frozen.iter().take_while(|f| f.is_some()).count()
    }

    /// Weights of unit `u` for the forward: the frozen copy, or the masters (cast to the
    /// activation dtype, differentiably; the embedding unit stays f32: its output is cast).
    ///
    /// # Errors
    /// A cast error.
    pub fn weights(&self, u: usize) -> Result<Vec<Tensor>> {
        if let Some(w) = &self.frozen[u] {
            return Ok(w.clone());
        }
        self.vars[u]
            .iter()
            .map(|v| {
                if u == 0 {
                    Ok(v.as_tensor().clone())
                } else {
                    v.as_tensor().to_dtype(self.dtype)
                }
            })
            .collect()
    }

    /// Detached copies of unit `u`'s weights in the activation dtype (what a frozen unit uses;
    /// the embedding unit stays f32: its output is cast).
    ///
    /// # Errors
    /// A cast error.
    pub fn detached_weights(&self, u: usize) -> Result<Vec<Tensor>> {
        self.vars[u]
            .iter()
            .map(|v| {
                let t = v.as_tensor().detach();
                if u == 0 {
                    Ok(t)
                } else {
                    t.to_dtype(self.dtype)
                }
            })
            .collect()
    }

    /// Runs unit `u` on `x` (token ids `[b, s]` u32 for unit 0, hidden states `[b, s, H]`
    /// otherwise; the head returns f32 logits `[b, classes]`).
    ///
    /// # Errors
    /// Shape errors (a sequence longer than `max_pos`, ...).
    pub fn unit(&self, u: usize, x: &Tensor) -> Result<Tensor> {
        self.apply(u, &self.weights(u)?, x)
    }

    /// Runs unit `u` with the weights `w` (in [`Bert`]'s parameter order) on `x`.
    ///
    /// # Errors
    /// Shape errors.
    pub fn apply(&self, u: usize, w: &[Tensor], x: &Tensor) -> Result<Tensor> {
        if u == 0 {
            embed(w, x, self.dtype)
        } else if u <= self.cfg.layers {
            block(w, x, self.cfg.heads)
        } else {
            head(w, x)
        }
    }

    /// An independent copy (fresh master [`Var`]s with the same values, nothing frozen).
    ///
    /// # Errors
    /// A device error.
    pub fn duplicate(&self) -> Result<Bert> {
        let vars = self
            .vars
            .iter()
            .map(|vs| {
                vs.iter()
                    .map(|v| Var::from_tensor(&v.as_tensor().detach().copy()?))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Bert {
            cfg: self.cfg.clone(),
            vars,
            frozen: vec![None; self.cfg.units()],
            dtype: self.dtype,
        })
    }

    /// Units `from..to` on `x`.
    ///
    /// # Errors
    /// As [`Bert::unit`].
    pub fn run(&self, from: usize, to: usize, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for u in from..to {
            h = self.unit(u, &h)?;
        }
        Ok(h)
    }

    /// Copies of every master weight's values (for bit-identity checks).
    ///
    /// # Errors
    /// A device error.
    pub fn snapshot(&self, u: usize) -> Result<Vec<Vec<f32>>> {
        self.vars[u]
            .iter()
            .map(|v| v.as_tensor().flatten_all()?.to_vec1::<f32>())
            .collect()
    }
}

fn is_ln_gain(u: usize, i: usize, cfg: &BertCfg) -> bool {
    (u == 0 && i == 3) || (u >= 1 && u <= cfg.layers && (i == 4 || i == 10))
}

/// LayerNorm over the last dimension with statistics in f32 (the `layer_norm_slow` recipe of
/// candle-nn, differentiable); the result is cast back to `x`'s dtype before the affine part.
pub fn layer_norm(x: &Tensor, g: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dt = x.dtype();
    let h = x.dim(D::Minus1)? as f64;
    let x = x.to_dtype(DType::F32)?;
    let mean = (x.sum_keepdim(D::Minus1)? / h)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = (xc.sqr()?.sum_keepdim(D::Minus1)? / h)?;
    let xn = xc.broadcast_div(&(var + LN_EPS)?.sqrt()?)?;
    xn.to_dtype(dt)?.broadcast_mul(g)?.broadcast_add(b)
}

fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.matmul(w)?.broadcast_add(b)
}

/// Embeddings: word rows gathered from the f32 table, plus position and type-0 rows, LayerNorm,
/// then cast to `dt`.
fn embed(w: &[Tensor], ids: &Tensor, dt: DType) -> Result<Tensor> {
    let (b, s) = ids.dims2()?;
    let h = w[0].dim(1)?;
    let words = w[0].embedding(&ids.flatten_all()?)?.reshape((b, s, h))?;
    let pos = w[1].narrow(0, 0, s)?;
    let typ = w[2].narrow(0, 0, 1)?;
    let e = words.broadcast_add(&pos.broadcast_add(&typ)?)?;
    layer_norm(&e, &w[3], &w[4])?.to_dtype(dt)
}

/// One post-LN encoder block on `[b, s, H]`.
fn block(w: &[Tensor], x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, s, h) = x.dims3()?;
    let hd = h / heads;
    let dt = x.dtype();
    let x2 = x.reshape((b * s, h))?;
    let qkv = linear(&x2, &w[0], &w[1])?
        .reshape((b, s, 3, heads, hd))?
        .permute((2, 0, 3, 1, 4))?;
    let q = qkv.get(0)?.contiguous()?;
    let k = qkv.get(1)?.contiguous()?;
    let v = qkv.get(2)?.contiguous()?;
    let sc = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
    let p = softmax(&sc.to_dtype(DType::F32)?)?.to_dtype(dt)?;
    let ctx = p
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * s, h))?;
    let o = linear(&ctx, &w[2], &w[3])?;
    let x1 = layer_norm(&(x2 + o)?, &w[4], &w[5])?;
    let f = linear(&x1, &w[6], &w[7])?.gelu_erf()?;
    let f2 = linear(&f, &w[8], &w[9])?;
    layer_norm(&(x1 + f2)?, &w[10], &w[11])?.reshape((b, s, h))
}

/// Softmax over the last dimension. The subtracted row maximum is detached: softmax does not
/// depend on it, so its exact gradient contribution is zero, and candle's backward of `max`
/// (a mask over the whole score tensor) is skipped.
fn softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Pooler (dense + tanh on the first token) and classifier; f32 logits.
fn head(w: &[Tensor], x: &Tensor) -> Result<Tensor> {
    let cls = x.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
    let p = linear(&cls, &w[0], &w[1])?.tanh()?;
    linear(&p, &w[2], &w[3])?.to_dtype(DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_counts_match_the_catalog() {
        let c = BertCfg::preset("val-bert-base", 2).unwrap();
        // models/dnn/models.toml: bert-base 109,482,240 with pooler (no classifier).
        assert_eq!(c.params() - (768 * 2 + 2), 109_482_240);
        assert_eq!(c.units(), 14);
        assert_eq!(c.unit_names()[13], "head");
        assert!(BertCfg::preset("val-bert-huge", 2)
            .unwrap_err()
            .to_string()
            .contains("val-bert-base"));
    }

    #[test]
    fn forward_shapes_and_layer_norm() {
        let c = BertCfg::preset("val-bert-tiny", 3).unwrap();
        let dev = Device::Cpu;
        for dt in [DType::F32, DType::BF16] {
            let m = Bert::new(&c, dt, &dev, 1).unwrap();
            let ids = Tensor::from_vec((0..20u32).collect::<Vec<_>>(), (2, 10), &dev).unwrap();
            let h = m.run(0, c.units() - 1, &ids).unwrap();
            assert_eq!(h.dims(), &[2, 10, 32]);
            assert_eq!(h.dtype(), dt);
            let lg = m.unit(c.units() - 1, &h).unwrap();
            assert_eq!(lg.dims(), &[2, 3]);
            assert_eq!(lg.dtype(), DType::F32);
        }
        // LayerNorm of [1, 2, 3] with unit gain: (x − 2) / √(2/3) = [−√1.5, 0, √1.5] (tolerance 1e-5).
        let x = Tensor::new(&[[1f32, 2., 3.]], &dev).unwrap();
        let g = Tensor::new(&[1f32, 1., 1.], &dev).unwrap();
        let b = Tensor::new(&[0f32, 0., 0.], &dev).unwrap();
        let y = layer_norm(&x, &g, &b).unwrap().to_vec2::<f32>().unwrap();
        let s = 1.5f32.sqrt();
        for (a, w) in y[0].iter().zip([-s, 0.0, s]) {
            assert!((a - w).abs() < 1e-5, "{y:?}");
        }
    }
}
