//! signSGD with majority vote (Bernstein, Zhao, Azizzadenesheli & Anandkumar 2019, "signSGD with
//! Majority Vote is Communication Efficient and Fault Tolerant", ICLR): each rank sends one bit per
//! element; a vote is not a sum of packed bits, so the bits are all-gathered (`P·n/8` bytes) and
//! every rank counts the votes.

use super::{BucketContent, CodecWork, Compressor, Env, Stage};
use crate::gradcomp::collective::Op;

/// Encode: read 4n, pack to n/8 bytes. Decode: unpack P·n/8 bytes, count votes (P·n ops), write
/// the signed fp32 result (4n).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SignSgd;

impl Compressor for SignSgd {
    fn name(&self) -> String {
        "signsgd".into()
    }
    fn all_reducible(&self) -> bool {
        false
    }
    fn stages(&self, b: &BucketContent, env: &Env, out: &mut Vec<Stage>) {
        let p = env.cluster.workers as f64;
        let fam = "signsgd";
        let [enc, dec] = self.work(b, env.cluster.workers);
        out.push(Stage::Compute(env.codec_time(fam, &enc)));
        out.push(Stage::Comm(env.coll(Op::AllGather, p * self.wire_bytes(b))));
        out.push(Stage::Compute(env.codec_time(fam, &dec)));
    }
    fn codec_work(&self, b: &BucketContent, ranks: u32, out: &mut Vec<CodecWork>) {
        out.extend(self.work(b, ranks));
    }
    fn wire_bytes(&self, b: &BucketContent) -> f64 {
        b.elems() as f64 / 8.0
    }
}

impl SignSgd {
    /// `encode` and `decode` on `ranks` ranks (see the type's doc).
    pub fn work(&self, b: &BucketContent, ranks: u32) -> [CodecWork; 2] {
        let n = b.elems() as f64;
        let p = f64::from(ranks);
        [
            CodecWork::new("encode", 2.0, 4.0 * n + n / 8.0, 0.0, 2.0 * n),
            CodecWork::new("decode", 2.0, p * n / 8.0 + 4.0 * n, 0.0, p * n),
        ]
    }
}
