//! `signsgd`: signSGD with majority vote (Bernstein, Zhao, Azizzadenesheli & Anandkumar 2019,
//! "signSGD with Majority Vote is Communication Efficient and Fault Tolerant", ICLR), as
//! perfcast's `compressor/signsgd.rs` models it: each rank packs one bit per element (1 for
//! `g ≥ 0`), 8 per byte (bit j of byte i is element 8i + j), ⌈n/8⌉ bytes; a vote is not a sum of
//! packed bytes, so the bytes are all-gathered and every rank counts the votes.
//!
//! Decode: `sign(Σ_ranks (2·bit − 1))` ∈ {−1, 0, +1} (0 only on a tied vote, even worlds), as
//! f32: the signed result perfcast's model writes, unscaled (the learning rate carries the scale,
//! as in Bernstein et al.). No error feedback (majority vote is the method).
//!
//! Packing with candle ops: bits as f32 `[n/8, 8]` times the column (1, 2, 4, …, 128) (a matrix
//! product), cast to u8; unpacking: ⌊byte / 2ʲ⌋ mod 2 in f32, exact for bytes.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};

use super::{Collective, TwoStage};

/// signSGD with majority vote.
#[derive(Default)]
pub struct SignSgd {
    /// (1, 2, …, 128) as f32 `[8, 1]` (pack) and `[1, 8]` (unpack), made on first use.
    weights: Option<(Tensor, Tensor)>,
}

impl SignSgd {
    /// The codec.
    pub fn new() -> SignSgd {
        SignSgd::default()
    }

    fn weights(&mut self, dev: &Device) -> Result<(Tensor, Tensor)> {
        if self.weights.is_none() {
            let w: Vec<f32> = (0..8).map(|j| (1u32 << j) as f32).collect();
            let col = Tensor::from_vec(w, (8, 1), dev)?;
            let row = col.reshape((1, 8))?;
            self.weights = Some((col, row));
        }
        Ok(self.weights.clone().expect("set above"))
    }
}

/// Packs `bits` (f32 0/1, `[n]`) `per` to a byte with weights `col` (`[per, 1]`): u8
/// `[⌈n/per⌉]`, zero-padded.
pub(super) fn pack(bits: &Tensor, per: usize, col: &Tensor) -> Result<Tensor> {
    let n = bits.elem_count();
    let nb = n.div_ceil(per);
    let bits = if nb * per > n {
        let pad = Tensor::zeros(nb * per - n, bits.dtype(), bits.device())?;
        Tensor::cat(&[bits, &pad], 0)?
    } else {
        bits.clone()
    };
    Ok(bits
        .reshape((nb, per))?
        .matmul(col)?
        .to_dtype(DType::U8)?
        .reshape(nb)?)
}

/// Unpacks u8 `bytes` (`[m]`) into `per` fields of `2^bits` values each, f32 `[m·per]`, with
/// weights `row` (`[1, per]`, the field's place values).
pub(super) fn unpack(bytes: &Tensor, bits: u32, row: &Tensor) -> Result<Tensor> {
    let m = bytes.elem_count();
    let per = row.elem_count();
    let y = bytes
        .to_dtype(DType::F32)?
        .reshape((m, 1))?
        .broadcast_div(row)?
        .floor()?;
    let base = (1u32 << bits) as f64;
    let high = y.affine(1.0 / base, 0.0)?.floor()?.affine(base, 0.0)?;
    Ok((y - high)?.reshape(m * per)?)
}

impl TwoStage for SignSgd {
    fn state(&self) -> Vec<Tensor> {
        self.weights
            .iter()
            .flat_map(|(a, b)| [a.clone(), b.clone()])
            .collect()
    }

    fn name(&self) -> String {
        "signsgd".into()
    }

    fn collective(&self) -> Collective {
        Collective::AllGather
    }

    /// Sign bits (`g ≥ 0`) packed 8 per byte: u8 `[⌈n/8⌉]`.
    fn encode(&mut self, _bucket: usize, grad: &Tensor, _world: usize) -> Result<Vec<Tensor>> {
        let (col, _) = self.weights(grad.device())?;
        let bits = grad.ge(0f32)?.to_dtype(DType::F32)?;
        Ok(vec![pack(&bits, 8, &col)?])
    }

    /// Majority vote over the gathered bytes (`world · ⌈n/8⌉`).
    fn decode(&mut self, _b: usize, n: usize, recv: &[Tensor], world: usize) -> Result<Tensor> {
        let [bytes] = recv else {
            bail!("signsgd: expected one payload, got {}", recv.len())
        };
        let nb = n.div_ceil(8);
        if bytes.elem_count() != world * nb {
            bail!(
                "signsgd: {} gathered bytes, expected {world} ranks × {nb}",
                bytes.elem_count()
            );
        }
        let (_, row) = self.weights(bytes.device())?;
        let bits = unpack(bytes, 1, &row)?.reshape((world, nb * 8))?;
        // Σ (2·bit − 1) = 2·Σ bit − world.
        let votes = bits.sum(0)?.affine(2.0, -(world as f64))?;
        Ok(votes.narrow(0, 0, n)?.sign()?)
    }

    fn wire_bytes(&self, n: usize) -> u64 {
        n.div_ceil(8) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_lsb_first_and_votes_by_majority() {
        let dev = Device::Cpu;
        // 11 elements: two bytes, the second padded.
        let g = Tensor::new(&[1f32, -1., 0., -2., 3., 3., -1., 1., -5., 2., 0.], &dev).unwrap();
        let mut c = SignSgd::new();
        let p = c.encode(0, &g, 1).unwrap();
        // bits 1,0,1,0,1,1,0,1 → 1+4+16+32+128 = 181; then 0,1,1 → 2+4 = 6.
        assert_eq!(p[0].to_vec1::<u8>().unwrap(), vec![181, 6]);
        assert_eq!(c.wire_bytes(11), 2);
        let one = c.decode(0, 11, &p, 1).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(one, vec![1., -1., 1., -1., 1., 1., -1., 1., -1., 1., 1.]);
        // Three ranks vote: (+,+,−) → +, (−,−,+) → −, (+,−,−) → −.
        let mut enc = SignSgd::new();
        let mut rank = |v: &[f32]| {
            enc.encode(0, &Tensor::new(v, &dev).unwrap(), 3)
                .unwrap()
                .remove(0)
        };
        let all = Tensor::cat(
            &[
                rank(&[1., -1., 1.]),
                rank(&[1., -1., -1.]),
                rank(&[-1., 1., -1.]),
            ],
            0,
        )
        .unwrap();
        let v = c.decode(0, 3, &[all], 3).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v, vec![1., -1., -1.]);
        // Two ranks disagreeing: a tied vote is 0.
        let all = Tensor::cat(&[rank(&[1., 1., 1.]), rank(&[-1., 1., 1.])], 0).unwrap();
        let v = c.decode(0, 3, &[all], 2).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v, vec![0., 1., 1.]);
    }
}
