//! fp16 / bf16 casts: PyTorch DDP's `fp16_compress_hook` and `bf16_compress_hook`.

use super::{BucketContent, Compressor, Env, Stage};
use crate::gradcomp::collective::Op;

/// Cast the fp32 bucket to 16 bits (one kernel: read 4n, write 2n bytes), all-reduce `2n` bytes,
/// cast back (read 2n, write 4n).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cast16 {
    /// `true` for bf16, `false` for fp16 (same cost).
    pub bf16: bool,
}

impl Compressor for Cast16 {
    fn name(&self) -> String {
        if self.bf16 { "bf16" } else { "fp16" }.into()
    }
    fn all_reducible(&self) -> bool {
        true
    }
    fn stages(&self, b: &BucketContent, env: &Env, out: &mut Vec<Stage>) {
        let n = b.elems() as f64;
        let c = &env.codec;
        out.push(Stage::Compute(c.t(1.0, 6.0 * n, 0.0, 0.0)));
        out.push(Stage::Comm(env.coll(Op::AllReduce, 2.0 * n)));
        out.push(Stage::Compute(c.t(1.0, 6.0 * n, 0.0, 0.0)));
    }
}
