//! PowerSGD (Vogels, Karimireddy & Jaggi 2019, "PowerSGD: Practical Low-Rank Gradient Compression
//! for Distributed Optimization", NeurIPS), as in PyTorch's `powerSGD_hook`.
//!
//! Per bucket: all-reduce the tensors it does not compress; per compressed matrix M (m×c), with
//! error feedback: P = M·Q, all-reduce P, orthogonalize P (Gram–Schmidt, one kernel launch for
//! the bucket's matrices), Q = Mᵀ·P, all-reduce Q, decompress M' = P·Qᵀ and keep the error M − M'. Both
//! all-reduces carry `4·r·(m + c)` bytes per matrix instead of `4·m·c`.

use super::{BucketContent, CodecWork, Compressor, Env, Stage};
use crate::gradcomp::collective::Op;

/// Whether PowerSGD compresses an `m × c` matrix at rank r: PyTorch's `min_compression_rate = 2`
/// rule, `m·c ≥ 2·r·(m + c)`; other tensors are all-reduced uncompressed.
pub fn powersgd_compresses(rank: u64, m: u64, c: u64) -> bool {
    m * c >= 2 * rank * (m + c)
}

/// Threads per block of the GPU harness's orthogonalization kernel (`codec_orthogonalize`, one
/// block per matrix).
pub const ORTH_BLOCK: f64 = 1024.0;

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
    /// is compressed), counted as the GPU harness runs them (run 76 on: the fused kernels of
    /// `validation/src/gradcomp/codec/psgd.rs`, each reading every element of the bucket's
    /// matrices once and doing r fused multiply-adds per element on the CUDA cores, so their
    /// 2·r FLOPs per element are vector FLOPs; one launch per stage kernel per 64 matrices,
    /// [`FUSED_TABLE`]).
    pub fn plan(&self, b: &BucketContent) -> (f64, (f64, f64), Option<[CodecWork; 3]>) {
        let r = self.rank as u64;
        let rf = r as f64;
        let mut uncompressed = b.vector_elems as f64;
        let (mut cnt, mut elems, mut p_elems, mut q_elems, mut m_max) =
            (0.0, 0.0, 0.0, 0.0, 0.0f64);
        // Stage q's re-reads: P once per 64-column tile, Q's atomic adds once per 64-row chunk;
        // stage p's atomic adds of P, once per 256-column chunk.
        let (mut p_tiles, mut q_chunks, mut p_chunks) = (0.0, 0.0, 0.0);
        for &(m, cols) in &b.matrices {
            if powersgd_compresses(r, m, cols) {
                let (mf, cf) = (m as f64, cols as f64);
                cnt += 1.0;
                elems += mf * cf;
                p_elems += mf * rf;
                q_elems += cf * rf;
                m_max = m_max.max(mf);
                p_tiles += mf * rf * (cf / Q_TILE).ceil();
                q_chunks += cf * rf * (mf / Q_TILE).ceil();
                p_chunks += mf * rf * (cf / CHUNK_COLS).ceil();
            } else {
                uncompressed += (m * cols) as f64;
            }
        }
        if cnt == 0.0 {
            return (uncompressed, (0.0, 0.0), None);
        }
        let fma = 2.0 * elems * rf;
        let launches = (cnt / FUSED_TABLE).ceil();
        // The harness's register width: rank columns padded to a power of two (`codec_psgd_*_R`).
        // Every warp of the fused p and decode kernels runs an R-long dependent chain (p: R warp
        // sums of 5 shuffles each and R atomic adds; decode: R fused multiply-adds per element),
        // counted as R syncs: on small matrices that latency, not bandwidth, sets the time (run 76:
        // rank 32 on 128×512 took 13.3 µs where bytes and FLOPs give 6.6).
        let width = (r.max(1)).next_power_of_two() as f64;
        let work = [
            // Zeroing P (one launch), then one launch: M + E (read M, E; write M + E),
            // P = (M + E)·Q (Q read; P's partial sums added once per 256-column chunk of each
            // row), and the gather of the uncompressed elements (read and written).
            CodecWork::new(
                "p",
                1.0 + launches,
                12.0 * elems + 4.0 * (p_elems + q_elems + p_chunks) + 8.0 * uncompressed,
                0.0,
                fma,
            )
            .with_block(width, 0.0)
            .with_overlap(),
            // The orthogonalization of P's columns (modified Gram–Schmidt, re-orthogonalized
            // against the finished columns), one launch for every matrix of the bucket (one
            // thread block per matrix, `codec_orthogonalize`), P copied in and out (8 bytes per
            // element); zeroing Q (one launch); Q = Mᵀ·P (one launch): M + E read once, P read
            // once per 64-column tile, Q's atomic adds once per 64-row chunk. The orthogonalization
            // blocks run side by side (a bucket holds fewer matrices than the GPU has SMs), so
            // the block of the largest matrix (m rows) is the critical path: its r² passes over
            // P's columns (per column i: i re-orthogonalization dot/axpy pairs, the norm and
            // scale, r − 1 − i deflation pairs), each ending in a block-wide reduction (r²
            // syncs), do r·(4r − 1) element operations per row at 1024 threads a step:
            // r·(4r − 1)·⌈m/1024⌉ block steps (run 48: 481 µs at rank 32 for m = 768, 1,161 µs
            // for 3072, 10,790 µs for 30,522).
            CodecWork::new(
                "q",
                2.0 + launches,
                8.0 * p_elems + 4.0 * q_elems + 4.0 * elems + 4.0 * (p_tiles + q_chunks),
                0.0,
                fma,
            )
            .with_block(rf * rf, rf * (4.0 * rf - 1.0) * (m_max / ORTH_BLOCK).ceil()),
            // One launch: M̂ = P·(Q/world)ᵀ written to the output, E = (M + E) − M̂ (read one,
            // write two), P read, Q read and the next round's Q written, the uncompressed
            // elements divided by the world (read and written).
            CodecWork::new(
                "decode",
                launches,
                12.0 * elems + 4.0 * p_elems + 8.0 * q_elems + 8.0 * uncompressed,
                0.0,
                fma,
            )
            .with_block(width, 0.0)
            .with_overlap(),
        ];
        (uncompressed, (p_elems, q_elems), Some(work))
    }
}

/// Matrices per launch of the harness's fused PowerSGD kernels (`PSGD_MAX` in
/// `validation/src/gradcomp/codec/codec.cu`). The harness takes its launch geometry from these
/// three constants (`psgd.rs`), and a test there checks them against `codec.cu`'s defines.
pub const FUSED_TABLE: f64 = 64.0;
/// Rows per chunk and columns per tile of the harness's fused `Q = Mᵀ·P` kernel
/// (`PSGD_QROWS_MAX`, `PSGD_QCOLS`).
pub const Q_TILE: f64 = 64.0;
/// Columns per warp unit of the harness's fused `p` and `decode` kernels (`PSGD_CW`).
pub const CHUNK_COLS: f64 = 256.0;

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-worked counts at rank 2 for a bucket of 16×12 and 40×10 (both compress: 192 ≥ 112,
    /// 400 ≥ 200) plus a 2×3 that does not, and 5 loose elements.
    #[test]
    fn stage_counts_follow_the_harness() {
        let b = BucketContent {
            matrices: vec![(16, 12), (40, 10), (2, 3)],
            vector_elems: 5,
        };
        let mut w = Vec::new();
        PowerSgd { rank: 2 }.codec_work(&b, 1, &mut w);
        let (elems, p, q, rest) = (
            192.0 + 400.0,
            2.0 * (16.0 + 40.0),
            2.0 * (12.0 + 10.0),
            11.0,
        );
        assert_eq!(w.len(), 3);
        // p: zeroing P and one fused launch; M + E, P, Q, P's adds (one 256-column chunk per
        // row) and the gathered 11 uncompressed elements.
        assert_eq!(w[0].launches, 2.0);
        assert_eq!(w[0].bytes, 12.0 * elems + 4.0 * (p + q + p) + 8.0 * rest);
        assert_eq!(w[0].vector_flops, 2.0 * 2.0 * elems);
        assert_eq!(w[0].matmul_flops, 0.0);
        // The rank chain: width 2 at rank 2 (p and decode alike).
        assert_eq!((w[0].syncs, w[2].syncs, w[0].block_steps), (2.0, 2.0, 0.0));
        // q: orthogonalization, zeroing Q, the fused Q kernel; every matrix fits one 64×64 tile,
        // so P and Q are each touched once more. Block steps r·(4r − 1)·⌈m/1024⌉ of the
        // largest P's block: 2·7·1; r² syncs.
        assert_eq!(w[1].launches, 3.0);
        assert_eq!(w[1].bytes, 8.0 * p + 4.0 * q + 4.0 * elems + 4.0 * (p + q));
        assert_eq!(w[1].block_steps, 2.0 * 7.0);
        assert_eq!(w[1].syncs, 4.0);
        // decode: one fused launch.
        assert_eq!(w[2].launches, 1.0);
        assert_eq!(w[2].bytes, 12.0 * elems + 4.0 * p + 8.0 * q + 8.0 * rest);
        // 30,522 × 768 (BERT's embedding) at rank 4: 30 block steps per column pass; P is
        // re-read by 12 column tiles, Q's adds come from 477 row chunks.
        let emb = BucketContent {
            matrices: vec![(30522, 768)],
            vector_elems: 0,
        };
        w.clear();
        PowerSgd { rank: 4 }.codec_work(&emb, 1, &mut w);
        assert_eq!(w[1].block_steps, 4.0 * 15.0 * 30.0);
        assert_eq!(w[1].syncs, 16.0);
        let (p, q) = (4.0 * 30522.0, 4.0 * 768.0);
        assert_eq!(
            w[1].bytes,
            8.0 * p + 4.0 * q + 4.0 * 30522.0 * 768.0 + 4.0 * (p * 12.0 + q * 477.0)
        );
        // 130 compressed matrices take three launches of each fused kernel.
        let many = BucketContent {
            matrices: vec![(64, 64); 130],
            vector_elems: 0,
        };
        w.clear();
        PowerSgd { rank: 1 }.codec_work(&many, 1, &mut w);
        assert_eq!(
            (w[0].launches, w[1].launches, w[2].launches),
            (4.0, 5.0, 3.0)
        );
    }
}
