//! No compression: fp32 gradients, one all-reduce per bucket (PyTorch DDP's default).

use super::{BucketContent, CodecWork, Compressor, Env, Stage};
use crate::gradcomp::collective::Op;

/// Plain DDP: all-reduce of `4n` bytes, no codec work.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NoCompression;

impl Compressor for NoCompression {
    fn name(&self) -> String {
        "none".into()
    }
    fn all_reducible(&self) -> bool {
        true
    }
    fn stages(&self, b: &BucketContent, env: &Env, out: &mut Vec<Stage>) {
        out.push(Stage::Comm(env.coll(Op::AllReduce, self.wire_bytes(b))));
    }
    fn wire_bytes(&self, b: &BucketContent) -> f64 {
        4.0 * b.elems() as f64
    }
    fn codec_work(&self, _: &BucketContent, _: u32, _: &mut Vec<CodecWork>) {}
}
