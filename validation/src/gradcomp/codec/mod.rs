//! The codec hook of the DDP harness: a [`Codec`] turns one bucket's flat local gradient into
//! the averaged gradient every rank applies, moving data only through a [`Comm`].
//!
//! PLACEHOLDER (branch `ddp`): only the two traits, [`LocalComm`] and [`NoneCodec`], so the step
//! engine builds and tests before the compressors land; the full module (fp16/bf16, PowerSGD,
//! Top-k, Random-k, signSGD, QSGD) replaces this file at merge.

use candle_core::{Result, Tensor};

/// The collectives a codec may use, over `world` ranks.
pub trait Comm {
    /// Ranks taking part.
    fn world(&self) -> usize;
    /// Element-wise sum of `t` over all ranks (same shape and dtype as `t`).
    ///
    /// # Errors
    /// A device or communication error.
    fn all_reduce_sum(&mut self, t: &Tensor) -> Result<Tensor>;
    /// Concatenation of every rank's `t` along dimension 0, in rank order (`world · d0` rows).
    ///
    /// # Errors
    /// A device or communication error.
    fn all_gather(&mut self, t: &Tensor) -> Result<Tensor>;
}

/// A gradient codec (compressor, collective, decompressor) applied per bucket.
pub trait Codec {
    /// Method name as the rows' `method=` parameter writes it.
    fn name(&self) -> String;
    /// One round on bucket `bucket`: `grad` is the local flat f32 gradient; `shapes` are its
    /// segments in flat order (`(rows, cols)` per matrix, `(n, 1)` per layer's vector part), with
    /// `Σ rows·cols = grad.elem_count()`. Returns the averaged flat gradient (same shape).
    ///
    /// # Errors
    /// A device or communication error.
    fn round(
        &mut self,
        bucket: usize,
        grad: &Tensor,
        shapes: &[(usize, usize)],
        comm: &mut dyn Comm,
    ) -> Result<Tensor>;
}

/// One-GPU stand-in for `world` ranks holding the same tensor: a real reduction over `world`
/// copies on the device (the result a real collective would give when every rank has `t`).
pub struct LocalComm {
    /// Ranks emulated.
    pub world: usize,
}

impl Comm for LocalComm {
    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&mut self, t: &Tensor) -> Result<Tensor> {
        let copies = vec![t.clone(); self.world.max(1)];
        Tensor::stack(&copies, 0)?.sum(0)
    }

    fn all_gather(&mut self, t: &Tensor) -> Result<Tensor> {
        let copies = vec![t.clone(); self.world.max(1)];
        Tensor::cat(&copies, 0)
    }
}

/// No compression: all-reduce the bucket, divide by the world size.
pub struct NoneCodec;

impl Codec for NoneCodec {
    fn name(&self) -> String {
        "none".into()
    }

    fn round(
        &mut self,
        _bucket: usize,
        grad: &Tensor,
        _shapes: &[(usize, usize)],
        comm: &mut dyn Comm,
    ) -> Result<Tensor> {
        let w = comm.world() as f64;
        comm.all_reduce_sum(grad)? / w
    }
}
