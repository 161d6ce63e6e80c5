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
//! Layout: P and Q are held transposed (`Pᵀ` is `r × m`, `Qᵀ` is `r × c`, contiguous) so that
//! Gram–Schmidt works on contiguous rows.

use std::collections::HashMap;

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
pub use perfcast::gradcomp::compressor::powersgd::powersgd_compresses;

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
    n: usize,
    /// Per matrix: `Some((Qᵀ, E))` when compressed.
    mats: Vec<Option<(Tensor, Option<Tensor>)>>,
    /// Windows of the compressed matrices' Pᵀ in the concatenated P (`r·m` elements each), on
    /// the device and on the host (the orthogonalization kernel's input).
    windows: Option<(Tensor, Vec<u32>)>,
}

/// What stage `p` leaves for the next stages of one bucket.
pub struct Round {
    /// Per matrix: the error-fed matrix `M + E` (`m × c`) when compressed.
    pub m: Vec<Option<Tensor>>,
    /// Every compressed matrix's `Pᵀ` (`r × m`), flattened and concatenated (what the first
    /// all-reduce carries).
    pub p_flat: Option<Tensor>,
    /// The uncompressed elements (matrices failing the rule, then the vector tail),
    /// concatenated (its own all-reduce).
    pub rest: Option<Tensor>,
    /// After stage `q`: the orthogonalized `Pᵀ` per compressed matrix.
    pub p: Vec<Option<Tensor>>,
    /// The windows of `p_flat` (device, host), one per compressed matrix.
    windows: Option<(Tensor, Vec<u32>)>,
}

impl Round {
    /// Every device tensor of the round (what a captured stage `q` replaces or reads).
    pub fn tensors(&self) -> Vec<Tensor> {
        let mut v: Vec<Tensor> = self.m.iter().chain(&self.p).flatten().cloned().collect();
        v.extend(self.p_flat.iter().chain(&self.rest).cloned());
        v.extend(self.windows.iter().map(|(t, _)| t.clone()));
        v
    }
}

impl PowerSgd {
    /// Rank `rank` (≥ 1), Q drawn from `seed`.
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
        let packed: usize = shapes.iter().map(|&(m, c)| m * c).sum();
        if packed > n {
            bail!("powersgd bucket {bucket}: matrices {shapes:?} hold {packed} elements, the gradient {n}");
        }
        let fresh = match self.state.get(&bucket) {
            Some(s) => s.shapes != shapes || s.n != n,
            None => true,
        };
        if fresh {
            let r = self.rank;
            let mut mats = Vec::with_capacity(shapes.len());
            for (j, &(m, c)) in shapes.iter().enumerate() {
                mats.push(if powersgd_compresses(r as u64, m as u64, c as u64) {
                    // Qᵀ row i = column i of Q: a standard normal stream per (bucket, matrix),
                    // drawn row after row, so lower ranks take a prefix of the same draws.
                    let key = kernels::key(self.seed, bucket, j as u64);
                    let qt = super::normal(dev, r * c, key)?.reshape((r, c))?;
                    Some((qt, None))
                } else {
                    None
                });
            }
            let mut offs = vec![0u32];
            for (&(m, _), slot) in shapes.iter().zip(&mats) {
                if slot.is_some() {
                    let end = *offs.last().expect("starts at 0") as usize + r * m;
                    if end > u32::MAX as usize {
                        bail!("powersgd bucket {bucket}: P holds {end} elements: at most 2^32 - 1");
                    }
                    offs.push(end as u32);
                }
            }
            let windows = if offs.len() > 1 {
                Some((Tensor::new(offs.as_slice(), dev)?, offs))
            } else {
                None
            };
            self.state.insert(
                bucket,
                BucketState {
                    shapes: shapes.to_vec(),
                    n,
                    mats,
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
            for (qt, e) in st.mats.iter().flatten() {
                v.push(qt.clone());
                v.extend(e.iter().cloned());
            }
            v.extend(st.windows.iter().map(|(t, _)| t.clone()));
        }
        v
    }

    /// Stage `p`: error feedback `M ← M + E` and `Pᵀ = Qᵀ·Mᵀ` for every compressed matrix of flat
    /// `grad`; gathers the uncompressed elements.
    ///
    /// # Errors
    /// The matrices hold more elements than `grad`; device errors.
    pub fn stage_p(
        &mut self,
        bucket: usize,
        grad: &Tensor,
        shapes: &[(usize, usize)],
    ) -> Result<Round> {
        let g = flat_f32(grad)?;
        let n = g.elem_count();
        let st = self.bucket_state(bucket, n, shapes, &g.device().clone())?;
        let mut m_out = Vec::with_capacity(shapes.len());
        let mut ps = Vec::new();
        let mut rest = Vec::new();
        let mut off = 0;
        for (&(m, c), slot) in shapes.iter().zip(&st.mats) {
            let view = g.narrow(0, off, m * c)?;
            off += m * c;
            match slot {
                Some((qt, e)) => {
                    let mm = view.reshape((m, c))?;
                    let mm = match e {
                        Some(e) => (mm + e)?,
                        None => mm,
                    };
                    ps.push(qt.matmul(&mm.t()?)?.flatten_all()?);
                    m_out.push(Some(mm));
                }
                None => {
                    rest.push(view);
                    m_out.push(None);
                }
            }
        }
        if off < n {
            rest.push(g.narrow(0, off, n - off)?);
        }
        let cat = |v: Vec<Tensor>| -> Result<Option<Tensor>> {
            Ok(match v.len() {
                0 => None,
                1 => Some(v.into_iter().next().expect("one")),
                _ => Some(Tensor::cat(&v, 0)?),
            })
        };
        Ok(Round {
            p: vec![None; m_out.len()],
            windows: st.windows.clone(),
            m: m_out,
            p_flat: cat(ps)?,
            rest: cat(rest)?,
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
        let Some((offs, offs_host)) = &round.windows else {
            return Ok(None);
        };
        let expected = *offs_host.last().expect("a window") as usize;
        if p_sum.elem_count() != expected {
            bail!(
                "powersgd: all-reduced P holds {} elements, expected {expected}",
                p_sum.elem_count()
            );
        }
        let orth = kernels::orthogonalize(p_sum, offs, offs_host, r, NORM_FLOOR)?;
        let mut qs = Vec::new();
        let mut off = 0;
        for (mm, p) in round.m.iter().zip(round.p.iter_mut()) {
            let Some(mm) = mm else { continue };
            let rows = mm.dim(0)?;
            let pt = orth.narrow(0, off, r * rows)?.reshape((r, rows))?;
            off += r * rows;
            qs.push(pt.matmul(mm)?.flatten_all()?);
            *p = Some(pt);
        }
        Ok(match qs.len() {
            0 => None,
            _ => Some(Tensor::cat(&qs, 0)?),
        })
    }

    /// Stage `decode`: `M̂ = P·Qᵀ` from the all-reduced `q_sum` (divided by `world`), error
    /// feedback `E ← M − M̂`, the next round's Qᵀ; assembles the average gradient (f32 `[n]`)
    /// with the all-reduced uncompressed elements `rest_sum` (divided by `world`).
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
        let r = self.rank;
        let inv = 1.0 / world as f64;
        let Some(st) = self.state.get_mut(&bucket) else {
            bail!("powersgd: decode of bucket {bucket} before its stage p");
        };
        let mut pieces = Vec::with_capacity(st.shapes.len() + 1);
        let (mut q_off, mut r_off) = (0, 0);
        for ((&(m, c), slot), pt) in st.shapes.iter().zip(st.mats.iter_mut()).zip(&round.p) {
            match (slot, pt, &round.m[pieces.len()]) {
                (Some((qt, e)), Some(pt), Some(mm)) => {
                    let Some(q_sum) = q_sum else {
                        bail!("powersgd: no all-reduced Q for bucket {bucket}")
                    };
                    let q = q_sum
                        .narrow(0, q_off, r * c)?
                        .reshape((r, c))?
                        .affine(inv, 0.0)?;
                    q_off += r * c;
                    let mhat = pt.t()?.matmul(&q)?;
                    *e = Some((mm - &mhat)?);
                    *qt = q;
                    pieces.push(mhat.flatten_all()?);
                }
                (None, None, None) => {
                    let Some(rest) = rest_sum else {
                        bail!("powersgd: no all-reduced uncompressed part for bucket {bucket}")
                    };
                    pieces.push(rest.narrow(0, r_off, m * c)?.affine(inv, 0.0)?);
                    r_off += m * c;
                }
                _ => bail!("powersgd: bucket {bucket}: stages out of step"),
            }
        }
        let packed: usize = st.shapes.iter().map(|&(m, c)| m * c).sum();
        if packed < st.n {
            let Some(rest) = rest_sum else {
                bail!("powersgd: no all-reduced vector part for bucket {bucket}")
            };
            pieces.push(rest.narrow(0, r_off, st.n - packed)?.affine(inv, 0.0)?);
        }
        Ok(match pieces.len() {
            1 => pieces.into_iter().next().expect("one"),
            _ => Tensor::cat(&pieces, 0)?,
        })
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
