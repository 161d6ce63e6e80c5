//! Llama-style decoder-only transformer (RMSNorm, RoPE, SwiGLU, grouped-query attention) with a
//! preallocated KV cache, written on candle so the same code runs on the CPU (tests) and on a
//! CUDA GPU (measurements).
//!
//! Layout choices, all for decode speed:
//! - Q, K and V are one fused `[(heads + 2·kv_heads)·head_dim, hidden]` matrix, gate and up one
//!   `[2·ffn, hidden]` matrix (the parameter count is the same as separate matrices).
//! - The KV cache of layer `l` is one preallocated `[batch, kv_heads, capacity, head_dim]` tensor
//!   for K and one for V. New entries are written in place with `scatter_set` at each sequence's
//!   own position (per-sequence cache lengths); attention reads the first `max(pos) + T` slots and
//!   masks, per sequence, every slot past that sequence's own length. Rolling back after a
//!   rejected draft is therefore free: the caller moves the sequence's length back and the stale
//!   slots are masked out and later overwritten. Nothing is reallocated in the decode loop.
//! - GQA never copies K/V: the `g = heads / kv_heads` query heads sharing one KV head are folded
//!   into the row dimension of one batched matmul (`[B, kv, g·T, hd] × [B, kv, hd, S]`).
//!
//! Two forward paths share the weights: [`Model::forward`] (inference: fused candle kernels for
//! RMSNorm, RoPE and softmax, KV cache) and [`Model::forward_train`] (full causal sequence, no
//! cache, only differentiable primitive ops, logits at optional early exits for LayerSkip).

use std::ops::Range;

use candle_core::{DType, Device, Result, Tensor, D};

use super::graph::Runner;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Architecture of one model. All sizes are counts (not bytes).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Catalog name (`val-*`), the `model` column of the measurement CSVs.
    pub name: String,
    /// Transformer layers.
    pub layers: usize,
    /// Hidden (model) width.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (GQA; divides `heads`).
    pub kv_heads: usize,
    /// SwiGLU inner width.
    pub ffn: usize,
    /// Vocabulary size.
    pub vocab: usize,
}

/// RoPE base frequency θ (Su et al. 2021, as in Llama 2).
pub const ROPE_THETA: f64 = 10_000.0;
/// RMSNorm epsilon.
pub const RMS_EPS: f64 = 1e-5;

impl Config {
    /// A config from its sizes.
    pub fn new(
        name: &str,
        layers: usize,
        hidden: usize,
        heads: usize,
        kv_heads: usize,
        ffn: usize,
        vocab: usize,
    ) -> Self {
        Config {
            name: name.to_string(),
            layers,
            hidden,
            heads,
            kv_heads,
            ffn,
            vocab,
        }
    }

    /// Dimension of one head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// Query heads per KV head.
    pub fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    /// Checks the shape is usable (heads divide hidden, kv_heads divide heads, even head_dim).
    pub fn validate(&self) -> Result<()> {
        if self.layers == 0
            || self.hidden == 0
            || self.heads == 0
            || self.kv_heads == 0
            || self.ffn == 0
            || self.vocab == 0
        {
            candle_core::bail!("model {}: every size must be >= 1", self.name)
        }
        if self.hidden % self.heads != 0
            || self.heads % self.kv_heads != 0
            || self.head_dim() % 2 != 0
        {
            candle_core::bail!(
                "model {}: heads must divide hidden, kv_heads divide heads, head_dim be even",
                self.name
            )
        }
        Ok(())
    }

    /// Names and shapes of every weight tensor, in canonical order. The initializer allocates
    /// exactly these, so the parameter count derived here is the count of the real tensors.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (h, hd) = (self.hidden, self.head_dim());
        let qkv = (self.heads + 2 * self.kv_heads) * hd;
        let mut v = vec![("embed".to_string(), vec![self.vocab, h])];
        for l in 0..self.layers {
            v.push((format!("l{l}.attn_norm"), vec![h]));
            v.push((format!("l{l}.wqkv"), vec![qkv, h]));
            v.push((format!("l{l}.wo"), vec![h, self.heads * hd]));
            v.push((format!("l{l}.ffn_norm"), vec![h]));
            v.push((format!("l{l}.wgu"), vec![2 * self.ffn, h]));
            v.push((format!("l{l}.wd"), vec![h, self.ffn]));
        }
        v.push(("norm".to_string(), vec![h]));
        v.push(("head".to_string(), vec![self.vocab, h]));
        v
    }

    /// Parameter count from [`Config::tensor_shapes`].
    pub fn param_count(&self) -> usize {
        self.tensor_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// KV-cache bytes per token of context over all layers at `dtype_bytes` per element.
    pub fn kv_bytes_per_token(&self, dtype_bytes: usize) -> usize {
        2 * self.layers * self.kv_heads * self.head_dim() * dtype_bytes
    }

    /// The `[[llm]]` TOML entry of this architecture for `models/llms-validation.toml`
    /// (schema of `models/llms.toml`), with `published_params` = `params` read off the tensors.
    pub fn toml_entry(&self, params: usize, source: &str) -> String {
        format!(
            "[[llm]]\nname = \"{}\"\nlayers = {}\nhidden = {}\nheads = {}\nkv_heads = {}\nffn = {}\nvocab = {}\ntied_embeddings = false\npublished_params = {}\nsource = \"{}\"\n",
            self.name, self.layers, self.hidden, self.heads, self.kv_heads, self.ffn, self.vocab, params, source
        )
    }
}

/// Every architecture the harness builds, by catalog name.
///
/// `val-t*`: random-weight targets for cost-model runs (vocab 32000, Llama-2 tokenizer size);
/// `val-d*`: random-weight drafts of several depths and widths with the same vocab;
/// `val-rt*` / `val-rd*`: byte-level (vocab 256) target and drafts trained on the corpus;
/// `val-tiny*`: small models for CPU tests and the on-GPU correctness check.
pub fn presets() -> Vec<Config> {
    vec![
        Config::new("val-t8b", 32, 4096, 32, 8, 14336, 32000),
        Config::new("val-t3b", 28, 3072, 24, 8, 8192, 32000),
        Config::new("val-t1b", 24, 2048, 16, 8, 5632, 32000),
        Config::new("val-d2-h1024", 2, 1024, 8, 4, 2816, 32000),
        Config::new("val-d4-h1024", 4, 1024, 8, 4, 2816, 32000),
        Config::new("val-d4-h2048", 4, 2048, 16, 8, 5632, 32000),
        Config::new("val-d8-h1536", 8, 1536, 12, 4, 4096, 32000),
        Config::new("val-rt24-h1024", 24, 1024, 16, 4, 2816, 256),
        Config::new("val-rd2-h512", 2, 512, 8, 4, 1408, 256),
        Config::new("val-rd4-h768", 4, 768, 12, 4, 2048, 256),
        Config::new("val-tiny-t", 4, 64, 4, 2, 176, 97),
        Config::new("val-tiny-d", 2, 32, 2, 1, 96, 97),
        Config::new("val-tiny-rt", 4, 64, 4, 2, 176, 256),
        Config::new("val-tiny-rd", 1, 32, 2, 1, 96, 256),
    ]
}

/// The preset called `name`.
pub fn preset(name: &str) -> Result<Config> {
    presets()
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "unknown model {name}; known: {}",
                presets()
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Weights of one transformer layer.
#[derive(Clone)]
pub struct Layer {
    /// RMSNorm scale before attention, `[hidden]`.
    pub attn_norm: Tensor,
    /// Fused Q/K/V projection, `[(heads + 2·kv_heads)·head_dim, hidden]`.
    pub wqkv: Tensor,
    /// Output projection, `[hidden, heads·head_dim]`.
    pub wo: Tensor,
    /// RMSNorm scale before the FFN, `[hidden]`.
    pub ffn_norm: Tensor,
    /// Fused gate and up projections, `[2·ffn, hidden]` (gate rows first).
    pub wgu: Tensor,
    /// Down projection, `[hidden, ffn]`.
    pub wd: Tensor,
}

/// A model: config, weights and RoPE tables.
#[derive(Clone)]
pub struct Model {
    /// Architecture.
    pub cfg: Config,
    /// Token embedding, `[vocab, hidden]`.
    pub embed: Tensor,
    /// Transformer layers.
    pub layers: Vec<Layer>,
    /// Final RMSNorm scale, `[hidden]`.
    pub norm: Tensor,
    /// LM head, `[vocab, hidden]` (untied).
    pub head: Tensor,
    cos: Tensor,
    sin: Tensor,
}

/// Standard-normal draws from a seeded generator (Box–Muller), for CPU-side initialization.
fn host_normal(n: usize, std: f64, rng: &mut Xoshiro256PlusPlus) -> Vec<f32> {
    use rand::RngExt;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        let u1: f64 = rng.random::<f64>().max(1e-300);
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        v.push((r * (2.0 * std::f64::consts::PI * u2).cos()) as f32);
        if v.len() < n {
            v.push((r * (2.0 * std::f64::consts::PI * u2).sin()) as f32);
        }
    }
    v
}

/// Maximum position the RoPE tables cover.
pub const MAX_POS: usize = 8192;

impl Model {
    /// Random weights: N(0, 0.02²) matrices (output projections scaled by 1/√(2·layers), GPT-2
    /// style), unit norm scales. On the GPU the draws come from the device generator seeded with
    /// `seed` (`Device::set_seed`); on the CPU from Xoshiro256++ seeded with `seed`. Weights are
    /// drawn in f32 and cast to `dtype`.
    pub fn random(cfg: &Config, dtype: DType, dev: &Device, seed: u64) -> Result<Model> {
        cfg.validate()?;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        if dev.is_cuda() {
            dev.set_seed(seed)?;
        }
        let out_std = 0.02 / (2.0 * cfg.layers as f64).sqrt();
        let mut ts = Vec::new();
        for (name, shape) in cfg.tensor_shapes() {
            let t = if shape.len() == 1 {
                Tensor::ones(shape, DType::F32, dev)?
            } else {
                let std = if name.ends_with(".wo") || name.ends_with(".wd") {
                    out_std
                } else {
                    0.02
                };
                if dev.is_cuda() {
                    Tensor::randn(0f32, std as f32, shape, dev)?
                } else {
                    let n = shape.iter().product();
                    Tensor::from_vec(host_normal(n, std, &mut rng), shape, dev)?
                }
            };
            ts.push(t.to_dtype(dtype)?);
        }
        Model::from_tensors(cfg, ts)
    }

    /// A model from tensors in [`Config::tensor_shapes`] order (checked).
    pub fn from_tensors(cfg: &Config, ts: Vec<Tensor>) -> Result<Model> {
        let shapes = cfg.tensor_shapes();
        if ts.len() != shapes.len() {
            candle_core::bail!(
                "model {}: expected {} tensors, got {}",
                cfg.name,
                shapes.len(),
                ts.len()
            )
        }
        for (t, (name, s)) in ts.iter().zip(&shapes) {
            if t.dims() != s.as_slice() {
                candle_core::bail!(
                    "model {}: tensor {name} has shape {:?}, expected {s:?}",
                    cfg.name,
                    t.dims()
                )
            }
        }
        let dev = ts[0].device().clone();
        let dtype = ts[0].dtype();
        let mut it = ts.into_iter();
        let embed = it.next().unwrap();
        let mut layers = Vec::with_capacity(cfg.layers);
        for _ in 0..cfg.layers {
            layers.push(Layer {
                attn_norm: it.next().unwrap(),
                wqkv: it.next().unwrap(),
                wo: it.next().unwrap(),
                ffn_norm: it.next().unwrap(),
                wgu: it.next().unwrap(),
                wd: it.next().unwrap(),
            });
        }
        let norm = it.next().unwrap();
        let head = it.next().unwrap();
        let (cos, sin) = rope_tables(cfg.head_dim(), MAX_POS, dtype, &dev)?;
        Ok(Model {
            cfg: cfg.clone(),
            embed,
            layers,
            norm,
            head,
            cos,
            sin,
        })
    }

    /// All weight tensors in canonical order.
    pub fn tensors(&self) -> Vec<Tensor> {
        let mut v = vec![self.embed.clone()];
        for l in &self.layers {
            v.extend([
                l.attn_norm.clone(),
                l.wqkv.clone(),
                l.wo.clone(),
                l.ffn_norm.clone(),
                l.wgu.clone(),
                l.wd.clone(),
            ]);
        }
        v.push(self.norm.clone());
        v.push(self.head.clone());
        v
    }

    /// Number of parameters, summed over the element counts of the allocated tensors.
    pub fn param_count(&self) -> usize {
        self.tensors().iter().map(Tensor::elem_count).sum()
    }

    /// Weight bytes (all tensors at their dtype).
    pub fn weight_bytes(&self) -> usize {
        self.tensors()
            .iter()
            .map(|t| t.elem_count() * t.dtype().size_in_bytes())
            .sum()
    }

    /// A copy with every tensor cast to `dtype` (no gradient tracking).
    pub fn to_dtype(&self, dtype: DType) -> Result<Model> {
        let ts = self
            .tensors()
            .iter()
            .map(|t| t.detach().to_dtype(dtype))
            .collect::<Result<Vec<_>>>()?;
        Model::from_tensors(&self.cfg, ts)
    }

    /// Weight dtype.
    pub fn dtype(&self) -> DType {
        self.embed.dtype()
    }

    /// Device.
    pub fn device(&self) -> &Device {
        self.embed.device()
    }

    /// Saves the weights as safetensors.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let names = self.cfg.tensor_shapes();
        let map: std::collections::HashMap<String, Tensor> = names
            .into_iter()
            .map(|(n, _)| n)
            .zip(self.tensors())
            .collect();
        candle_core::safetensors::save(&map, path)
    }

    /// Loads weights saved by [`Model::save`], cast to `dtype`.
    pub fn load(cfg: &Config, path: &std::path::Path, dtype: DType, dev: &Device) -> Result<Model> {
        let mut map = candle_core::safetensors::load(path, dev)?;
        let mut ts = Vec::new();
        for (n, _) in cfg.tensor_shapes() {
            let t = map.remove(&n).ok_or_else(|| {
                candle_core::Error::Msg(format!("{}: tensor {n} missing", path.display()))
            })?;
            ts.push(t.to_dtype(dtype)?);
        }
        Model::from_tensors(cfg, ts)
    }

    /// Token embeddings of `tokens` (`[B, T]` u32) as rows `[B·T, hidden]`.
    pub fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        let flat = tokens.flatten_all()?;
        self.embed.index_select(&flat, 0)
    }

    /// Final norm and LM head: rows `[N, hidden]` → logits `[N, vocab]`.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let h = candle_nn::ops::rms_norm(x, &self.norm, RMS_EPS as f32)?;
        h.matmul(&self.head.t()?)
    }

    /// Runs layers `range` on rows `x` (`[B·T, hidden]`, sequence-major) at the positions of
    /// `step`, writing their K/V into `cache` at those positions.
    pub fn run_layers(
        &self,
        x: &Tensor,
        range: Range<usize>,
        cache: &KvCache,
        step: &Step,
    ) -> Result<Tensor> {
        let mut x = x.clone();
        for l in range {
            x = self.layer_fwd(l, &x, cache, step)?;
        }
        Ok(x)
    }

    /// Full inference forward of `tokens` (`[B, T]` u32, T new tokens per sequence at the
    /// positions of `step`): logits `[B·T, vocab]`.
    pub fn forward(&self, tokens: &Tensor, cache: &KvCache, step: &Step) -> Result<Tensor> {
        let x = self.embed(tokens)?;
        let x = self.run_layers(&x, 0..self.cfg.layers, cache, step)?;
        self.logits(&x)
    }

    /// Inference forward returning only each sequence's last-position logits `[B, vocab]`.
    pub fn forward_last(&self, tokens: &Tensor, cache: &KvCache, step: &Step) -> Result<Tensor> {
        let x = self.embed(tokens)?;
        let x = self.run_layers(&x, 0..self.cfg.layers, cache, step)?;
        self.logits(&last_rows(&x, step.batch, step.t)?)
    }

    fn layer_fwd(&self, l: usize, x: &Tensor, cache: &KvCache, step: &Step) -> Result<Tensor> {
        let c = &self.cfg;
        let w = &self.layers[l];
        let (b, t, hd, nh, nkv) = (step.batch, step.t, c.head_dim(), c.heads, c.kv_heads);
        let h = candle_nn::ops::rms_norm(x, &w.attn_norm, RMS_EPS as f32)?;
        let qkv = h.matmul(&w.wqkv.t()?)?.reshape((b, t, nh + 2 * nkv, hd))?;
        // [B, H, T, hd] contiguous, then RoPE with per-sequence positions.
        let q = qkv.narrow(2, 0, nh)?.transpose(1, 2)?.contiguous()?;
        let k = qkv.narrow(2, nh, nkv)?.transpose(1, 2)?.contiguous()?;
        let v = qkv
            .narrow(2, nh + nkv, nkv)?
            .transpose(1, 2)?
            .contiguous()?;
        let q = candle_nn::rotary_emb::rope(&q, &step.cos, &step.sin)?;
        let k = candle_nn::rotary_emb::rope(&k, &step.cos, &step.sin)?;
        cache.k[l].scatter_set(&step.idx, &k, 2)?;
        cache.v[l].scatter_set(&step.idx, &v, 2)?;
        let kc = cache.k[l].narrow(2, 0, step.s_used)?;
        let vc = cache.v[l].narrow(2, 0, step.s_used)?;
        let g = c.group();
        let qg = (q * (1.0 / (hd as f64).sqrt()))?.reshape((b, nkv, g * t, hd))?;
        let sc = qg.matmul(&kc.t()?)?.reshape((b, nkv, g, t, step.s_used))?;
        let sc = sc.broadcast_add(&step.mask)?;
        let p = candle_nn::ops::softmax_last_dim(&sc)?.reshape((b, nkv, g * t, step.s_used))?;
        let o = p
            .matmul(&vc)?
            .reshape((b, nh, t, hd))?
            .transpose(1, 2)?
            .reshape((b * t, nh * hd))?;
        let x = (x + o.matmul(&w.wo.t()?)?)?;
        let h = candle_nn::ops::rms_norm(&x, &w.ffn_norm, RMS_EPS as f32)?;
        let gu = h.matmul(&w.wgu.t()?)?;
        let a = (gu.narrow(1, 0, c.ffn)?.silu()? * gu.narrow(1, c.ffn, c.ffn)?)?;
        x + a.matmul(&w.wd.t()?)?
    }

    /// Training forward over full sequences `tokens` (`[B, T]` u32, positions 0..T), causal
    /// attention without a cache, differentiable primitive ops only. Returns logits `[B·T, vocab]`
    /// after each layer count in `exits` (each through the shared final norm and LM head, as in
    /// LayerSkip's early-exit loss, Elhoushi et al. 2024) followed by the final logits.
    pub fn forward_train(&self, tokens: &Tensor, exits: &[usize]) -> Result<Vec<Tensor>> {
        let c = &self.cfg;
        let (b, t) = tokens.dims2()?;
        let dev = tokens.device();
        let (hd, nh, nkv, g) = (c.head_dim(), c.heads, c.kv_heads, c.group());
        let cos = self.cos.narrow(0, 0, t)?;
        let sin = self.sin.narrow(0, 0, t)?;
        let cos2 = Tensor::cat(&[&cos, &cos], 1)?.reshape((1, 1, t, hd))?;
        let sin2 = Tensor::cat(&[&sin, &sin], 1)?.reshape((1, 1, t, hd))?;
        let rope = |x: &Tensor| -> Result<Tensor> {
            let x1 = x.narrow(3, 0, hd / 2)?;
            let x2 = x.narrow(3, hd / 2, hd / 2)?;
            let rot = Tensor::cat(&[&x2.neg()?, &x1], 3)?;
            x.broadcast_mul(&cos2)? + rot.broadcast_mul(&sin2)?
        };
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), dev)?.to_dtype(self.dtype())?;
        let mut x = self.embed(tokens)?;
        let mut outs = Vec::new();
        for (l, w) in self.layers.iter().enumerate() {
            if exits.contains(&l) {
                outs.push(self.logits_train(&x)?);
            }
            let h = candle_nn::ops::rms_norm_slow(&x, &w.attn_norm, RMS_EPS as f32)?;
            let qkv = h.matmul(&w.wqkv.t()?)?.reshape((b, t, nh + 2 * nkv, hd))?;
            let q = rope(&qkv.narrow(2, 0, nh)?.transpose(1, 2)?.contiguous()?)?;
            let k = rope(&qkv.narrow(2, nh, nkv)?.transpose(1, 2)?.contiguous()?)?;
            let v = qkv
                .narrow(2, nh + nkv, nkv)?
                .transpose(1, 2)?
                .contiguous()?;
            let qg = (q * (1.0 / (hd as f64).sqrt()))?.reshape((b, nkv, g * t, hd))?;
            let sc = qg
                .matmul(&k.t()?)?
                .reshape((b, nkv, g, t, t))?
                .broadcast_add(&mask)?;
            let p = candle_nn::ops::softmax(&sc, D::Minus1)?.reshape((b, nkv, g * t, t))?;
            let o = p
                .matmul(&v)?
                .reshape((b, nh, t, hd))?
                .transpose(1, 2)?
                .reshape((b * t, nh * hd))?;
            x = (x + o.matmul(&w.wo.t()?)?)?;
            let h = candle_nn::ops::rms_norm_slow(&x, &w.ffn_norm, RMS_EPS as f32)?;
            let gu = h.matmul(&w.wgu.t()?)?;
            let a = (gu.narrow(1, 0, c.ffn)?.silu()? * gu.narrow(1, c.ffn, c.ffn)?)?;
            x = (x + a.matmul(&w.wd.t()?)?)?;
        }
        outs.push(self.logits_train(&x)?);
        Ok(outs)
    }

    fn logits_train(&self, x: &Tensor) -> Result<Tensor> {
        let h = candle_nn::ops::rms_norm_slow(x, &self.norm, RMS_EPS as f32)?;
        h.matmul(&self.head.t()?)
    }

    /// RoPE tables `[MAX_POS, head_dim/2]` (cos, sin).
    pub fn rope_tables(&self) -> (&Tensor, &Tensor) {
        (&self.cos, &self.sin)
    }
}

/// Which logits a [`Part`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// No LM head.
    None,
    /// Logits of every row `[B·T, vocab]`.
    All,
    /// Logits of each sequence's last row `[B, vocab]`.
    Last,
}

/// A slice of the forward pass run as one unit (one CUDA graph with [`Runner`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Input is token ids `[B, T]` (embedded first) rather than hidden rows `[B·T, hidden]`.
    pub from_tokens: bool,
    /// Layers run.
    pub layers: Range<usize>,
    /// Logits returned (after the hidden rows when `hidden`).
    pub head: Head,
    /// Return the hidden rows after `layers` as the first output.
    pub hidden: bool,
    /// Return greedy tokens (argmax of the logits, `[rows]` u32) instead of the logits: greedy
    /// sampling inside the graph, as a decode step of a serving engine does.
    pub argmax: bool,
}

impl Part {
    /// Whole model from tokens, logits (or greedy tokens with `argmax`) as `head`.
    pub fn full(m: &Model, head: Head, argmax: bool) -> Part {
        Part {
            from_tokens: true,
            layers: 0..m.cfg.layers,
            head,
            hidden: false,
            argmax,
        }
    }
}

impl Model {
    /// Runs `part` on `x` for `b = pos.len()` sequences with `t` new tokens each at positions
    /// `pos[i] .. pos[i] + t`, through `rt` (eager, or a CUDA graph keyed by model, cache, part
    /// and shape). Outputs: `[hidden rows]` then `[logits]` as `part` asks.
    pub fn run_part(
        &self,
        rt: &Runner,
        x: &Tensor,
        cache: &KvCache,
        pos: &[usize],
        t: usize,
        part: &Part,
    ) -> Result<Vec<Tensor>> {
        let b = pos.len();
        let need = pos.iter().max().copied().unwrap_or(0) + t;
        if need > cache.capacity || need > MAX_POS {
            candle_core::bail!(
                "cache overflow: need {need} slots, capacity {}",
                cache.capacity
            )
        }
        let s = rt.slots_for(need, cache.capacity.min(MAX_POS));
        let slots = rt.slot_ids(s)?;
        let lim: Vec<u32> = pos
            .iter()
            .flat_map(|&p| (0..t).map(move |i| (p + i) as u32))
            .collect();
        let lim = Tensor::from_vec(lim, (b, t), self.device())?;
        let key = format!(
            "{}#{}:{}{}-{}{:?}{}{}:b{b}t{t}s{s}",
            self.cfg.name,
            cache.id,
            if part.from_tokens { "tok" } else { "hid" },
            part.layers.start,
            part.layers.end,
            part.head,
            part.hidden,
            if part.argmax { "argmax" } else { "" }
        );
        rt.run(&key, &[x.clone(), lim], &|ins| {
            let step = Step::with_slots(self, &ins[1], &slots)?;
            let x0 = if part.from_tokens {
                self.embed(&ins[0])?
            } else {
                ins[0].clone()
            };
            let h = self.run_layers(&x0, part.layers.clone(), cache, &step)?;
            let mut outs = Vec::with_capacity(2);
            if part.hidden {
                outs.push(h.clone());
            }
            let logits = match part.head {
                Head::None => None,
                Head::All => Some(self.logits(&h)?),
                Head::Last => Some(self.logits(&last_rows(&h, b, t)?)?),
            };
            if let Some(l) = logits {
                outs.push(if part.argmax { argmax(&l)? } else { l });
            }
            Ok(outs)
        })
    }

    /// Full forward of tokens `[B, t]` at positions `pos` through `rt`: logits as `head`, or
    /// their greedy tokens (`[rows]` u32) with `argmax`.
    pub fn run_tokens(
        &self,
        rt: &Runner,
        tokens: &Tensor,
        cache: &KvCache,
        pos: &[usize],
        head: Head,
        argmax: bool,
    ) -> Result<Tensor> {
        let t = tokens.dim(1)?;
        let mut o = self.run_part(rt, tokens, cache, pos, t, &Part::full(self, head, argmax))?;
        o.pop()
            .ok_or_else(|| candle_core::Error::Msg("forward returned nothing".into()))
    }
}

/// Last row of each sequence: rows `[B·T, H]` → `[B, H]`.
pub fn last_rows(x: &Tensor, b: usize, t: usize) -> Result<Tensor> {
    let h = x.dim(1)?;
    x.reshape((b, t, h))?.narrow(1, t - 1, 1)?.reshape((b, h))
}

fn rope_tables(hd: usize, max_pos: usize, dtype: DType, dev: &Device) -> Result<(Tensor, Tensor)> {
    let half = hd / 2;
    let inv: Vec<f64> = (0..half)
        .map(|i| 1.0 / ROPE_THETA.powf(2.0 * i as f64 / hd as f64))
        .collect();
    let mut cos = Vec::with_capacity(max_pos * half);
    let mut sin = Vec::with_capacity(max_pos * half);
    for p in 0..max_pos {
        for f in &inv {
            let a = p as f64 * f;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    Ok((
        Tensor::from_vec(cos, (max_pos, half), dev)?.to_dtype(dtype)?,
        Tensor::from_vec(sin, (max_pos, half), dev)?.to_dtype(dtype)?,
    ))
}

/// Preallocated KV cache of one model: per layer, K and V of shape
/// `[batch, kv_heads, capacity, head_dim]`. It holds no lengths: the caller owns each sequence's
/// length and passes positions through [`Step`].
pub struct KvCache {
    /// Process-unique id (keys the CUDA graphs that write this cache).
    pub id: u64,
    /// K per layer.
    pub k: Vec<Tensor>,
    /// V per layer.
    pub v: Vec<Tensor>,
    /// Sequences.
    pub batch: usize,
    /// Slots per sequence.
    pub capacity: usize,
}

impl KvCache {
    /// Allocates a cache of `capacity` slots per sequence, filled with N(0,1) values (so a timed
    /// forward over "context" slots never reads zeros).
    pub fn new(
        cfg: &Config,
        batch: usize,
        capacity: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<KvCache> {
        let shape = (batch, cfg.kv_heads, capacity, cfg.head_dim());
        let mut k = Vec::with_capacity(cfg.layers);
        let mut v = Vec::with_capacity(cfg.layers);
        for _ in 0..cfg.layers {
            if dev.is_cuda() {
                k.push(Tensor::randn(0f32, 1f32, shape, dev)?.to_dtype(dtype)?);
                v.push(Tensor::randn(0f32, 1f32, shape, dev)?.to_dtype(dtype)?);
            } else {
                k.push(Tensor::zeros(shape, dtype, dev)?);
                v.push(Tensor::zeros(shape, dtype, dev)?);
            }
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Ok(KvCache {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            k,
            v,
            batch,
            capacity,
        })
    }

    /// Bytes held (all layers, K and V).
    pub fn bytes(&self) -> usize {
        self.k
            .iter()
            .chain(&self.v)
            .map(|t| t.elem_count() * t.dtype().size_in_bytes())
            .sum()
    }
}

/// Per-forward position data shared by all layers: each sequence `b` writes its `t` new tokens
/// at positions `pos[b] .. pos[b] + t` and attends to slots `0 ..= pos[b] + i` for its i-th new
/// token.
pub struct Step {
    /// Sequences.
    pub batch: usize,
    /// New tokens per sequence.
    pub t: usize,
    /// Cache slots read: `max(pos) + t`.
    pub s_used: usize,
    /// RoPE cos rows for each new token, `[B, t, head_dim/2]`.
    pub cos: Tensor,
    /// RoPE sin rows, `[B, t, head_dim/2]`.
    pub sin: Tensor,
    /// Additive attention mask `[B, 1, 1, t, s_used]` (0 or −1e9).
    pub mask: Tensor,
    /// Scatter index for the cache write, `[B, kv_heads, t, head_dim]` u32 (= position).
    pub idx: Tensor,
}

impl Step {
    /// Builds the step for `model` from host positions (one small host→device copy).
    pub fn new(model: &Model, pos: &[usize], t: usize, capacity: usize) -> Result<Step> {
        let b = pos.len();
        let s_used = pos.iter().max().copied().unwrap_or(0) + t;
        if s_used > capacity || s_used > MAX_POS {
            candle_core::bail!("cache overflow: need {s_used} slots, capacity {capacity}")
        }
        let dev = model.device();
        let lim: Vec<u32> = pos
            .iter()
            .flat_map(|&p| (0..t).map(move |i| (p + i) as u32))
            .collect();
        let lim = Tensor::from_vec(lim, (b, t), dev)?;
        Step::from_positions(model, &lim, s_used)
    }

    /// Builds the step from a device tensor of positions `[B, t]` u32 (no host copy).
    pub fn from_positions(model: &Model, lim: &Tensor, s_used: usize) -> Result<Step> {
        let slots = Tensor::arange(0u32, s_used as u32, model.device())?.reshape((1, 1, s_used))?;
        Step::with_slots(model, lim, &slots)
    }

    /// Builds the step from device positions `[B, t]` u32 and slot indices `[1, 1, S]` u32
    /// (`0 .. S`, S = attended slots ≥ `max(pos) + t`): only device ops, so it can be captured in
    /// a CUDA graph.
    pub fn with_slots(model: &Model, lim: &Tensor, slots: &Tensor) -> Result<Step> {
        let (b, t) = lim.dims2()?;
        let s_used = slots.dim(2)?;
        let c = &model.cfg;
        let dtype = model.dtype();
        let half = c.head_dim() / 2;
        let flat = lim.flatten_all()?;
        let cos = model.cos.index_select(&flat, 0)?.reshape((b, t, half))?;
        let sin = model.sin.index_select(&flat, 0)?.reshape((b, t, half))?;
        let allowed = slots.broadcast_le(&lim.reshape((b, t, 1))?)?;
        let mask = allowed
            .to_dtype(dtype)?
            .affine(1e9, -1e9)?
            .reshape((b, 1, 1, t, s_used))?;
        let idx = lim
            .reshape((b, 1, t, 1))?
            .broadcast_as((b, c.kv_heads, t, c.head_dim()))?
            .contiguous()?;
        Ok(Step {
            batch: b,
            t,
            s_used,
            cos,
            sin,
            mask,
            idx,
        })
    }
}

/// Greedy tokens: argmax over the last dimension of logits `[N, vocab]` → `[N]` u32.
pub fn argmax(logits: &Tensor) -> Result<Tensor> {
    logits.argmax(D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_count_matches_shapes_and_catalog_formula() {
        let cfg = preset("val-tiny-t").unwrap();
        let m = Model::random(&cfg, DType::F32, &Device::Cpu, 1).unwrap();
        assert_eq!(m.param_count(), cfg.param_count());
        // Catalog formula (src/catalog/llm.rs): layers·(2·h·q + 2·h·kv + 3·h·ffn + 2h) + 2·V·h + h.
        let (h, q, kv) = (64usize, 64usize, 2 * 16usize);
        let layer = 2 * h * q + 2 * h * kv + 3 * h * 176 + 2 * h;
        assert_eq!(cfg.param_count(), 4 * layer + 2 * 97 * h + h);
    }

    /// Incremental decoding with the cache equals the full causal training forward (f32,
    /// tolerance 1e-4 absolute on logits of magnitude ~1).
    #[test]
    fn cached_forward_matches_full_forward() {
        let cfg = preset("val-tiny-t").unwrap();
        let dev = Device::Cpu;
        let m = Model::random(&cfg, DType::F32, &dev, 7).unwrap();
        let toks: Vec<u32> = (0..2 * 9).map(|i| (i * 31 % 97) as u32).collect();
        let t = Tensor::from_vec(toks.clone(), (2, 9), &dev).unwrap();
        let full = m.forward_train(&t, &[]).unwrap().pop().unwrap();
        let cache = KvCache::new(&cfg, 2, 16, DType::F32, &dev).unwrap();
        // Prefill 4 tokens, then 2, then 3 (one sequence-wide chunk at a time).
        let mut outs = Vec::new();
        let mut p = 0;
        for n in [4usize, 2, 3] {
            let chunk = t.narrow(1, p, n).unwrap();
            let step = Step::new(&m, &[p, p], n, 16).unwrap();
            outs.push(
                m.forward(&chunk, &cache, &step)
                    .unwrap()
                    .reshape((2, n, cfg.vocab))
                    .unwrap(),
            );
            p += n;
        }
        let inc = Tensor::cat(&outs, 1)
            .unwrap()
            .reshape((18, cfg.vocab))
            .unwrap();
        let diff = (inc - full)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-4, "max |diff| = {diff}");
    }
}
