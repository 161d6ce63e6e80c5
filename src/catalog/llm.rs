//! Decoder-only LLM architectures and what follows from them (parameters, bytes, FLOPs).

use crate::check;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Kind of normalisation layer (affects only the parameter count).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    /// RMSNorm: one weight vector.
    #[default]
    Rms,
    /// LayerNorm: weight and bias.
    Layer,
}

fn yes() -> bool {
    true
}

/// A decoder-only transformer architecture, as in its `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmArch {
    /// Catalog name (`llama-2-7b`).
    pub name: String,
    /// Transformer layers.
    pub layers: u32,
    /// Hidden size (model width).
    pub hidden: u32,
    /// Attention (query) heads.
    pub heads: u32,
    /// Key/value heads (grouped-query attention when < heads).
    pub kv_heads: u32,
    /// FFN inner size.
    pub ffn: u32,
    /// Vocabulary size.
    pub vocab: u32,
    /// Whether the LM head shares the input embedding.
    pub tied_embeddings: bool,
    /// SwiGLU-style gated FFN (three matrices) instead of a plain two-matrix MLP.
    #[serde(default = "yes")]
    pub gated_ffn: bool,
    /// Normalisation kind.
    #[serde(default)]
    pub norm: NormKind,
    /// Linear layers carry biases.
    #[serde(default)]
    pub bias: bool,
    /// Rows of a learned positional-embedding table (0 = rotary, no table).
    #[serde(default)]
    pub learned_positions: u32,
    /// Embedding width when it differs from `hidden` (OPT-350M), 0 otherwise.
    #[serde(default)]
    pub embed_dim: u32,
    /// Parameter count stated by the model card or paper.
    pub published_params: f64,
    /// Where the architecture comes from.
    pub source: String,
}

impl LlmArch {
    /// Checks the shape is consistent (heads divide hidden, kv heads divide heads, all > 0).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming the field.
    pub fn validate(&self) -> Result<()> {
        let p = |f: &str| format!("llm.{}.{f}", self.name);
        for (f, v) in [
            ("layers", self.layers),
            ("hidden", self.hidden),
            ("heads", self.heads),
            ("kv_heads", self.kv_heads),
            ("ffn", self.ffn),
            ("vocab", self.vocab),
        ] {
            if v == 0 {
                return Err(Error::range(p(f), v, "an integer >= 1"));
            }
        }
        if self.hidden % self.heads != 0 {
            return Err(Error::range(
                p("heads"),
                self.heads,
                format!("a divisor of hidden = {}", self.hidden),
            ));
        }
        if self.heads % self.kv_heads != 0 {
            return Err(Error::range(
                p("kv_heads"),
                self.kv_heads,
                format!("a divisor of heads = {}", self.heads),
            ));
        }
        check::positive(&p("published_params"), self.published_params)?;
        Ok(())
    }

    /// Dimension of one attention head.
    pub fn head_dim(&self) -> u64 {
        u64::from(self.hidden / self.heads)
    }

    /// Width of K (or V) per token per layer: `kv_heads × head_dim`.
    pub fn kv_dim(&self) -> u64 {
        u64::from(self.kv_heads) * self.head_dim()
    }

    /// Matmul weights of one transformer layer (attention projections + FFN), excluding biases
    /// and norms. Each contributes 2 FLOPs per token in a forward.
    pub fn layer_matmul_params(&self) -> u64 {
        let h = u64::from(self.hidden);
        let q = u64::from(self.heads) * self.head_dim();
        let attn = 2 * h * q + 2 * h * self.kv_dim();
        let ffn = if self.gated_ffn { 3 } else { 2 } * h * u64::from(self.ffn);
        attn + ffn
    }

    /// All parameters of one transformer layer (matmuls, biases, norms).
    pub fn layer_params(&self) -> u64 {
        let h = u64::from(self.hidden);
        let norm = match self.norm {
            NormKind::Rms => h,
            NormKind::Layer => 2 * h,
        };
        let bias = if self.bias {
            let q = u64::from(self.heads) * self.head_dim();
            let attn_b = q + 2 * self.kv_dim() + h;
            let ffn_b = if self.gated_ffn {
                2 * u64::from(self.ffn) + h
            } else {
                u64::from(self.ffn) + h
            };
            attn_b + ffn_b
        } else {
            0
        };
        self.layer_matmul_params() + bias + 2 * norm
    }

    /// Embedding width (hidden unless projected).
    pub fn embed_width(&self) -> u64 {
        if self.embed_dim > 0 {
            u64::from(self.embed_dim)
        } else {
            u64::from(self.hidden)
        }
    }

    /// Parameters of the LM head matmul (vocab × embedding width); counted in FLOPs and bytes
    /// whether or not it is tied.
    pub fn lm_head_params(&self) -> u64 {
        u64::from(self.vocab) * self.embed_width()
    }

    /// Total parameter count derived from the architecture.
    pub fn param_count(&self) -> u64 {
        let h = u64::from(self.hidden);
        let embed = u64::from(self.vocab) * self.embed_width();
        let head = if self.tied_embeddings {
            0
        } else {
            self.lm_head_params()
        };
        let proj = if self.embed_dim > 0 {
            2 * self.embed_width() * h
        } else {
            0
        };
        let pos = u64::from(self.learned_positions) * h;
        let final_norm = match self.norm {
            NormKind::Rms => h,
            NormKind::Layer => 2 * h,
        };
        u64::from(self.layers) * self.layer_params() + embed + head + proj + pos + final_norm
    }

    /// KV-cache bytes per token of context (all layers, K and V) at `dtype_bytes` per element.
    pub fn kv_bytes_per_token(&self, dtype_bytes: f64) -> f64 {
        2.0 * f64::from(self.layers) * self.kv_dim() as f64 * dtype_bytes
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::Catalog;

    #[test]
    fn llama2_7b_hand_count() {
        // 32 × (4·4096² + 3·4096·11008 + 2·4096) + 2·32000·4096 + 4096 = 6 738 415 616
        let c = Catalog::embedded().unwrap();
        assert_eq!(c.llm("llama-2-7b").unwrap().param_count(), 6_738_415_616);
    }

    #[test]
    fn gqa_kv_bytes() {
        // Llama-2-70B: 80 layers × 2 × 8 kv heads × 128 × 2 bytes = 327 680 bytes per token.
        let c = Catalog::embedded().unwrap();
        assert_eq!(
            c.llm("llama-2-70b").unwrap().kv_bytes_per_token(2.0),
            327_680.0
        );
    }
}
