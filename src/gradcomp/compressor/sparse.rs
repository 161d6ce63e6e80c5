//! Sparsification: Top-k (Aji & Heafield 2017, "Sparse Communication for Distributed Gradient
//! Descent"; with error feedback, Stich, Cordonnier & Jaggi 2018, "Sparsified SGD with Memory")
//! and Random-k. Each rank sends `k = ⌈D·n⌉` fp32 values and int32 indices; the sets differ
//! between ranks, so they are all-gathered (`P·8k` bytes gathered) and scatter-added.

use super::{BucketContent, CodecWork, Compressor, Env, Stage};
use crate::gradcomp::collective::Op;

fn sparse_stages(
    family: &str,
    wire_bytes: f64,
    [enc, dec]: [CodecWork; 2],
    env: &Env,
    out: &mut Vec<Stage>,
) {
    let p = env.cluster.workers as f64;
    out.push(Stage::Compute(env.codec_time(family, &enc)));
    out.push(Stage::Comm(env.coll(Op::AllGather, p * wire_bytes)));
    out.push(Stage::Compute(env.codec_time(family, &dec)));
}

/// `decode`: zero the dense buffer, scatter-add the P·k gathered entries, scale by 1/P.
fn sparse_decode(n: f64, k: f64, ranks: u32) -> CodecWork {
    let p = f64::from(ranks);
    CodecWork::new("decode", 3.0, 12.0 * n + 16.0 * p * k, 0.0, p * k + n)
}

fn k_of(density: f64, n: f64) -> f64 {
    (density * n).ceil().max(1.0)
}

/// Top-k with error feedback: the encoder adds the residual (read g, e; write g), takes |g|, runs a
/// radix select (about 3 passes over n) and gathers k values and indices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopK {
    /// Fraction of elements kept, in (0, 1].
    pub density: f64,
}

impl Compressor for TopK {
    fn name(&self) -> String {
        format!("topk:density={}", self.density)
    }
    fn all_reducible(&self) -> bool {
        false
    }
    fn stages(&self, b: &BucketContent, env: &Env, out: &mut Vec<Stage>) {
        let w = self.wire_bytes(b);
        sparse_stages("topk", w, self.work(b, env.cluster.workers), env, out);
    }
    fn codec_work(&self, b: &BucketContent, ranks: u32, out: &mut Vec<CodecWork>) {
        out.extend(self.work(b, ranks));
    }
    fn wire_bytes(&self, b: &BucketContent) -> f64 {
        8.0 * k_of(self.density, b.elems() as f64)
    }
}

impl TopK {
    /// `encode` (error feedback, |g|, radix select, gather) and `decode` on `ranks` ranks.
    pub fn work(&self, b: &BucketContent, ranks: u32) -> [CodecWork; 2] {
        let n = b.elems() as f64;
        let k = k_of(self.density, n);
        [
            CodecWork::new(
                "encode",
                8.0,
                12.0 * n + 4.0 * 3.0 * n + 16.0 * k,
                0.0,
                4.0 * n,
            ),
            sparse_decode(n, k, ranks),
        ]
    }
}

/// Random-k with error feedback and indices drawn from a seed every rank shares (Vogels et al.
/// 2019's Random-k baseline; the harness's `randomk`): each rank gathers the same k positions, so
/// only the k values travel, summed by an all-reduce (4k bytes), and decode scatters their mean
/// into a zeroed dense buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomK {
    /// Fraction of elements kept, in (0, 1].
    pub density: f64,
}

impl Compressor for RandomK {
    fn name(&self) -> String {
        format!("randomk:density={}", self.density)
    }
    fn all_reducible(&self) -> bool {
        true
    }
    fn stages(&self, b: &BucketContent, env: &Env, out: &mut Vec<Stage>) {
        let [enc, dec] = self.work(b, env.cluster.workers);
        let fam = "randomk";
        out.push(Stage::Compute(env.codec_time(fam, &enc)));
        out.push(Stage::Comm(env.coll(Op::AllReduce, self.wire_bytes(b))));
        out.push(Stage::Compute(env.codec_time(fam, &dec)));
    }
    fn codec_work(&self, b: &BucketContent, ranks: u32, out: &mut Vec<CodecWork>) {
        out.extend(self.work(b, ranks));
    }
    /// The k f32 values (the indices come from the shared seed).
    fn wire_bytes(&self, b: &BucketContent) -> f64 {
        4.0 * k_of(self.density, b.elems() as f64)
    }
}

impl RandomK {
    /// `encode` (error feedback, k seeded indices, gather of k values) and `decode` (zero the
    /// dense buffer, scatter the k summed values scaled by 1/P); the same on any rank count.
    pub fn work(&self, b: &BucketContent, _ranks: u32) -> [CodecWork; 2] {
        let n = b.elems() as f64;
        let k = k_of(self.density, n);
        [
            CodecWork::new("encode", 4.0, 12.0 * n + 12.0 * k, 0.0, k),
            CodecWork::new("decode", 2.0, 4.0 * n + 12.0 * k, 0.0, k),
        ]
    }
}
