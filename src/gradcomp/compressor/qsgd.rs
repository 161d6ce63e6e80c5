//! QSGD (Alistarh, Grubic, Li, Tomioka & Vojnovic 2017, "QSGD: Communication-Efficient SGD via
//! Gradient Quantization and Encoding", NeurIPS): each rank sends its bucket's norm and `b` bits per
//! element (sign + stochastic level); quantized levels of different ranks use different norms, so
//! they are all-gathered (`P·(b·n/8 + 4)` bytes) and dequantized before summing.

use super::{BucketContent, CodecWork, Compressor, Env, Stage};
use crate::gradcomp::collective::Op;

/// Encode: norm (read 4n) + quantize with random rounding (read 4n, write b·n/8). Decode: read the
/// P payloads, dequantize and sum (2·P·n ops), write 4n.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Qsgd {
    /// Bits per element, 1..=16.
    pub bits: u32,
}

impl Compressor for Qsgd {
    fn name(&self) -> String {
        format!("qsgd:bits={}", self.bits)
    }
    fn all_reducible(&self) -> bool {
        false
    }
    fn stages(&self, b: &BucketContent, env: &Env, out: &mut Vec<Stage>) {
        let p = env.cluster.workers as f64;
        let fam = "qsgd";
        let [enc, dec] = self.work(b, env.cluster.workers);
        out.push(Stage::Compute(env.codec_time(fam, &enc)));
        out.push(Stage::Comm(env.coll(Op::AllGather, p * self.wire_bytes(b))));
        out.push(Stage::Compute(env.codec_time(fam, &dec)));
    }
    fn codec_work(&self, b: &BucketContent, ranks: u32, out: &mut Vec<CodecWork>) {
        out.extend(self.work(b, ranks));
    }
    fn wire_bytes(&self, b: &BucketContent) -> f64 {
        self.bits as f64 * b.elems() as f64 / 8.0 + 4.0
    }
}

impl Qsgd {
    /// `encode` and `decode` on `ranks` ranks (see the type's doc).
    pub fn work(&self, b: &BucketContent, ranks: u32) -> [CodecWork; 2] {
        let n = b.elems() as f64;
        let p = f64::from(ranks);
        let payload = self.wire_bytes(b);
        [
            CodecWork::new("encode", 3.0, 8.0 * n + payload, 0.0, 5.0 * n),
            CodecWork::new("decode", 2.0, p * payload + 4.0 * n, 0.0, 2.0 * p * n),
        ]
    }
}
