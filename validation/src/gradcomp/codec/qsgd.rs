//! `qsgd:bits=B`: QSGD (Alistarh, Grubic, Li, Tomioka & Vojnovic 2017, "QSGD:
//! Communication-Efficient SGD via Gradient Quantization and Encoding", NeurIPS), as perfcast's
//! `compressor/qsgd.rs` models it: each rank sends its bucket's L2 norm (4 bytes) and B bits per
//! element, `⌈B·n/8⌉ + 4` bytes, all-gathered (codes of different ranks use different norms) and
//! dequantized before summing.
//!
//! Convention: one sign bit and B − 1 level bits, so s = 2^(B−1) − 1 levels above zero (s = 1, 7,
//! 127 for B = 2, 4, 8). Element g is sent as sign(g) · ℓ with ℓ = ⌊y⌋ + [u < y − ⌊y⌋], y = |g|/‖g‖₂ · s,
//! u uniform on [0, 1) from a seeded stream (stochastic rounding: E\[ℓ\] = |g|/‖g‖₂ · s, so the decoded value
//! ‖g‖₂ · sign(g) · ℓ / s is unbiased, and off g by less than ‖g‖₂ / s). Codes `ℓ + 2^(B−1)·[g < 0]`
//! are packed 8/B to a byte, element 8/B·i + j in bits B·j.. of byte i. B ∈ {2, 4, 8} (perfcast
//! accepts 1..=16; these are the widths that pack whole codes into bytes).

use std::collections::HashMap;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};

use super::kernels;
use super::signsgd::{pack, unpack};
use super::{Collective, TwoStage};

/// QSGD with B bits per element.
pub struct Qsgd {
    bits: u32,
    seed: u64,
    rounds: HashMap<usize, u64>,
    /// Place values of the codes in a byte, f32 `[per, 1]` and `[1, per]`, made on first use.
    weights: Option<(Tensor, Tensor)>,
}

impl Qsgd {
    /// B bits per element (2, 4 or 8), stochastic rounding drawn from `seed`.
    ///
    /// # Errors
    /// Other widths.
    pub fn new(bits: u32, seed: u64) -> Result<Qsgd> {
        if ![2, 4, 8].contains(&bits) {
            bail!("--method qsgd bits {bits}: expected 2, 4 or 8 (whole codes per byte)");
        }
        Ok(Qsgd {
            bits,
            seed,
            rounds: HashMap::new(),
            weights: None,
        })
    }

    /// Levels above zero, s = 2^(B−1) − 1.
    pub fn levels(&self) -> u32 {
        (1 << (self.bits - 1)) - 1
    }

    /// Codes per byte, 8 / B.
    fn per(&self) -> usize {
        (8 / self.bits) as usize
    }

    fn weights(&mut self, dev: &Device) -> Result<(Tensor, Tensor)> {
        if self.weights.is_none() {
            let per = self.per();
            let w: Vec<f32> = (0..per)
                .map(|j| (1u32 << (self.bits as usize * j)) as f32)
                .collect();
            let col = Tensor::from_vec(w, (per, 1), dev)?;
            let row = col.reshape((1, per))?;
            self.weights = Some((col, row));
        }
        Ok(self.weights.clone().expect("set above"))
    }
}

impl TwoStage for Qsgd {
    fn state(&self) -> Vec<Tensor> {
        self.weights
            .iter()
            .flat_map(|(a, b)| [a.clone(), b.clone()])
            .collect()
    }

    fn name(&self) -> String {
        format!("qsgd:bits={}", self.bits)
    }

    fn collective(&self) -> Collective {
        Collective::AllGather
    }

    /// Norm, stochastic levels, codes packed. Payload: codes (u8 `[⌈B·n/8⌉]`), norm (f32 `[1]`).
    fn encode(&mut self, bucket: usize, grad: &Tensor, _world: usize) -> Result<Vec<Tensor>> {
        let n = grad.elem_count();
        let s = self.levels() as f64;
        let half = (1u32 << (self.bits - 1)) as f64;
        let round = self.rounds.entry(bucket).or_insert(0);
        let key = kernels::key(self.seed, bucket, *round);
        *round += 1;
        let (col, _) = self.weights(grad.device())?;
        let norm = grad.sqr()?.sum_all()?.sqrt()?.reshape(1)?;
        // An all-zero bucket has norm 0: divide by the smallest normal f32 instead (levels 0).
        let denom = norm.maximum(f32::MIN_POSITIVE)?;
        let y = grad.abs()?.broadcast_div(&denom)?.affine(s, 0.0)?;
        let u = kernels::uniform(grad, key, n)?;
        // ℓ = ⌊y⌋ + [u < y − ⌊y⌋] (y − ⌊y⌋ is exact in f32; ⌊y + u⌋ could round up across an
        // integer); y ≤ s up to rounding, so ℓ is clamped to s.
        let fl = y.floor()?;
        let up = u.lt(&(&y - &fl)?)?.to_dtype(DType::F32)?;
        let level = (fl + up)?.minimum(s as f32)?;
        let code = (level + grad.lt(0f32)?.to_dtype(DType::F32)?.affine(half, 0.0)?)?;
        Ok(vec![pack(&code, self.per(), &col)?, norm])
    }

    /// Unpacks every rank's codes, scales by its norm / s, sums and divides by the world.
    fn decode(&mut self, _b: usize, n: usize, recv: &[Tensor], world: usize) -> Result<Tensor> {
        let [codes, norms] = recv else {
            bail!(
                "{}: expected codes and norms, got {} payloads",
                self.name(),
                recv.len()
            )
        };
        let per = self.per();
        let nb = n.div_ceil(per);
        if codes.elem_count() != world * nb || norms.elem_count() != world {
            bail!(
                "{}: {} code bytes and {} norms, expected {world} ranks × {nb} and {world}",
                self.name(),
                codes.elem_count(),
                norms.elem_count()
            );
        }
        let (_, row) = self.weights(codes.device())?;
        let half = (1u32 << (self.bits - 1)) as f64;
        let c = unpack(codes, self.bits, &row)?;
        let neg = c.ge(half as f32)?.to_dtype(DType::F32)?;
        let level = (c - neg.affine(half, 0.0)?)?;
        // level · (1 − 2·neg)
        let val = (&level - (level.clone() * neg)?.affine(2.0, 0.0)?)?;
        let val = val.reshape((world, nb * per))?.narrow(1, 0, n)?;
        let scale = norms
            .reshape((world, 1))?
            .affine(1.0 / (self.levels() as f64 * world as f64), 0.0)?;
        Ok(val.broadcast_mul(&scale)?.sum(0)?)
    }

    fn wire_bytes(&self, n: usize) -> u64 {
        (self.bits as u64 * n as u64).div_ceil(8) + 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcomp::codec::{two_stage_round, LocalComm};

    #[test]
    fn codes_pack_and_decode_exactly_when_levels_are_whole() {
        let dev = Device::Cpu;
        // Codes 3, 12 (= 8 + 4: level 4, negative), 0, 15, 9 at B = 4: two per byte, low first.
        let mut q = Qsgd::new(4, 1).unwrap();
        let (col, row) = q.weights(&dev).unwrap();
        let codes = Tensor::new(&[3f32, 12., 0., 15., 9.], &dev).unwrap();
        let p = pack(&codes, 2, &col).unwrap();
        assert_eq!(p.to_vec1::<u8>().unwrap(), vec![3 + 12 * 16, 15 * 16, 9]);
        let back = unpack(&p, 4, &row).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(back[..5], [3., 12., 0., 15., 9.]);
        // A one-hot gradient has |g| = ‖g‖: level s exactly, decoded exactly.
        let g = Tensor::new(&[0f32, -2.5, 0., 0., 0.], &dev).unwrap();
        for bits in [2, 4, 8] {
            let mut q = Qsgd::new(bits, 1).unwrap();
            let d = two_stage_round(&mut q, 0, &g, &mut LocalComm { world: 2 }).unwrap();
            assert_eq!(
                d.to_vec1::<f32>().unwrap(),
                vec![0., -2.5, 0., 0., 0.],
                "bits {bits}"
            );
            assert_eq!(q.wire_bytes(5), (5 * bits as u64).div_ceil(8) + 4);
        }
        assert!(Qsgd::new(3, 1).is_err());
    }
}
