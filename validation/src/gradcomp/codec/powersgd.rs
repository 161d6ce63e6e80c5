//! `powersgd:rank=R`: PowerSGD (Vogels, Karimireddy & Jaggi 2019, "PowerSGD: Practical Low-Rank
//! Gradient Compression for Distributed Optimization", NeurIPS, Algorithm 1), as PyTorch's
//! `powerSGD_hook` runs it and perfcast's `compressor/powersgd.rs` models it.
//!
//! Per bucket: the tensors PowerSGD does not compress (vectors, and matrices failing PyTorch's
//! `m·c ≥ 2·r·(m + c)` rule, [`powersgd_compresses`]) are all-reduced uncompressed. Per
//! compressed `m × c` matrix M, with error feedback E (zero at first):
//!
//! 1. stage `p`: M ← M + E; P = M·Q (`m × r`); all-reduce P;
//! 2. stage `q`: orthogonalize P's columns (modified Gram–Schmidt with one re-orthogonalization
//!    per column, norms floored at the smallest normal f32; PyTorch itself uses Gram–Schmidt
//!    at r ≤ 2 and a Householder QR above), every matrix of the bucket in one kernel launch
//!    ([`kernels::orthogonalize`], one block per matrix); Q = Mᵀ·P (`c × r`); all-reduce Q,
//!    divide by the world;
//! 3. stage `decode`: M̂ = P·Qᵀ (the average gradient); E ← M − M̂; Q is kept as the next
//!    round's start (Vogels et al.'s warm start: one power iteration per round).
//!
//! Both all-reduces carry `4·r·(m + c)` bytes per matrix instead of `4·m·c`. Q starts as a
//! seeded standard normal matrix drawn column by column, so the first R columns at rank R' > R
//! are the rank-R start: the subspaces are nested and the reconstruction error of one round
//! falls monotonically with R (what [`super::check`] verifies).
//!
//! The stages run as the fused kernels of [`psgd`] (runs 73–76; their final form from run 76;
//! before, candle ops and cuBLAS matmuls per matrix): stage `p` is two launches per bucket
//! (zeroing P; error feedback, P, and the gather of the uncompressed elements), stage `q` three
//! (the orthogonalization, zeroing Q, Q), stage `decode` one (M̂ into the flat output, E, the
//! uncompressed elements, the next Q). Ranks 1..=32 ([`psgd::MAX_RANK`]).
//!
//! Layout: the bucket's compressed matrices are packed (M + E and E, `Σ m·c`), P and Q are
//! concatenated per matrix and held transposed (`Pᵀ` is `r × m`, `Qᵀ` is `r × c`, contiguous) so
//! that Gram–Schmidt works on contiguous rows.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
pub use perfcast::gradcomp::compressor::powersgd::powersgd_compresses;

use super::psgd::{self, Plan};
use super::{flat_f32, kernels, Codec, Comm};

/// Floor of each column norm before dividing: the smallest normal f32, so a zero column stays
/// zero instead of becoming NaN, while every other column is divided by its exact norm (PyTorch's
/// `orthogonalization_epsilon` defaults to 0; an additive offset would make the result depend
/// on the gradient's scale and so on the world size).
pub const NORM_FLOOR: f32 = f32::MIN_POSITIVE;

/// PowerSGD at rank `rank` with its per-bucket state.
pub struct PowerSgd {
    rank: usize,
    seed: u64,
    state: HashMap<usize, BucketState>,
}

/// Error feedback and warm-start Qᵀ of every compressed matrix of one bucket.
struct BucketState {
    shapes: Vec<(usize, usize)>,
    plan: Arc<Plan>,
    /// Every compressed matrix's Qᵀ, concatenated (`None` when none is compressed).
    qt: Option<Tensor>,
    /// The packed error feedback (`None` before the first decode).
    ef: Option<Tensor>,
    /// Windows of the compressed matrices' Pᵀ in the concatenated P (`r·m` elements each) on
    /// the device, the orthogonalization kernel's input (on the host: [`Plan::windows`]).
    windows: Option<Tensor>,
}

/// What stage `p` leaves for the next stages of one bucket.
pub struct Round {
    plan: Arc<Plan>,
    /// The packed error-fed matrices `M + E`.
    pub mef: Option<Tensor>,
    /// Every compressed matrix's `Pᵀ` (`r × m`), flattened and concatenated (what the first
    /// all-reduce carries).
    pub p_flat: Option<Tensor>,
    /// The uncompressed elements (matrices failing the rule, then the vector tail),
    /// concatenated (its own all-reduce).
    pub rest: Option<Tensor>,
    /// After stage `q`: the orthogonalized, concatenated `Pᵀ`.
    pub p: Option<Tensor>,
    /// The windows of `p_flat` on the device, one per compressed matrix.
    windows: Option<Tensor>,
}

impl Round {
    /// Every device tensor of the round (what a captured stage `q` replaces or reads).
    pub fn tensors(&self) -> Vec<Tensor> {
        let mut v: Vec<Tensor> = [&self.mef, &self.p, &self.p_flat, &self.rest]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        v.extend(self.windows.iter().cloned());
        v
    }
}

impl PowerSgd {
    /// Rank `rank` (1..=32), Q drawn from `seed`.
    pub fn new(rank: usize, seed: u64) -> PowerSgd {
        PowerSgd {
            rank,
            seed,
            state: HashMap::new(),
        }
    }

    /// perfcast's name, `powersgd:rank=R`.
    pub fn name(&self) -> String {
        format!("powersgd:rank={}", self.rank)
    }

    /// The rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Bytes one rank all-reduces per round for a bucket of these matrices plus `vector_elems`
    /// loose elements: `4·r·m` (P) + `4·r·c` (Q) per compressed matrix, 4 per other element.
    pub fn wire_bytes(&self, shapes: &[(usize, usize)], vector_elems: usize) -> u64 {
        let r = self.rank as u64;
        let mut b = 4 * vector_elems as u64;
        for &(m, c) in shapes {
            let (m, c) = (m as u64, c as u64);
            b += if powersgd_compresses(r, m, c) {
                4 * r * (m + c)
            } else {
                4 * m * c
            };
        }
        b
    }

    fn bucket_state(
        &mut self,
        bucket: usize,
        n: usize,
        shapes: &[(usize, usize)],
        dev: &Device,
    ) -> Result<&mut BucketState> {
        let fresh = match self.state.get(&bucket) {
            Some(s) => s.shapes != shapes || s.plan.n != n,
            None => true,
        };
        if fresh {
            let plan = Plan::new(shapes, n, self.rank)
                .map_err(|e| anyhow::anyhow!("powersgd bucket {bucket}: {e}"))?;
            let r = self.rank;
            let mut qts = Vec::with_capacity(plan.mats.len());
            for x in &plan.mats {
                // Qᵀ row i = column i of Q: a standard normal stream per (bucket, matrix),
                // drawn row after row, so lower ranks take a prefix of the same draws.
                let key = kernels::key(self.seed, bucket, x.index as u64);
                qts.push(super::normal(dev, r * x.c, key)?);
            }
            let qt = match qts.len() {
                0 => None,
                1 => qts.pop(),
                _ => Some(Tensor::cat(&qts, 0)?),
            };
            let windows = if plan.mats.is_empty() {
                None
            } else {
                Some(Tensor::new(plan.windows(), dev)?)
            };
            self.state.insert(
                bucket,
                BucketState {
                    shapes: shapes.to_vec(),
                    plan: Arc::new(plan),
                    qt,
                    ef: None,
                    windows,
                },
            );
        }
        Ok(self.state.get_mut(&bucket).expect("inserted above"))
    }

    /// Every device tensor the codec holds across rounds (warm-start Qᵀ, error feedback, the
    /// windows' offsets): [`super::Codec::state`].
    pub fn state_tensors(&self) -> Vec<Tensor> {
        let mut v = Vec::new();
        for st in self.state.values() {
            v.extend(st.qt.iter().chain(&st.ef).cloned());
            v.extend(st.windows.iter().cloned());
        }
        v
    }

    /// Stage `p`: error feedback `M ← M + E` and `Pᵀ = Qᵀ·Mᵀ` for every compressed matrix of flat
    /// `grad`; gathers the uncompressed elements (one fused launch, [`psgd::stage_p`]).
    ///
    /// # Errors
    /// The matrices hold more elements than `grad`; a rank above 32; device errors.
    pub fn stage_p(
        &mut self,
        bucket: usize,
        grad: &Tensor,
        shapes: &[(usize, usize)],
    ) -> Result<Round> {
        let g = flat_f32(grad)?;
        let n = g.elem_count();
        let st = self.bucket_state(bucket, n, shapes, &g.device().clone())?;
        let s = psgd::stage_p(&st.plan, &g, st.ef.as_ref(), st.qt.as_ref())?;
        Ok(Round {
            plan: st.plan.clone(),
            mef: s.mef,
            p_flat: s.p,
            rest: s.rest,
            p: None,
            windows: st.windows.clone(),
        })
    }

    /// Stage `q`: orthogonalizes every matrix's slice of the all-reduced `p_sum` and returns the
    /// concatenated `Qᵀ = Pᵀ·M` (what the second all-reduce carries); keeps the orthogonal `Pᵀ`
    /// in `round`.
    ///
    /// # Errors
    /// `p_sum` does not match stage `p`'s; device errors.
    pub fn stage_q(&self, round: &mut Round, p_sum: &Tensor) -> Result<Option<Tensor>> {
        let r = self.rank;
        let (Some(offs), Some(mef)) = (&round.windows, &round.mef) else {
            return Ok(None);
        };
        let offs_host = round.plan.windows();
        let expected = *offs_host.last().expect("a window") as usize;
        if p_sum.elem_count() != expected {
            bail!(
                "powersgd: all-reduced P holds {} elements, expected {expected}",
                p_sum.elem_count()
            );
        }
        let orth = kernels::orthogonalize(p_sum, offs, offs_host, r, NORM_FLOOR)?;
        let q = psgd::stage_q(&round.plan, mef, &orth)?;
        round.p = Some(orth);
        Ok(Some(q))
    }

    /// Stage `decode`: `M̂ = P·Qᵀ` from the all-reduced `q_sum` (divided by `world`), error
    /// feedback `E ← M − M̂`, the next round's Qᵀ; assembles the average gradient (f32 `[n]`)
    /// with the all-reduced uncompressed elements `rest_sum` (divided by `world`), in one fused
    /// launch ([`psgd::stage_decode`]).
    ///
    /// # Errors
    /// Shapes that do not match the earlier stages; device errors.
    pub fn stage_decode(
        &mut self,
        bucket: usize,
        round: &Round,
        q_sum: Option<&Tensor>,
        rest_sum: Option<&Tensor>,
        world: usize,
    ) -> Result<Tensor> {
        let Some(st) = self.state.get_mut(&bucket) else {
            bail!("powersgd: decode of bucket {bucket} before its stage p");
        };
        if !Arc::ptr_eq(&st.plan, &round.plan) {
            bail!("powersgd: bucket {bucket}: stages out of step (the bucket changed shape)");
        }
        let dev = match (&round.mef, &round.rest) {
            (Some(t), _) | (None, Some(t)) => t.device().clone(),
            (None, None) => bail!("powersgd: bucket {bucket} is empty"),
        };
        let d = psgd::stage_decode(
            &st.plan,
            round.mef.as_ref(),
            round.p.as_ref(),
            q_sum,
            rest_sum,
            (1.0 / world as f64) as f32,
            &dev,
        )?;
        if d.ef.is_some() {
            st.ef = d.ef;
            st.qt = d.qt;
        }
        Ok(d.out)
    }
}

impl Codec for PowerSgd {
    fn state(&self) -> Vec<Tensor> {
        self.state_tensors()
    }

    fn name(&self) -> String {
        PowerSgd::name(self)
    }

    fn round(
        &mut self,
        bucket: usize,
        grad: &Tensor,
        shapes: &[(usize, usize)],
        comm: &mut dyn Comm,
    ) -> Result<Tensor> {
        let world = comm.world();
        let mut round = self.stage_p(bucket, grad, shapes)?;
        let rest_sum = match &round.rest {
            Some(t) => Some(comm.all_reduce_sum(t)?),
            None => None,
        };
        let q_sum = match round.p_flat.clone() {
            Some(p) => {
                let p_sum = comm.all_reduce_sum(&p)?;
                match self.stage_q(&mut round, &p_sum)? {
                    Some(q) => Some(comm.all_reduce_sum(&q)?),
                    None => None,
                }
            }
            None => None,
        };
        let out = self.stage_decode(bucket, &round, q_sum.as_ref(), rest_sum.as_ref(), world)?;
        Ok(out.reshape(grad.shape())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcomp::codec::LocalComm;

    #[test]
    fn orthogonalize_gives_orthonormal_rows_per_window() {
        let dev = Device::Cpu;
        // Three windows at rank 5: 5×40, a zero 5×7 (stays zero), 5×12 whose row 3 repeats
        // row 1 (dependent: still unit length and orthogonal after the second pass).
        let mut v = super::super::normal(&dev, 5 * 40 + 5 * 12, 9)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let dep = 5 * 40;
        for e in 0..12 {
            v[dep + 3 * 12 + e] = v[dep + 12 + e];
        }
        v.splice(dep..dep, std::iter::repeat_n(0.0, 35));
        let offs = [0u32, 200, 235, 295];
        let p = Tensor::new(v.as_slice(), &dev).unwrap();
        let o = kernels::orthogonalize(
            &p,
            &Tensor::new(&offs[..], &dev).unwrap(),
            &offs,
            5,
            NORM_FLOOR,
        )
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
        assert!(o[200..235].iter().all(|&x| x == 0.0));
        for (lo, len) in [(0, 40), (235, 12)] {
            for i in 0..5 {
                for j in 0..5 {
                    let d: f32 = (0..len)
                        .map(|e| o[lo + i * len + e] * o[lo + j * len + e])
                        .sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    // f32 Gram–Schmidt on rows of ≤ 40: 1e-5 is ~100 ulps.
                    assert!((d - want).abs() < 1e-5, "window {lo} ({i},{j}) = {d}");
                }
            }
        }
        // Windows that do not cover P, or are not multiples of r, are refused.
        assert!(kernels::check_offsets(&[0, 200, 234], 5, 234).is_err());
        assert!(kernels::check_offsets(&[0, 200], 5, 295).is_err());
        assert!(kernels::check_offsets(&[0, 200, 235, 295], 5, 295).is_ok());
    }

    #[test]
    fn bucket_with_vectors_and_small_matrices_reassembles_in_order() {
        let dev = Device::Cpu;
        // 16×12 compresses at rank 2 (192 ≥ 112); 2×3 does not; then 5 loose elements.
        let shapes = [(16, 12), (2, 3)];
        let n = 16 * 12 + 6 + 5;
        let g = super::super::synthetic_gradient(&dev, n, 5).unwrap();
        let mut c = PowerSgd::new(2, 1);
        let mut comm = LocalComm { world: 3 };
        let out = c.round(0, &g, &shapes, &mut comm).unwrap();
        assert_eq!(out.dims(), &[n]);
        let (o, gv) = (out.to_vec1::<f32>().unwrap(), g.to_vec1::<f32>().unwrap());
        // The uncompressed part is the average of three equal copies: the input, to 1 ulp.
        for i in 192..n {
            assert!(
                (o[i] - gv[i]).abs() <= gv[i].abs() * 2.4e-7,
                "{i}: {} vs {}",
                o[i],
                gv[i]
            );
        }
        // The compressed part is a rank-2 approximation: not the input, but correlated.
        let dot: f32 = (0..192).map(|i| o[i] * gv[i]).sum();
        assert!(dot > 0.0);
        assert!((0..192).any(|i| (o[i] - gv[i]).abs() > 1e-6));
        assert_eq!(c.wire_bytes(&shapes, 5), 4 * 2 * (16 + 12) + 4 * 6 + 4 * 5);
        // A bucket whose matrices overrun the gradient is refused.
        assert!(c.round(1, &g, &[(100, 100)], &mut comm).is_err());
    }
}
