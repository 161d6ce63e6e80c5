//! PowerSGD (Vogels, Karimireddy & Jaggi 2019, "PowerSGD: Practical Low-Rank Gradient Compression
//! for Distributed Optimization", NeurIPS), as in PyTorch's `powerSGD_hook`.
//!
//! Per bucket: all-reduce the tensors it does not compress; per compressed matrix M (m×c), with
//! error feedback: P = M·Q, all-reduce P, orthogonalize P (Gram–Schmidt, about 3 launches per
//! column), Q = Mᵀ·P, all-reduce Q, decompress M' = P·Qᵀ and keep the error M − M'. Both
//! all-reduces carry `4·r·(m + c)` bytes per matrix instead of `4·m·c`.

use super::{BucketContent, CodecWork, Compressor, Env, Stage};
use crate::gradcomp::collective::Op;

/// Whether PowerSGD compresses an `m × c` matrix at rank r: PyTorch's `min_compression_rate = 2`
/// rule, `m·c ≥ 2·r·(m + c)`; other tensors are all-reduced uncompressed.
pub fn powersgd_compresses(rank: u64, m: u64, c: u64) -> bool {
    m * c >= 2 * rank * (m + c)
}

/// PowerSGD at rank r.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerSgd {
    /// Rank r ≥ 1.
    pub rank: u32,
}

impl Compressor for PowerSgd {
    fn name(&self) -> String {
        format!("powersgd:rank={}", self.rank)
    }
    fn all_reducible(&self) -> bool {
        true
    }
    fn stages(&self, b: &BucketContent, env: &Env, out: &mut Vec<Stage>) {
        let (uncompressed, sizes, work) = self.plan(b);
        if uncompressed > 0.0 {
            out.push(Stage::Comm(env.coll(Op::AllReduce, 4.0 * uncompressed)));
        }
        let Some([p, q, decode]) = work else {
            return;
        };
        let fam = "powersgd";
        out.push(Stage::Compute(env.codec_time(fam, &p)));
        out.push(Stage::Comm(env.coll(Op::AllReduce, 4.0 * sizes.0)));
        out.push(Stage::Compute(env.codec_time(fam, &q)));
        out.push(Stage::Comm(env.coll(Op::AllReduce, 4.0 * sizes.1)));
        out.push(Stage::Compute(env.codec_time(fam, &decode)));
    }
    fn codec_work(&self, b: &BucketContent, _: u32, out: &mut Vec<CodecWork>) {
        if let (_, _, Some(w)) = self.plan(b) {
            out.extend(w);
        }
    }
    /// The uncompressed tensors' fp32 bytes plus those of P and Q.
    fn wire_bytes(&self, b: &BucketContent) -> f64 {
        let (uncompressed, (p, q), _) = self.plan(b);
        4.0 * (uncompressed + p + q)
    }
}

impl PowerSgd {
    /// The bucket's uncompressed elements, the P and Q elements `(m·r, c·r)` summed over the
    /// compressed matrices, and the three codec stages `p`, `q`, `decode` (`None` when no matrix
    /// is compressed).
    pub fn plan(&self, b: &BucketContent) -> (f64, (f64, f64), Option<[CodecWork; 3]>) {
        let r = self.rank as u64;
        let rf = r as f64;
        let mut uncompressed = b.vector_elems as f64;
        let (mut cnt, mut elems, mut p_elems, mut q_elems, mut mm, mut orth) =
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for &(m, cols) in &b.matrices {
            if powersgd_compresses(r, m, cols) {
                let (mf, cf) = (m as f64, cols as f64);
                cnt += 1.0;
                elems += mf * cf;
                p_elems += mf * rf;
                q_elems += cf * rf;
                mm += 2.0 * mf * cf * rf;
                orth += 2.0 * mf * rf * rf;
            } else {
                uncompressed += (m * cols) as f64;
            }
        }
        if cnt == 0.0 {
            return (uncompressed, (0.0, 0.0), None);
        }
        let work = [
            // error feedback (read M, E; write M) + P = M·Q
            CodecWork::new(
                "p",
                1.0 + cnt,
                12.0 * elems + 4.0 * (p_elems + q_elems),
                mm,
                0.0,
            ),
            // orthogonalize P column by column (modified Gram–Schmidt, re-orthogonalized against
            // the finished columns) + Q = Mᵀ·P. Counted as the GPU harness runs it
            // (validation/src/gradcomp/codec/powersgd.rs `orthogonalize`): per column 5 launches
            // (norm, divide), 3 + i to re-orthogonalize column i > 0 against the i finished ones
            // (their concatenation copies one tensor per launch), 4 to deflate the later
            // columns; then r copies to assemble P, Q's matmul and its concatenation:
            // r(r−1)/2 + 13r − 5 launches per matrix (r = 1: 8; r = 32: 923). Bytes: M read
            // once and Q written, plus the column passes over P: 32 bytes per P element
            // linearly and 24 per P element per earlier column (the re-orthogonalization reads
            // the finished columns, the deflation the later ones): quadratic in r.
            CodecWork::new(
                "q",
                cnt * (rf * (rf - 1.0) / 2.0 + 13.0 * rf - 5.0),
                4.0 * (elems + q_elems) + p_elems * (32.0 + 24.0 * (rf - 1.0)),
                mm + orth,
                0.0,
            ),
            // M' = P·Qᵀ, error = M − M'
            CodecWork::new(
                "decode",
                2.0 * cnt,
                12.0 * elems + 4.0 * (p_elems + q_elems),
                mm,
                0.0,
            ),
        ];
        (uncompressed, (p_elems, q_elems), Some(work))
    }
}
