//! The `ram` cache tier: a frozen prefix's output kept in page-locked host memory.
//!
//! One host slot per batch position, allocated before the timed loop (page-locked with
//! `cuMemHostAlloc` on a CUDA device, so no page fault or allocation lands inside an iteration).
//! A write is an asynchronous device→host copy on candle's compute stream and a read an
//! asynchronous host→device copy into a fresh device tensor on the same stream, so the copies
//! are ordered after the forward that produced the data and before anything that uses it, and
//! no host synchronization enters the iteration. (Run 13 measured the earlier pageable version —
//! `Tensor::to_device(Cpu)`, a blocking copy into freshly allocated host pages — at 4–12× its
//! isolated copy time inside the loop.) On the CPU device a slot holds a tensor copy.

use candle_core::{DType, Device, Result, Tensor};

/// A host slot: the stored tensor's shape and dtype (read back on CUDA), and its bytes.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
struct Slot {
    shape: Vec<usize>,
    dtype: DType,
    buf: Buf,
}

enum Buf {
    /// CPU device: a copy of the tensor.
    Tensor(Tensor),
    /// CUDA device: page-locked bytes (length = the slot's capacity).
    #[cfg(feature = "cuda")]
    Pinned(candle_core::cuda_backend::cudarc::driver::PinnedHostSlice<u8>),
}

/// Page-locked host slots for the `ram` tier (see the module docs).
pub struct RamStore {
    dev: Device,
    cap_bytes: usize,
    slots: Vec<Option<Slot>>,
    #[cfg(feature = "cuda")]
    pool: Vec<candle_core::cuda_backend::cudarc::driver::PinnedHostSlice<u8>>,
}

impl RamStore {
    /// `n` slots of at most `cap_bytes` each on `dev` (page-locked now, on a CUDA device).
    ///
    /// # Errors
    /// The driver's allocation error.
    pub fn new(n: usize, cap_bytes: usize, dev: &Device) -> Result<RamStore> {
        #[cfg(feature = "cuda")]
        let mut pool = Vec::new();
        #[cfg(feature = "cuda")]
        if let Device::Cuda(cd) = dev {
            let ctx = cd.cuda_stream().context().clone();
            for _ in 0..n {
                // SAFETY: the bytes are only read by a host→device copy of a slot after a
                // device→host copy filled it (`read` refuses an empty slot).
                let p = unsafe { ctx.alloc_pinned_with_flags::<u8>(cap_bytes.max(1), 0) }
                    .map_err(candle_core::Error::wrap)?;
                pool.push(p);
            }
        }
        Ok(RamStore {
            dev: dev.clone(),
            cap_bytes,
            slots: (0..n).map(|_| None).collect(),
            #[cfg(feature = "cuda")]
            pool,
        })
    }

    /// Bytes a slot can hold.
    pub fn cap_bytes(&self) -> usize {
        self.cap_bytes
    }

    /// Stores `x` (contiguous, f32 or bf16, at most [`RamStore::cap_bytes`]) in slot `pos`,
    /// replacing what was there; returns the bytes written.
    ///
    /// # Errors
    /// A slot out of range, a tensor too large, of another dtype or not contiguous; driver
    /// errors.
    pub fn write(&mut self, pos: usize, x: &Tensor) -> Result<usize> {
        let nbytes = x.elem_count() * x.dtype().size_in_bytes();
        if pos >= self.slots.len() || nbytes > self.cap_bytes || !x.is_contiguous() {
            candle_core::bail!(
                "ram store: slot {pos} of {}, {nbytes} bytes (capacity {}), contiguous {}",
                self.slots.len(),
                self.cap_bytes,
                x.is_contiguous()
            )
        }
        #[cfg(feature = "cuda")]
        if let Device::Cuda(cd) = &self.dev {
            use candle_core::cuda_backend::cudarc::driver::{result, DevicePtr, HostSlice};
            use candle_core::cuda_backend::CudaStorageSlice as S;
            let stream = cd.cuda_stream();
            // Take this position's page-locked buffer back from its slot (or the pool).
            let mut buf = match self.slots[pos].take() {
                Some(Slot {
                    buf: Buf::Pinned(p),
                    ..
                }) => p,
                _ => self.pool.pop().ok_or_else(|| {
                    candle_core::Error::Msg("ram store: no free page-locked slot".into())
                })?,
            };
            let (st, l) = x.storage_and_layout();
            let candle_core::Storage::Cuda(cs) = &*st else {
                candle_core::bail!("ram store: tensor not on the CUDA device")
            };
            let off = l.start_offset() * x.dtype().size_in_bytes();
            {
                // SAFETY: the stream waits for the buffer's last recorded use (none: only this
                // stream ever touches it) and records this one; the host never reads the bytes.
                let (host, _rec) = unsafe { buf.stream_synced_mut_slice(&stream) };
                let host = &mut host[..nbytes];
                macro_rules! d2h {
                    ($s:expr) => {{
                        let (ptr, _g) = $s.device_ptr(&stream);
                        // SAFETY: the tensor holds `nbytes` from its offset and stays alive in the
                        // caller until the stream passes this copy (the iteration's end sync); the
                        // page-locked destination is not read by the host.
                        unsafe {
                            result::memcpy_dtoh_async(host, ptr + off as u64, stream.cu_stream())
                        }
                        .map_err(candle_core::Error::wrap)?
                    }};
                }
                match &cs.slice {
                    S::F32(s) => d2h!(s),
                    S::BF16(s) => d2h!(s),
                    _ => candle_core::bail!("ram store: dtype {:?} (f32 or bf16)", x.dtype()),
                }
            }
            self.slots[pos] = Some(Slot {
                shape: x.dims().to_vec(),
                dtype: x.dtype(),
                buf: Buf::Pinned(buf),
            });
            return Ok(nbytes);
        }
        self.slots[pos] = Some(Slot {
            shape: x.dims().to_vec(),
            dtype: x.dtype(),
            buf: Buf::Tensor(x.copy()?),
        });
        Ok(nbytes)
    }

    /// The tensor stored in slot `pos`, as a new device tensor.
    ///
    /// # Errors
    /// An empty or out-of-range slot; driver errors.
    pub fn read(&self, pos: usize) -> Result<Tensor> {
        let Some(Some(slot)) = self.slots.get(pos) else {
            candle_core::bail!("ram store: slot {pos} is empty")
        };
        match &slot.buf {
            Buf::Tensor(t) => Ok(t.clone()),
            #[cfg(feature = "cuda")]
            Buf::Pinned(p) => {
                use candle_core::cuda_backend::cudarc::driver::{result, DevicePtr, HostSlice};
                use candle_core::cuda_backend::CudaStorageSlice as S;
                let Device::Cuda(cd) = &self.dev else {
                    candle_core::bail!("ram store: page-locked slot on a CPU device")
                };
                let stream = cd.cuda_stream();
                let t = Tensor::zeros(slot.shape.as_slice(), slot.dtype, &self.dev)?;
                let nbytes = t.elem_count() * t.dtype().size_in_bytes();
                // SAFETY: as in `write`: ordered on the one stream that uses the buffer.
                let (host, _rec) = unsafe { p.stream_synced_slice(&stream) };
                let host = &host[..nbytes];
                {
                    let (st, _) = t.storage_and_layout();
                    let candle_core::Storage::Cuda(cs) = &*st else {
                        candle_core::bail!("ram store: tensor not on the CUDA device")
                    };
                    macro_rules! h2d {
                        ($s:expr) => {{
                            let (ptr, _g) = $s.device_ptr(&stream);
                            // SAFETY: `t` was just allocated with `nbytes` (offset 0); the
                            // page-locked source stays alive and unwritten until a later write
                            // on this same stream, which is ordered after this copy.
                            unsafe { result::memcpy_htod_async(ptr, host, stream.cu_stream()) }
                                .map_err(candle_core::Error::wrap)?
                        }};
                    }
                    match &cs.slice {
                        S::F32(s) => h2d!(s),
                        S::BF16(s) => h2d!(s),
                        _ => candle_core::bail!("ram store: dtype {:?}", slot.dtype),
                    }
                }
                Ok(t)
            }
        }
    }

    /// Whether slot memory is page-locked host memory (CUDA) rather than a tensor copy (CPU).
    pub fn pinned(&self) -> bool {
        !matches!(self.dev, Device::Cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_round_trip_and_bounds() {
        let dev = Device::Cpu;
        let mut s = RamStore::new(2, 64, &dev).unwrap();
        let x = Tensor::arange(0f32, 12., &dev)
            .unwrap()
            .reshape((3, 4))
            .unwrap();
        assert_eq!(s.write(1, &x).unwrap(), 48);
        let y = s.read(1).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), x.to_vec2::<f32>().unwrap());
        assert!(s.read(0).is_err(), "empty slot");
        assert!(s.write(2, &x).is_err(), "slot out of range");
        let big = Tensor::zeros((5, 4), DType::F32, &dev).unwrap();
        assert!(s.write(0, &big).is_err(), "80 bytes > capacity 64");
        // bf16 halves the bytes.
        let xb = x.to_dtype(DType::BF16).unwrap();
        assert_eq!(s.write(0, &xb).unwrap(), 24);
        assert_eq!(s.read(0).unwrap().dtype(), DType::BF16);
    }
}
