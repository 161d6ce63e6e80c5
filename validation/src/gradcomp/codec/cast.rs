//! `fp16` / `bf16`: PyTorch DDP's `fp16_compress_hook` and `bf16_compress_hook`, as perfcast's
//! `compressor/cast.rs` models them: cast the f32 bucket to 16 bits (scaled by 1/world first,
//! so the sum cannot overflow), all-reduce `2n` bytes, cast back.
//!
//! Round-trip error (world 1): the cast rounds to nearest, so every element of normal magnitude
//! comes back within a relative 2⁻¹¹ (fp16, 11-bit significand) or 2⁻⁸ (bf16, 8-bit); fp16
//! values below 2⁻¹⁴ are subnormal and come back within an absolute 2⁻²⁵.

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};

use super::{Collective, TwoStage};

/// The 16-bit cast codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cast16 {
    /// bf16 (`true`) or fp16.
    pub bf16: bool,
}

impl Cast16 {
    /// fp16 (`bf16 = false`) or bf16.
    pub fn new(bf16: bool) -> Cast16 {
        Cast16 { bf16 }
    }

    fn dtype(&self) -> DType {
        if self.bf16 {
            DType::BF16
        } else {
            DType::F16
        }
    }
}

impl TwoStage for Cast16 {
    fn name(&self) -> String {
        if self.bf16 { "bf16" } else { "fp16" }.into()
    }

    fn collective(&self) -> Collective {
        Collective::AllReduce
    }

    /// `(grad / world)` cast to 16 bits: two launches (scale in f32, cast).
    fn encode(&mut self, _bucket: usize, grad: &Tensor, world: usize) -> Result<Vec<Tensor>> {
        Ok(vec![grad
            .affine(1.0 / world as f64, 0.0)?
            .to_dtype(self.dtype())?])
    }

    /// The summed 16-bit payload cast back to f32 (already the average): one launch.
    fn decode(&mut self, _b: usize, n: usize, recv: &[Tensor], _world: usize) -> Result<Tensor> {
        let [h] = recv else {
            bail!("{}: expected one payload, got {}", self.name(), recv.len())
        };
        if h.elem_count() != n {
            bail!(
                "{}: payload of {} elements, bucket {n}",
                self.name(),
                h.elem_count()
            );
        }
        Ok(h.to_dtype(DType::F32)?)
    }

    fn wire_bytes(&self, n: usize) -> u64 {
        2 * n as u64
    }
}
