//! fp16 / bf16 casts: PyTorch DDP's `fp16_compress_hook` and `bf16_compress_hook`.

use super::{BucketContent, CodecWork, Compressor, Env, Stage};
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
        let fam = if self.bf16 { "bf16" } else { "fp16" };
        let [enc, dec] = self.work(b);
        out.push(Stage::Compute(env.codec_time(fam, &enc)));
        out.push(Stage::Comm(env.coll(Op::AllReduce, self.wire_bytes(b))));
        out.push(Stage::Compute(env.codec_time(fam, &dec)));
    }
    fn codec_work(&self, b: &BucketContent, _: u32, out: &mut Vec<CodecWork>) {
        out.extend(self.work(b));
    }
    fn wire_bytes(&self, b: &BucketContent) -> f64 {
        2.0 * b.elems() as f64
    }
}

impl Cast16 {
    /// `encode` (read 4n, write 2n bytes) and `decode` (read 2n, write 4n), one launch each.
    pub fn work(&self, b: &BucketContent) -> [CodecWork; 2] {
        let n = b.elems() as f64;
        [
            CodecWork::new("encode", 1.0, 6.0 * n, 0.0, 0.0),
            CodecWork::new("decode", 1.0, 6.0 * n, 0.0, 0.0),
        ]
    }
}
