//! The embedding-row gradient of a batch: `out[u] = Σ_{k ∈ seg(u)} g[perm[k]]`, the sum of the
//! gradients of every lookup of work row `u`, added in batch order.
//!
//! candle's backward of `index_select` is `index_add`, whose CUDA kernel runs one thread per
//! embedding column and loops over every lookup of the batch (about 10⁵ serial adds per thread
//! at batch 4096 × 26 tables): tens of milliseconds. Production trainers (FBGEMM's TBE backward)
//! sort lookups by row and reduce segments instead; so does this op, with the sort done on the
//! host when the batch is planned ([`Csr::of`]). The CUDA kernel (`seg_sum.cu`, built to PTX with
//! nvcc 13.0 for sm_90) runs one thread per output element and adds in the same order as the
//! CPU loop, with round-to-nearest adds (no contraction), so both give the same bits.

use anyhow::Result;
use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

/// Lookups grouped by work row: `perm` lists lookup positions sorted by row (stable), `offs[u]`
/// is where row `u`'s lookups start (`offs.len() = rows + 1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csr {
    /// Lookup positions, grouped by row, in batch order within a row.
    pub perm: Vec<u32>,
    /// Segment starts, `rows + 1` entries.
    pub offs: Vec<u32>,
}

impl Csr {
    /// From `local[j]` = work row of lookup `j`, with `rows` work rows.
    pub fn of(local: &[u32], rows: usize) -> Csr {
        let mut offs = vec![0u32; rows + 1];
        for &u in local {
            offs[u as usize + 1] += 1;
        }
        for u in 0..rows {
            offs[u + 1] += offs[u];
        }
        let mut next = offs.clone();
        let mut perm = vec![0u32; local.len()];
        for (j, &u) in local.iter().enumerate() {
            perm[next[u as usize] as usize] = j as u32;
            next[u as usize] += 1;
        }
        Csr { perm, offs }
    }
}

struct SegSum {
    dim: usize,
}

/// PTX of `seg_sum.cu` (nvcc 13.0.88, `-arch=sm_90 -O3`).
#[cfg(feature = "cuda")]
const PTX: &str = include_str!("seg_sum.ptx");

impl CustomOp3 for SegSum {
    fn name(&self) -> &'static str {
        "embcache-seg-sum"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(g), CpuStorage::U32(perm), CpuStorage::U32(offs)) = (s1, s2, s3)
        else {
            candle_core::bail!("seg-sum: expected f32 gradients and u32 perm/offs")
        };
        let (Some((g0, g1)), Some((p0, p1)), Some((o0, o1))) = (
            l1.contiguous_offsets(),
            l2.contiguous_offsets(),
            l3.contiguous_offsets(),
        ) else {
            candle_core::bail!("seg-sum: inputs must be contiguous")
        };
        let (g, perm, offs) = (&g[g0..g1], &perm[p0..p1], &offs[o0..o1]);
        let d = self.dim;
        let rows = offs.len() - 1;
        let mut out = vec![0f32; rows * d];
        for u in 0..rows {
            let o = &mut out[u * d..(u + 1) * d];
            for &j in &perm[offs[u] as usize..offs[u + 1] as usize] {
                let src = &g[j as usize * d..(j as usize + 1) * d];
                for (a, &b) in o.iter_mut().zip(src) {
                    *a += b;
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, d))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
        use candle_core::cuda_backend::WrapErr;
        let dev = s1.device();
        let (Some((g0, g1)), Some((p0, p1)), Some((o0, o1))) = (
            l1.contiguous_offsets(),
            l2.contiguous_offsets(),
            l3.contiguous_offsets(),
        ) else {
            candle_core::bail!("seg-sum: inputs must be contiguous")
        };
        let g = s1.as_cuda_slice::<f32>()?.slice(g0..g1);
        let perm = s2.as_cuda_slice::<u32>()?.slice(p0..p1);
        let offs = s3.as_cuda_slice::<u32>()?.slice(o0..o1);
        let rows = o1 - o0 - 1;
        let d = self.dim;
        let n = rows * d;
        let out = dev.alloc_zeros::<f32>(n.max(1))?;
        if n > 0 {
            let func = dev.get_or_load_custom_func("seg_sum_f32", "embcache_seg_sum", PTX)?;
            let mut b = func.builder();
            b.arg(&g);
            b.arg(&perm);
            b.arg(&offs);
            b.arg(&out);
            let (rows_u32, d_u32) = (rows as u32, d as u32);
            b.arg(&rows_u32);
            b.arg(&d_u32);
            let cfg = LaunchConfig::for_num_elems(n as u32);
            // SAFETY: argument types and order match `seg_sum_f32` in seg_sum.cu; `out` holds
            // rows·dim f32, `g` holds (max perm + 1)·dim f32 (perm < lookups), offs rows + 1.
            unsafe { b.launch(cfg) }.w()?;
        }
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(out, dev.clone()),
            Shape::from((rows, d)),
        ))
    }
}

/// `[rows, dim]` segment sums of `g` (`[lookups, dim]` f32) over `perm`/`offs` (u32 tensors on
/// the same device).
///
/// # Errors
/// Shapes, dtypes, device errors.
pub fn seg_sum(g: &Tensor, perm: &Tensor, offs: &Tensor) -> Result<Tensor> {
    let dim = g.dim(1)?;
    Ok(g.contiguous()?
        .apply_op3_no_bwd(perm, offs, &SegSum { dim })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn segment_sums_equal_index_add() {
        let dev = Device::Cpu;
        let local = [2u32, 0, 2, 1, 2, 0];
        let c = Csr::of(&local, 3);
        assert_eq!(c.offs, vec![0, 2, 3, 6]);
        assert_eq!(c.perm, vec![1, 5, 3, 0, 2, 4]);
        let g = Tensor::arange(0f32, 12.0, &dev)
            .unwrap()
            .reshape((6, 2))
            .unwrap();
        let perm = Tensor::from_slice(&c.perm, 6, &dev).unwrap();
        let offs = Tensor::from_slice(&c.offs, 4, &dev).unwrap();
        let s = seg_sum(&g, &perm, &offs).unwrap();
        let ids = Tensor::from_slice(&local, 6, &dev).unwrap();
        let want = Tensor::zeros((3, 2), candle_core::DType::F32, &dev)
            .unwrap()
            .index_add(&ids, &g, 0)
            .unwrap();
        assert_eq!(s.to_vec2::<f32>().unwrap(), want.to_vec2::<f32>().unwrap());
        assert_eq!(
            s.to_vec2::<f32>().unwrap()[2],
            vec![0.0 + 4.0 + 8.0, 1.0 + 5.0 + 9.0]
        );
    }
}

/// In-place row scatter `dst[slots[r], :] = src[r, :]` (distinct slots), the store of updated
/// or fetched rows into the cache. candle's `scatter_set` runs one CUDA thread per column and
/// loops over the rows (about 1 GB/s measured on the H200); this kernel (`scatter_rows_f32`,
/// 16-byte accesses when the width allows) runs one thread per element.
struct ScatterRows;

impl candle_core::InplaceOp3 for ScatterRows {
    fn name(&self) -> &'static str {
        "embcache-scatter-rows"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(dst), CpuStorage::F32(src), CpuStorage::U32(slots)) = (s1, s2, s3)
        else {
            candle_core::bail!("scatter-rows: expected f32 dst/src and u32 slots")
        };
        let (Some((d0, d1)), Some((r0, r1)), Some((k0, k1))) = (
            l1.contiguous_offsets(),
            l2.contiguous_offsets(),
            l3.contiguous_offsets(),
        ) else {
            candle_core::bail!("scatter-rows: operands must be contiguous")
        };
        let w = l1.dims()[1];
        let (dst, src, slots) = (&mut dst[d0..d1], &src[r0..r1], &slots[k0..k1]);
        for (r, &s) in slots.iter().enumerate() {
            dst[s as usize * w..(s as usize + 1) * w].copy_from_slice(&src[r * w..(r + 1) * w]);
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<()> {
        use candle_core::backend::BackendStorage;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
        use candle_core::cuda_backend::WrapErr;
        let dev = s1.device().clone();
        let (Some((d0, d1)), Some((r0, r1)), Some((k0, k1))) = (
            l1.contiguous_offsets(),
            l2.contiguous_offsets(),
            l3.contiguous_offsets(),
        ) else {
            candle_core::bail!("scatter-rows: operands must be contiguous")
        };
        let w = l1.dims()[1];
        let n = k1 - k0;
        if n == 0 {
            return Ok(());
        }
        let src = s2.as_cuda_slice::<f32>()?.slice(r0..r1);
        let slots = s3.as_cuda_slice::<u32>()?.slice(k0..k1);
        let mut dst = s1.as_cuda_slice_mut::<f32>()?.slice_mut(d0..d1);
        // 16-byte path: width and both starts multiples of 4 floats (allocations are aligned).
        let vec4 = w % 4 == 0 && d0 % 4 == 0 && r0 % 4 == 0;
        let (name, wk) = if vec4 {
            ("scatter_rows_f32x4", w / 4)
        } else {
            ("scatter_rows_f32", w)
        };
        let func = dev.get_or_load_custom_func(name, "embcache_seg_sum", PTX)?;
        let mut b = func.builder();
        b.arg(&src);
        b.arg(&slots);
        b.arg(&mut dst);
        let (n_u32, wk_u32) = (n as u32, wk as u32);
        b.arg(&n_u32);
        b.arg(&wk_u32);
        let cfg = LaunchConfig::for_num_elems((n * wk) as u32);
        // SAFETY: argument types and order match the kernels in seg_sum.cu (float4 views of the
        // same f32 buffers when `vec4`); `src` holds n·w f32, `slots` n distinct slots < dst rows.
        unsafe { b.launch(cfg) }.w()?;
        Ok(())
    }
}

/// `dst[slots[r], :] = src[r, :]` in place (`dst` `[S, w]`, `src` `[n, w]` f32, `slots` `[n]` u32
/// distinct and `< S`, all contiguous and on one device).
///
/// # Errors
/// Shapes, dtypes, device errors.
pub fn scatter_rows(dst: &Tensor, src: &Tensor, slots: &Tensor) -> Result<()> {
    let (s, w) = dst.dims2()?;
    let (n, w2) = src.dims2()?;
    if w != w2 || slots.dims1()? != n {
        anyhow::bail!(
            "scatter-rows: dst {:?}, src {:?}, slots {:?} do not match",
            dst.dims(),
            src.dims(),
            slots.dims()
        );
    }
    let _ = s;
    let src = src.contiguous()?;
    Ok(dst.inplace_op3(&src, slots, &ScatterRows)?)
}

/// Zero-copy gather `out[r, :] = host[idx[r], :]`: the GPU reads the rows straight from the
/// page-locked host table over the bus (`gather_host_rows_f32x4`; with unified addressing the
/// pinned pointer is valid on the device), no staging copy. On the CPU (a plain `Vec` table) the
/// same rows are copied on the host.
struct GatherHostRows {
    /// The host table's first element (page-locked on CUDA).
    host: *const f32,
    /// f32 per row.
    width: usize,
    /// Rows in the table (indices are checked against it).
    rows: usize,
}

impl candle_core::InplaceOp2 for GatherHostRows {
    fn name(&self) -> &'static str {
        "embcache-gather-host-rows"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(out), CpuStorage::U32(idx)) = (s1, s2) else {
            candle_core::bail!("gather-host-rows: expected f32 out and u32 idx")
        };
        let (Some((o0, o1)), Some((i0, i1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("gather-host-rows: operands must be contiguous")
        };
        let w = self.width;
        // SAFETY: `host` points to `rows × width` f32 that outlive this call (GatherHostRows is
        // built from a borrowed HostBuf in `gather_host_rows`).
        let host = unsafe { std::slice::from_raw_parts(self.host, self.rows * w) };
        for (r, &i) in idx[i0..i1].iter().enumerate() {
            let i = i as usize;
            if i >= self.rows {
                candle_core::bail!("gather-host-rows: row {i} past the table's {}", self.rows)
            }
            out[o0..o1][r * w..(r + 1) * w].copy_from_slice(&host[i * w..(i + 1) * w]);
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        use candle_core::backend::BackendStorage;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
        use candle_core::cuda_backend::WrapErr;
        let dev = s1.device().clone();
        let (Some((o0, o1)), Some((i0, i1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("gather-host-rows: operands must be contiguous")
        };
        let n = i1 - i0;
        if n == 0 {
            return Ok(());
        }
        if self.width % 4 != 0 || o0 % 4 != 0 {
            candle_core::bail!(
                "gather-host-rows: width {} is not a multiple of 4 floats",
                self.width
            )
        }
        let idx = s2.as_cuda_slice::<u32>()?.slice(i0..i1);
        let mut out = s1.as_cuda_slice_mut::<f32>()?.slice_mut(o0..o1);
        let func =
            dev.get_or_load_custom_func("gather_host_rows_f32x4", "embcache_seg_sum", PTX)?;
        let mut b = func.builder();
        let host = self.host as u64;
        b.arg(&host);
        b.arg(&idx);
        b.arg(&mut out);
        let (n_u32, wk_u32) = (n as u32, (self.width / 4) as u32);
        b.arg(&n_u32);
        b.arg(&wk_u32);
        let cfg = LaunchConfig::for_num_elems((n * self.width / 4) as u32);
        // SAFETY: argument types and order match `gather_host_rows_f32x4`; `host` is a page-locked
        // allocation of `rows × width` f32 (mapped with unified addressing) alive for the call and
        // the caller synchronizes before it is freed; the caller checked every index < rows.
        unsafe { b.launch(cfg) }.w()?;
        Ok(())
    }
}

/// `out[r, :] = host[idx[r], :]` for `n` rows read by the device straight from the page-locked
/// host table (zero-copy; `out` `[≥ n, width]` f32, `idx` `[n]` u32 on `out`'s device, every
/// index below the table's rows). The micro-measurement's `zero_copy_gather`.
///
/// # Errors
/// Shapes, an index past the table, device errors.
pub fn gather_host_rows(
    host: &super::xfer::HostBuf,
    width: usize,
    idx_host: &[u32],
    idx: &Tensor,
    out: &Tensor,
) -> Result<()> {
    let rows = host.as_slice().len() / width.max(1);
    if let Some(&bad) = idx_host.iter().find(|&&i| i as usize >= rows) {
        anyhow::bail!("gather-host-rows: row {bad} past the table's {rows}");
    }
    let n = idx.dims1()?;
    let out = out.narrow(0, 0, n)?;
    Ok(out.inplace_op2(
        idx,
        &GatherHostRows {
            host: host.as_slice().as_ptr(),
            width,
            rows,
        },
    )?)
}

#[cfg(test)]
mod scatter_tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn scatter_rows_equals_candle_scatter_set() {
        let dev = Device::Cpu;
        let dst = Tensor::zeros((6, 3), DType::F32, &dev).unwrap();
        let want = Tensor::zeros((6, 3), DType::F32, &dev).unwrap();
        let src = Tensor::arange(1f32, 10.0, &dev)
            .unwrap()
            .reshape((3, 3))
            .unwrap();
        let slots = Tensor::from_slice(&[4u32, 0, 2], 3, &dev).unwrap();
        scatter_rows(&dst, &src, &slots).unwrap();
        let idx = slots
            .unsqueeze(1)
            .unwrap()
            .broadcast_as((3, 3))
            .unwrap()
            .contiguous()
            .unwrap();
        want.scatter_set(&idx, &src, 0).unwrap();
        assert_eq!(
            dst.to_vec2::<f32>().unwrap(),
            want.to_vec2::<f32>().unwrap()
        );
        assert_eq!(dst.to_vec2::<f32>().unwrap()[4], vec![1.0, 2.0, 3.0]);
        let bad = Tensor::from_slice(&[1u32], 1, &dev).unwrap();
        assert!(scatter_rows(&dst, &src, &bad).is_err());
    }
}

#[cfg(test)]
mod host_gather_tests {
    use super::*;
    use candle_core::{DType, Device};

    /// The zero-copy gather's CPU path returns exactly the indexed host rows, and refuses an index
    /// past the table.
    #[test]
    fn gather_host_rows_returns_the_indexed_rows() {
        let dev = Device::Cpu;
        let w = 4;
        let mut table = super::super::xfer::HostBuf::zeros(5 * w, &dev).unwrap();
        for (i, x) in table.as_mut_slice().iter_mut().enumerate() {
            *x = i as f32;
        }
        let rows = [3u32, 0, 3, 4];
        let idx = Tensor::from_slice(&rows, 4, &dev).unwrap();
        let out = Tensor::zeros((6, w), DType::F32, &dev).unwrap();
        gather_host_rows(&table, w, &rows, &idx, &out).unwrap();
        let got = out.narrow(0, 0, 4).unwrap().to_vec2::<f32>().unwrap();
        for (r, &i) in rows.iter().enumerate() {
            let want: Vec<f32> = (0..w).map(|c| (i as usize * w + c) as f32).collect();
            assert_eq!(got[r], want);
        }
        assert_eq!(
            out.narrow(0, 4, 2)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
        let bad = [5u32];
        let e = gather_host_rows(
            &table,
            w,
            &bad,
            &Tensor::from_slice(&bad, 1, &dev).unwrap(),
            &out,
        )
        .unwrap_err();
        assert!(e.to_string().contains("row 5 past the table's 5"), "{e}");
    }
}
