//! Sparsification with error feedback (Stich, Cordonnier & Jaggi 2018, "Sparsified SGD with
//! Memory", NeurIPS): each rank adds its residual E to the gradient, sends k = ⌈D·n⌉ entries of
//! x = g + E, and keeps E ← x − sent.
//!
//! - `topk:density=D` (Aji & Heafield 2017, "Sparse Communication for Distributed Gradient
//!   Descent"): exactly the k largest |x|, ties broken by lowest index. The selection sets
//!   differ between ranks, so values (f32) and indices (u32) are all-gathered (8k bytes per rank,
//!   perfcast's `compressor/sparse.rs`) and scatter-added, then divided by the world.
//!   Selection on the device without a sort (candle's CUDA arg-sort sorts one row in shared
//!   memory, at most a few thousand elements) and without a host read: the k-th largest |x| by
//!   a radix select over its f32 bit pattern (non-negative floats order like their bits), then
//!   the elements above it and the first (k − above) equal to it are compacted in index order
//!   ([`super::kernels::top_k_select`]). The result is exactly a stable sort's first k (tested
//!   against one). A NaN or infinity in x is flagged on the device and reported by
//!   [`TwoStage::verify`] after the step.
//! - `randomk:density=D`: k positions drawn from a seeded stream shared by every rank, so the
//!   values line up and are all-reduced (4k bytes per rank; the indices never travel). Sampling
//!   is stratified: position i of k falls uniformly in `[⌊i·n/k⌋, ⌊(i+1)·n/k⌋)`, so positions are
//!   distinct and each element is kept with probability ≈ k/n. Unscaled (error feedback carries
//!   what was not sent, as in Stich et al.). Note: perfcast's `compressor/sparse.rs` models
//!   Random-k as an all-gather of values and indices (`P·8k` bytes); this codec follows the
//!   shared-seed design, whose wire bytes (4k, all-reduce) the `wire_bytes` rows record.

use std::collections::HashMap;

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};

use super::kernels::{self, scatter_add, top_k_select};
use super::{Collective, TwoStage};

/// k = ⌈D·n⌉, at least 1 (perfcast's `k_of`).
pub fn k_of(density: f64, n: usize) -> usize {
    ((density * n as f64).ceil() as usize).clamp(1, n.max(1))
}

fn check_density(name: &str, d: f64) -> Result<()> {
    if !(d > 0.0 && d <= 1.0) {
        bail!("--method {name} density {d}: expected a number in (0, 1]");
    }
    Ok(())
}

/// Top-k with error feedback.
pub struct TopK {
    density: f64,
    err: HashMap<usize, Tensor>,
    /// The largest fault word of the selections since the last [`TwoStage::verify`] (u32 `[1]`,
    /// on the device).
    fault: Option<Tensor>,
}

impl TopK {
    /// Keeps a fraction `density` ∈ (0, 1] of every bucket.
    ///
    /// # Errors
    /// `density` outside (0, 1].
    pub fn new(density: f64) -> Result<TopK> {
        check_density("topk", density)?;
        Ok(TopK {
            density,
            err: HashMap::new(),
            fault: None,
        })
    }
}

/// The positions (u32, increasing) of the k largest `|x|`, ties at the k-th value broken by
/// lowest index: exactly the first k of a stable sort by decreasing `|x|` ([`top_k_select`],
/// on the device with no host read), and the fault bits (u32 `[1]`, non-zero when `x` held a
/// NaN or infinity), left on the device for [`TopK`] to read after the step.
///
/// # Errors
/// k outside 1..=n; device errors.
pub fn top_k_indices(x: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
    top_k_select(x, k)
}

impl TwoStage for TopK {
    fn state(&self) -> Vec<Tensor> {
        self.err.values().chain(&self.fault).cloned().collect()
    }

    fn name(&self) -> String {
        format!("topk:density={}", self.density)
    }

    fn collective(&self) -> Collective {
        Collective::AllGather
    }

    /// x = g + E; select; gather values; E ← x − sent. Payload: values (f32 `[k]`), indices
    /// (u32 `[k]`).
    fn encode(&mut self, bucket: usize, grad: &Tensor, _world: usize) -> Result<Vec<Tensor>> {
        let n = grad.elem_count();
        let k = k_of(self.density, n);
        let x = match self.err.get(&bucket) {
            Some(e) if e.elem_count() == n => (grad + e)?,
            _ => grad.clone(),
        };
        let (idx, fault) = top_k_indices(&x, k)?;
        self.fault = Some(match self.fault.take() {
            Some(f) => f.maximum(&fault)?,
            None => fault,
        });
        let vals = x.index_select(&idx, 0)?;
        let sent = scatter_add(&idx, &vals, n)?;
        self.err.insert(bucket, (x - sent)?);
        Ok(vec![vals, idx])
    }

    /// Reads the selections' fault word (one 4-byte read; call it after the step's
    /// synchronization, outside the timed window).
    fn verify(&mut self) -> Result<()> {
        if let Some(f) = self.fault.take() {
            let f = f.to_vec1::<u32>()?[0];
            if f & kernels::FAULT_NON_FINITE != 0 {
                bail!("top-k: a gradient held a non-finite value (NaN or infinity)");
            }
            if f != 0 {
                bail!("top-k: the radix select found no digit for the k-th element (fault {f:#x})");
            }
        }
        Ok(())
    }

    /// Scatter-adds every rank's (value, index) pairs into zeros and divides by the world.
    fn decode(&mut self, _b: usize, n: usize, recv: &[Tensor], world: usize) -> Result<Tensor> {
        let [vals, idx] = recv else {
            bail!(
                "{}: expected values and indices, got {} payloads",
                self.name(),
                recv.len()
            )
        };
        Ok(scatter_add(idx, vals, n)?.affine(1.0 / world as f64, 0.0)?)
    }

    fn wire_bytes(&self, n: usize) -> u64 {
        8 * k_of(self.density, n) as u64
    }
}

/// Random-k with error feedback and shared-seed positions.
pub struct RandomK {
    density: f64,
    seed: u64,
    state: HashMap<usize, RandState>,
}

struct RandState {
    n: usize,
    round: u64,
    err: Option<Tensor>,
    /// Stratum starts (u32 `[k]`) and lengths − 1 (f32 `[k]`) and lengths (f32 `[k]`).
    start: Tensor,
    len: Tensor,
    len_m1: Tensor,
    /// This round's positions (set by encode, read by decode).
    idx: Option<Tensor>,
}

impl RandomK {
    /// Keeps a fraction `density` ∈ (0, 1]; positions drawn from `seed`.
    ///
    /// # Errors
    /// `density` outside (0, 1].
    pub fn new(density: f64, seed: u64) -> Result<RandomK> {
        check_density("randomk", density)?;
        Ok(RandomK {
            density,
            seed,
            state: HashMap::new(),
        })
    }

    /// The positions of draw `round` for an `n`-element bucket `bucket` (u32 `[k]`, increasing),
    /// on `like`'s device: what every rank computes alike.
    ///
    /// # Errors
    /// Device errors.
    fn positions(&mut self, bucket: usize, like: &Tensor) -> Result<Tensor> {
        let n = like.elem_count();
        let k = k_of(self.density, n);
        let fresh = self.state.get(&bucket).is_none_or(|s| s.n != n);
        if fresh {
            let (mut start, mut len) = (Vec::with_capacity(k), Vec::with_capacity(k));
            for i in 0..k as u64 {
                let a = i * n as u64 / k as u64;
                let b = (i + 1) * n as u64 / k as u64;
                start.push(a as u32);
                len.push((b - a) as f32);
            }
            let dev = like.device();
            let len = Tensor::from_vec(len, k, dev)?;
            self.state.insert(
                bucket,
                RandState {
                    n,
                    round: 0,
                    err: None,
                    start: Tensor::from_vec(start, k, dev)?,
                    len_m1: len.affine(1.0, -1.0)?,
                    len,
                    idx: None,
                },
            );
        }
        let st = self.state.get_mut(&bucket).expect("inserted above");
        let u = kernels::uniform(like, kernels::key(self.seed, bucket, st.round), k)?;
        st.round += 1;
        let off = (u * &st.len)?
            .floor()?
            .minimum(&st.len_m1)?
            .to_dtype(DType::U32)?;
        Ok((&st.start + off)?)
    }
}

impl TwoStage for RandomK {
    fn state(&self) -> Vec<Tensor> {
        let mut v = Vec::new();
        for s in self.state.values() {
            v.extend([s.start.clone(), s.len.clone(), s.len_m1.clone()]);
            v.extend(s.err.iter().chain(&s.idx).cloned());
        }
        v
    }

    fn name(&self) -> String {
        format!("randomk:density={}", self.density)
    }

    fn collective(&self) -> Collective {
        Collective::AllReduce
    }

    /// x = g + E; draw the shared positions; gather values; E ← x − sent. Payload: values.
    fn encode(&mut self, bucket: usize, grad: &Tensor, _world: usize) -> Result<Vec<Tensor>> {
        let n = grad.elem_count();
        let idx = self.positions(bucket, grad)?;
        let st = self.state.get_mut(&bucket).expect("positions made it");
        let x = match &st.err {
            Some(e) => (grad + e)?,
            None => grad.clone(),
        };
        let vals = x.index_select(&idx, 0)?;
        let sent = scatter_add(&idx, &vals, n)?;
        st.err = Some((x - sent)?);
        st.idx = Some(idx);
        Ok(vec![vals])
    }

    /// Scatters the summed values (divided by the world) to this round's positions.
    fn decode(&mut self, bucket: usize, n: usize, recv: &[Tensor], world: usize) -> Result<Tensor> {
        let [vals] = recv else {
            bail!("{}: expected one payload, got {}", self.name(), recv.len())
        };
        let Some(idx) = self.state.get(&bucket).and_then(|s| s.idx.as_ref()) else {
            bail!(
                "{}: decode of bucket {bucket} before its encode",
                self.name()
            )
        };
        scatter_add(idx, &vals.affine(1.0 / world as f64, 0.0)?, n)
    }

    fn wire_bytes(&self, n: usize) -> u64 {
        4 * k_of(self.density, n) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Stable-sort reference: the first k positions by decreasing |x|, then increasing index.
    fn reference(x: &[f32], k: usize) -> Vec<u32> {
        let mut order: Vec<u32> = (0..x.len() as u32).collect();
        order.sort_by(|&i, &j| {
            x[j as usize]
                .abs()
                .total_cmp(&x[i as usize].abs())
                .then(i.cmp(&j))
        });
        let mut top = order[..k].to_vec();
        top.sort_unstable();
        top
    }

    fn idx(x: &Tensor, k: usize) -> Vec<u32> {
        let (i, f) = top_k_indices(x, k).unwrap();
        assert_eq!(f.to_vec1::<u32>().unwrap(), vec![0], "fault word");
        i.to_vec1::<u32>().unwrap()
    }

    fn fault(x: &[f32], k: usize) -> u32 {
        let t = Tensor::new(x, &Device::Cpu).unwrap();
        top_k_indices(&t, k).unwrap().1.to_vec1::<u32>().unwrap()[0]
    }

    #[test]
    fn top_k_equals_a_stable_sort_with_ties() {
        let dev = Device::Cpu;
        // Many ties: values in {−8..8}/16, including zeros.
        let x: Vec<f32> = (0..2000u64)
            .map(|i| ((kernels::mix64(i) % 17) as f32 - 8.0) / 16.0)
            .collect();
        let t = Tensor::new(x.as_slice(), &dev).unwrap();
        for k in [1, 2, 7, 117, 118, 500, 1999, 2000] {
            assert_eq!(idx(&t, k), reference(&x, k), "k {k}");
        }
        // All zeros: the first k positions.
        let z = Tensor::zeros(10, DType::F32, &dev).unwrap();
        assert_eq!(idx(&z, 3), vec![0, 1, 2]);
        assert!(top_k_indices(&z, 0).is_err());
        assert!(top_k_indices(&z, 11).is_err());
        // Non-finite values are flagged on the device (and rank above every finite value).
        assert_eq!(fault(&[1., f32::NAN], 1), kernels::FAULT_NON_FINITE);
        assert_eq!(
            fault(&[1., f32::NEG_INFINITY, 2.], 2),
            kernels::FAULT_NON_FINITE
        );
        assert_eq!(fault(&[1., f32::MAX, -2.], 3), 0);
        // Distinct values over ten decades (every radix pass decides) and near-equal neighbours
        // that differ only in the last mantissa bits (the third pass decides).
        let y: Vec<f32> = (0..5000u64)
            .map(|i| {
                let h = kernels::mix64(i ^ 77);
                let m = 1.0 + (h >> 40) as f32 / 16_777_216.0;
                let v = m * 10f32.powi((h % 10) as i32 - 8);
                if i % 2 == 0 {
                    v
                } else {
                    -f32::from_bits(v.to_bits() + (h % 3) as u32)
                }
            })
            .collect();
        let t = Tensor::new(y.as_slice(), &dev).unwrap();
        for k in [1, 3, 250, 2500, 4999, 5000] {
            assert_eq!(idx(&t, k), reference(&y, k), "k {k}");
            let st = kernels::radix_select_cpu(&y, k);
            let (kth, above) = (f32::from_bits(st.prefix), st.above as usize);
            let mut s: Vec<f32> = y.iter().map(|v| v.abs()).collect();
            s.sort_by(|a, b| b.total_cmp(a));
            assert_eq!(kth, s[k - 1], "k {k}");
            assert_eq!(above, s.iter().filter(|&&v| v > kth).count(), "k {k}");
        }
    }

    #[test]
    fn verify_reports_a_non_finite_gradient_once_after_the_step() {
        let dev = Device::Cpu;
        let mut c = TopK::new(0.5).unwrap();
        let good = Tensor::new(&[1f32, -3., 2., 0.5], &dev).unwrap();
        c.encode(0, &good, 1).unwrap();
        c.verify().unwrap();
        let bad = Tensor::new(&[1f32, f32::NAN, 2., 0.5], &dev).unwrap();
        c.encode(1, &bad, 1).unwrap();
        c.encode(0, &good, 1).unwrap();
        let e = c.verify().unwrap_err().to_string();
        assert!(e.contains("non-finite"), "{e}");
        c.verify().unwrap();
    }

    #[test]
    fn random_k_positions_are_distinct_seeded_and_cover_the_bucket() {
        let dev = Device::Cpu;
        let g = Tensor::zeros(1000, DType::F32, &dev).unwrap();
        let mut a = RandomK::new(0.03, 5).unwrap();
        let mut b = RandomK::new(0.03, 5).unwrap();
        let pa = a.positions(0, &g).unwrap().to_vec1::<u32>().unwrap();
        let pb = b.positions(0, &g).unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(pa, pb, "same seed, same positions on every rank");
        assert_eq!(pa.len(), 30);
        assert!(pa.windows(2).all(|w| w[0] < w[1]) && *pa.last().unwrap() < 1000);
        let pa2 = a.positions(0, &g).unwrap().to_vec1::<u32>().unwrap();
        assert_ne!(pa, pa2, "a new draw every round");
        // Over many rounds every element is kept about k/n = 3% of the time.
        let mut hits = vec![0u32; 1000];
        for _ in 0..400 {
            for p in a.positions(0, &g).unwrap().to_vec1::<u32>().unwrap() {
                hits[p as usize] += 1;
            }
        }
        // Binomial(400, 0.03): mean 12, sd 3.4; every element between 0 and 12 + 8 sd.
        assert!(hits.iter().all(|&h| h <= 40), "{:?}", hits.iter().max());
        let mean = hits.iter().sum::<u32>() as f64 / 1000.0;
        assert!((mean - 12.0).abs() < 1e-9, "{mean}");
    }
}
