//! signSGD with majority vote (Bernstein, Zhao, Azizzadenesheli & Anandkumar 2019, "signSGD with
//! Majority Vote is Communication Efficient and Fault Tolerant", ICLR): each rank sends one bit per
//! element; a vote is not a sum of packed bits, so the bits are all-gathered (`P·n/8` bytes) and
//! every rank counts the votes.

use super::{BucketContent, Compressor, Env, Stage};
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
        let n = b.elems() as f64;
        let p = env.cluster.workers as f64;
        let c = &env.codec;
        out.push(Stage::Compute(c.t(2.0, 4.0 * n + n / 8.0, 0.0, 2.0 * n)));
        out.push(Stage::Comm(env.coll(Op::AllGather, p * n / 8.0)));
        out.push(Stage::Compute(c.t(2.0, p * n / 8.0 + 4.0 * n, 0.0, p * n)));
    }
}
