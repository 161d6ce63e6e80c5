//! Host memory and host↔device row transfers.
//!
//! - [`HostBuf`]: `f32` host memory, page-locked through the CUDA driver on a CUDA device
//!   (`cuMemHostAlloc` without write-combining, so the host reads it at full speed), a plain
//!   `Vec` on the CPU.
//! - [`gather_rows`] / [`scatter_rows`]: row copies between the host table and staging buffers,
//!   split over host threads (the host side of a fetch and a write-back).
//! - [`Copier`]: explicit copies between host buffers and candle tensors on the compute stream
//!   or on a second stream (CUDA), with events to order them; on the CPU every call completes
//!   before it returns.

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};

/// `f32` host memory (pinned on CUDA devices).
pub struct HostBuf {
    ptr: *mut f32,
    len: usize,
    _owner: Owner,
}

enum Owner {
    Vec(#[allow(dead_code)] Vec<f32>),
    #[cfg(feature = "cuda")]
    Pinned(#[allow(dead_code)] candle_core::cuda_backend::cudarc::driver::PinnedHostSlice<f32>),
}

// SAFETY: the buffer is plain memory owned by this value; access goes through &/&mut self.
unsafe impl Send for HostBuf {}
// SAFETY: as above; shared access is read-only.
unsafe impl Sync for HostBuf {}

impl HostBuf {
    /// `len` zeroed `f32`s: page-locked when `dev` is a CUDA device.
    ///
    /// # Errors
    /// The driver's allocation error.
    pub fn zeros(len: usize, dev: &Device) -> Result<HostBuf> {
        let len1 = len.max(1);
        #[cfg(feature = "cuda")]
        if let Device::Cuda(cd) = dev {
            let ctx = cd.cuda_stream().context().clone();
            // SAFETY: the memory is zeroed below before any read. Flags 0: cacheable (not
            // write-combined: the host gathers from and scatters into these buffers).
            let mut p = unsafe { ctx.alloc_pinned_with_flags::<f32>(len1, 0)? };
            let ptr = p.as_mut_ptr()?;
            // SAFETY: `ptr` points to `len1` f32 owned by `p`.
            unsafe { std::ptr::write_bytes(ptr, 0, len1) };
            return Ok(HostBuf {
                ptr,
                len,
                _owner: Owner::Pinned(p),
            });
        }
        let _ = dev;
        let mut v = vec![0f32; len1];
        let ptr = v.as_mut_ptr();
        Ok(HostBuf {
            ptr,
            len,
            _owner: Owner::Vec(v),
        })
    }

    /// Whether the memory is page-locked.
    pub fn pinned(&self) -> bool {
        !matches!(self._owner, Owner::Vec(_))
    }

    /// The whole buffer.
    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `ptr` is valid for `len` f32 for the life of `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The whole buffer, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as above, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Host threads used for row copies (at most 8; rows are split in chunks of ≥ 2048).
fn threads_for(rows: usize) -> usize {
    let hw = std::thread::available_parallelism().map_or(1, |n| n.get());
    hw.min(8).min(rows / 2048).max(1)
}

/// `dst[i] = table[rows[i]]` for rows of `width` f32.
pub fn gather_rows(table: &[f32], width: usize, rows: &[u32], dst: &mut [f32]) {
    let n = rows.len();
    let dst = &mut dst[..n * width];
    let th = threads_for(n);
    let chunk = n.div_ceil(th);
    std::thread::scope(|s| {
        for (ci, d) in dst.chunks_mut(chunk * width).enumerate() {
            let rs = &rows[ci * chunk..(ci * chunk + d.len() / width)];
            let mut body = move || {
                for (k, &r) in rs.iter().enumerate() {
                    let o = r as usize * width;
                    d[k * width..(k + 1) * width].copy_from_slice(&table[o..o + width]);
                }
            };
            if th == 1 {
                body();
            } else {
                s.spawn(body);
            }
        }
    });
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to write disjoint rows from scoped threads.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

/// `table[rows[i]] = src[i]` for rows of `width` f32.
///
/// # Panics
/// A row out of range. Rows must be distinct (they are: one write-back per row).
pub fn scatter_rows(table: &mut [f32], width: usize, rows: &[u32], src: &[f32]) {
    let n = rows.len();
    let total = table.len();
    assert!(rows.iter().all(|&r| (r as usize + 1) * width <= total));
    let base = SendPtr(table.as_mut_ptr());
    let th = threads_for(n);
    let chunk = n.div_ceil(th).max(1);
    std::thread::scope(|s| {
        for (ci, rs) in rows.chunks(chunk).enumerate() {
            let sv = &src[ci * chunk * width..(ci * chunk + rs.len()) * width];
            let body = move || {
                let p = base;
                for (k, &r) in rs.iter().enumerate() {
                    // SAFETY: in range (asserted above); rows are distinct, so no two threads
                    // write the same element, and `table` is exclusively borrowed.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            sv[k * width..].as_ptr(),
                            p.0.add(r as usize * width),
                            width,
                        )
                    };
                }
            };
            if th == 1 {
                body();
            } else {
                s.spawn(body);
            }
        }
    });
}

/// Which stream a copy runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum On {
    /// candle's compute stream.
    Main,
    /// The copy stream (overlaps with compute on CUDA).
    Copy,
}

/// A recorded point in a stream (CUDA event); on the CPU, always complete.
pub struct Mark {
    #[cfg(feature = "cuda")]
    ev: Option<candle_core::cuda_backend::cudarc::driver::CudaEvent>,
}

impl Mark {
    /// An already-complete mark.
    pub fn done() -> Mark {
        Mark {
            #[cfg(feature = "cuda")]
            ev: None,
        }
    }
}

/// Explicit host↔device copies between [`HostBuf`]s and preallocated contiguous `f32` tensors.
pub struct Copier {
    dev: Device,
    #[cfg(feature = "cuda")]
    copy: Option<std::sync::Arc<candle_core::cuda_backend::cudarc::driver::CudaStream>>,
}

impl Copier {
    /// For `dev` (a CUDA device gets a second, non-blocking stream for [`On::Copy`]).
    ///
    /// # Errors
    /// Stream creation.
    pub fn new(dev: &Device) -> Result<Copier> {
        #[cfg(feature = "cuda")]
        if let Device::Cuda(cd) = dev {
            let s = cd.cuda_stream().context().new_stream()?;
            return Ok(Copier {
                dev: dev.clone(),
                copy: Some(s),
            });
        }
        Ok(Copier {
            dev: dev.clone(),
            #[cfg(feature = "cuda")]
            copy: None,
        })
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    #[cfg(feature = "cuda")]
    fn stream(
        &self,
        on: On,
    ) -> Option<std::sync::Arc<candle_core::cuda_backend::cudarc::driver::CudaStream>> {
        match (&self.dev, on) {
            (Device::Cuda(cd), On::Main) => Some(cd.cuda_stream()),
            (Device::Cuda(_), On::Copy) => self.copy.clone(),
            _ => None,
        }
    }

    /// Copies `n` rows of `width` from `src` into the first rows of `dst` (`[rows ≥ n, width]`
    /// contiguous f32, preallocated). CPU: `dst` is replaced by a new tensor (candle CPU tensors
    /// are immutable), so callers use the returned tensor.
    ///
    /// # Errors
    /// Sizes; driver errors.
    pub fn h2d(
        &self,
        src: &HostBuf,
        n: usize,
        width: usize,
        dst: &Tensor,
        on: On,
    ) -> Result<Tensor> {
        if n * width > src.len() {
            bail!(
                "h2d: {n} rows of {width} exceed the source's {} f32",
                src.len()
            );
        }
        #[cfg(feature = "cuda")]
        if let Some(s) = self.stream(on) {
            if n > dst.dim(0)? || dst.dim(1)? != width || !dst.is_contiguous() {
                bail!(
                    "h2d: {n} rows of {width} do not fit the destination {:?}",
                    dst.dims()
                );
            }
            use candle_core::cuda_backend::cudarc::driver::{result, DevicePtr};
            if n > 0 {
                let (st, l) = dst.storage_and_layout();
                let candle_core::Storage::Cuda(cs) = &*st else {
                    bail!("h2d: destination is not on the CUDA device")
                };
                let slice = cs.as_cuda_slice::<f32>()?;
                let (ptr, _g) = slice.device_ptr(&s);
                let ptr = ptr + (l.start_offset() * 4) as u64;
                // SAFETY: `dst` holds ≥ n·width f32 from its offset; `src` is page-locked and
                // stays alive and unwritten until the caller has waited on this stream (the
                // engine synchronizes the matching mark before reusing it).
                unsafe {
                    result::memcpy_htod_async(ptr, &src.as_slice()[..n * width], s.cu_stream())?
                };
            }
            return Ok(dst.clone());
        }
        let _ = (on, dst);
        Ok(Tensor::from_slice(
            &src.as_slice()[..n * width],
            (n, width),
            &self.dev,
        )?)
    }

    /// Copies the first `n` rows of `src` (contiguous `[≥ n, width]` f32) into `dst`.
    ///
    /// # Errors
    /// Sizes; driver errors.
    pub fn d2h(
        &self,
        src: &Tensor,
        n: usize,
        width: usize,
        dst: &mut HostBuf,
        on: On,
    ) -> Result<()> {
        if n * width > dst.len() || n > src.dim(0)? || src.dim(1)? != width {
            bail!(
                "d2h: {n} rows of {width} do not fit (src {:?}, dst {} f32)",
                src.dims(),
                dst.len()
            );
        }
        if n == 0 {
            return Ok(());
        }
        #[cfg(feature = "cuda")]
        if let Some(s) = self.stream(on) {
            use candle_core::cuda_backend::cudarc::driver::{result, DevicePtr};
            // A contiguous copy made here could be freed before the asynchronous read ends.
            if !src.is_contiguous() {
                bail!("d2h: the source must be contiguous");
            }
            let (st, l) = src.storage_and_layout();
            let candle_core::Storage::Cuda(cs) = &*st else {
                bail!("d2h: source is not on the CUDA device")
            };
            let slice = cs.as_cuda_slice::<f32>()?;
            let (ptr, _g) = slice.device_ptr(&s);
            let ptr = ptr + (l.start_offset() * 4) as u64;
            // SAFETY: `src` holds ≥ n·width f32 from its offset and the caller keeps it alive
            // until this stream's work is waited on; `dst` is page-locked and not read before.
            unsafe {
                result::memcpy_dtoh_async(&mut dst.as_mut_slice()[..n * width], ptr, s.cu_stream())?
            };
            return Ok(());
        }
        let _ = on;
        let v = src.narrow(0, 0, n)?.flatten_all()?.to_vec1::<f32>()?;
        dst.as_mut_slice()[..n * width].copy_from_slice(&v);
        Ok(())
    }

    /// Device-to-device copy of the whole of `src` into `dst` on the compute stream
    /// (`cuMemcpyDtoDAsync`: the device-memory roofline of a run); on the CPU a tensor copy.
    ///
    /// # Errors
    /// Sizes or layouts that differ; driver errors.
    pub fn d2d(&self, src: &Tensor, dst: &Tensor) -> Result<()> {
        if src.dims() != dst.dims() || !src.is_contiguous() || !dst.is_contiguous() {
            bail!(
                "d2d: {:?} into {:?} (both contiguous, same shape)",
                src.dims(),
                dst.dims()
            );
        }
        #[cfg(feature = "cuda")]
        if let Some(s) = self.stream(On::Main) {
            use candle_core::cuda_backend::cudarc::driver::{result, DevicePtr};
            let (ss, sl) = src.storage_and_layout();
            let (ds, dl) = dst.storage_and_layout();
            let (candle_core::Storage::Cuda(sc), candle_core::Storage::Cuda(dc)) = (&*ss, &*ds)
            else {
                bail!("d2d: tensors are not on the CUDA device")
            };
            let (sp, _g1) = sc.as_cuda_slice::<f32>()?.device_ptr(&s);
            let (dp, _g2) = dc.as_cuda_slice::<f32>()?.device_ptr(&s);
            let bytes = src.elem_count() * 4;
            // SAFETY: both buffers hold `bytes` from their offsets and stay alive (borrowed here;
            // the caller synchronizes before dropping them).
            unsafe {
                result::memcpy_dtod_async(
                    dp + (dl.start_offset() * 4) as u64,
                    sp + (sl.start_offset() * 4) as u64,
                    bytes,
                    s.cu_stream(),
                )?
            };
            return Ok(());
        }
        let _ = src.copy()?;
        Ok(())
    }

    /// Records the work issued so far on `on`.
    ///
    /// # Errors
    /// Driver errors.
    pub fn mark(&self, on: On) -> Result<Mark> {
        #[cfg(feature = "cuda")]
        if let Some(s) = self.stream(on) {
            return Ok(Mark {
                ev: Some(s.record_event(None)?),
            });
        }
        let _ = on;
        Ok(Mark::done())
    }

    /// Makes stream `on` wait for `m` (device side; the host does not block).
    ///
    /// # Errors
    /// Driver errors.
    pub fn wait(&self, on: On, m: &Mark) -> Result<()> {
        #[cfg(feature = "cuda")]
        if let (Some(s), Some(ev)) = (self.stream(on), &m.ev) {
            s.wait(ev)?;
        }
        let _ = (on, m);
        Ok(())
    }

    /// Blocks the host until `m` is complete.
    ///
    /// # Errors
    /// Driver errors.
    pub fn host_wait(&self, m: &Mark) -> Result<()> {
        #[cfg(feature = "cuda")]
        if let Some(ev) = &m.ev {
            ev.synchronize()?;
        }
        let _ = m;
        Ok(())
    }

    /// Blocks the host until both streams are idle.
    ///
    /// # Errors
    /// Driver errors.
    pub fn sync(&self) -> Result<()> {
        #[cfg(feature = "cuda")]
        if let Some(s) = &self.copy {
            s.synchronize()?;
        }
        self.dev.synchronize()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_and_scatter_rows_round_trip() {
        let width = 3;
        let n_rows = 5000;
        let table: Vec<f32> = (0..n_rows * width).map(|i| i as f32).collect();
        let rows: Vec<u32> = (0..4500u32).map(|i| (i * 7) % n_rows as u32).collect();
        let mut buf = vec![0f32; rows.len() * width];
        gather_rows(&table, width, &rows, &mut buf);
        for (k, &r) in rows.iter().enumerate() {
            assert_eq!(buf[k * width + 2], (r as usize * width + 2) as f32);
        }
        let mut t2 = vec![-1f32; n_rows * width];
        scatter_rows(&mut t2, width, &rows, &buf);
        for &r in &rows {
            let o = r as usize * width;
            assert_eq!(&t2[o..o + width], &table[o..o + width]);
        }
        assert_eq!(
            t2.iter().filter(|&&x| x == -1.0).count(),
            (n_rows - rows.len()) * width
        );
    }

    #[test]
    fn cpu_copies_move_the_rows() {
        let dev = Device::Cpu;
        let c = Copier::new(&dev).unwrap();
        let mut h = HostBuf::zeros(12, &dev).unwrap();
        assert!(!h.pinned());
        h.as_mut_slice()
            .copy_from_slice(&(0..12).map(|i| i as f32).collect::<Vec<_>>());
        let stage = Tensor::zeros((4, 3), candle_core::DType::F32, &dev).unwrap();
        let t = c.h2d(&h, 2, 3, &stage, On::Copy).unwrap();
        assert_eq!(
            t.to_vec2::<f32>().unwrap(),
            vec![vec![0., 1., 2.], vec![3., 4., 5.]]
        );
        let mut out = HostBuf::zeros(6, &dev).unwrap();
        c.d2h(&t, 2, 3, &mut out, On::Main).unwrap();
        assert_eq!(out.as_slice(), &[0., 1., 2., 3., 4., 5.]);
        assert!(
            c.h2d(&h, 5, 3, &stage, On::Main).is_err(),
            "15 f32 from a 12-f32 buffer"
        );
    }
}
