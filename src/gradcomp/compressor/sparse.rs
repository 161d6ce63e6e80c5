//! Sparsification: Top-k (Aji & Heafield 2017, "Sparse Communication for Distributed Gradient
//! Descent"; with error feedback, Stich, Cordonnier & Jaggi 2018, "Sparsified SGD with Memory")
//! and Random-k. Each rank sends `k = ⌈D·n⌉` fp32 values and int32 indices; the sets differ
//! between ranks, so they are all-gathered (`P·8k` bytes gathered) and scatter-added.

use super::{BucketContent, Compressor, Env, Stage};
use crate::gradcomp::collective::Op;

fn sparse_stages(k: f64, encode_s: f64, b: &BucketContent, env: &Env, out: &mut Vec<Stage>) {
    let n = b.elems() as f64;
    let p = env.cluster.workers as f64;
    out.push(Stage::Compute(encode_s));
    out.push(Stage::Comm(env.coll(Op::AllGather, p * 8.0 * k)));
    // zero the dense buffer, scatter-add P·k entries, scale by 1/P
    out.push(Stage::Compute(env.codec.t(
        3.0,
        12.0 * n + 16.0 * p * k,
        0.0,
        p * k + n,
    )));
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
        let n = b.elems() as f64;
        let k = k_of(self.density, n);
        let enc = env
            .codec
            .t(8.0, 12.0 * n + 4.0 * 3.0 * n + 16.0 * k, 0.0, 4.0 * n);
        sparse_stages(k, enc, b, env, out);
    }
}

/// Random-k: error feedback, k random indices, gather.
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
        false
    }
    fn stages(&self, b: &BucketContent, env: &Env, out: &mut Vec<Stage>) {
        let n = b.elems() as f64;
        let k = k_of(self.density, n);
        let enc = env.codec.t(4.0, 12.0 * n + 16.0 * k, 0.0, k);
        sparse_stages(k, enc, b, env, out);
    }
}
