//! The four operations the codecs need that candle 0.11 lacks or runs serially on CUDA, each a
//! custom op with a CPU reference that gives the same result (`codec.cu`, built to PTX with nvcc
//! 13.0.88 for sm_90, `nvcc -arch=sm_90 -O3 --ptx codec.cu -o codec.ptx`):
//!
//! - [`uniform`]: seeded uniform numbers on [0, 1) from a counter-based hash (splitmix64's
//!   finalizer, Steele, Lea & Flood 2014), identical bits on the CPU and the GPU; candle's CPU
//!   generator cannot be seeded and its CUDA one is a single per-device state.
//! - [`scatter_add`]: `out = 0; out[idx[j]] += val[j]`, one thread per entry with `atomicAdd`
//!   (candle's `index_add` / `scatter_add` CUDA kernels loop over every index in one thread per
//!   column: serial on a flat vector).
//! - [`select`]: stable compaction of flagged positions, in index order, taking exactly `need`
//!   of the tie-flagged ones (lowest indices first): Top-k's exact selection of k elements.
//! - [`top_k_select`]: Top-k's exact selection on the device without a host read: a radix select
//!   of the k-th largest |x| (three passes, each a 4096-bin histogram of f32 bit-pattern digits
//!   among the elements with the prefix so far and a one-block pick of the next digit, the
//!   state kept in four device words), then [`select`]'s compaction. (candle's `sum_all`
//!   reduces a whole vector in one block, which made run 17's 31-pass bisection take 0.44 s at
//!   2.3·10⁷ elements; the radix passes that replaced it read each histogram on the host, which
//!   drained the launch queue three times per bucket mid-backward: issue 14's Top-k step error.)
//!
//! Exactness: `uniform`, `select` and `top_k_select` are bit-identical on both devices; `scatter_add` is exact when
//! the indices are distinct (one rank's payload) and otherwise adds colliding entries in an
//! unspecified order on the GPU (rank order on the CPU), within one rounding per collision.

use anyhow::{bail, Result};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};

/// PTX of `codec.cu` (nvcc 13.0.88, `-arch=sm_90 -O3`).
#[cfg(feature = "cuda")]
pub(crate) const PTX: &str = include_str!("codec.ptx");

/// Module name under which the PTX is loaded on the device.
#[cfg(feature = "cuda")]
pub(crate) const MODULE: &str = "gradcomp_codec";

/// A kernel launch's driver error, naming the kernel (with `CUDA_LAUNCH_BLOCKING=1` the launch
/// that faults is the one that reports it).
#[cfg(feature = "cuda")]
pub(crate) fn launch_err(kernel: &str, e: impl std::fmt::Debug) -> candle_core::Error {
    candle_core::Error::Msg(format!("{kernel}: {e:?}"))
}

/// Elements per block of the selection kernels (one thread each).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const SEL_BLOCK: usize = 1024;

/// splitmix64's finalizer (the same as `codec_mix64` in `codec.cu`).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stream key of draw number `round` of bucket `bucket` under `seed` (every rank derives
/// the same key, so shared draws agree without communication).
pub fn key(seed: u64, bucket: usize, round: u64) -> u64 {
    mix64(seed ^ mix64(((bucket as u64) << 40) ^ round ^ 0x5eed_c0de))
}

/// Element `i` of the uniform stream `key`: the top 24 bits of `mix64(key + i·φ)` times 2⁻²⁴.
pub fn uniform_at(key: u64, i: u64) -> f32 {
    let h = mix64(key.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    (h >> 40) as u32 as f32 * (1.0 / 16_777_216.0)
}

struct Uniform {
    key: u64,
}

impl CustomOp1 for Uniform {
    fn name(&self) -> &'static str {
        "gradcomp-uniform"
    }

    fn cpu_fwd(&self, _s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let n = l.shape().elem_count();
        let v = (0..n as u64).map(|i| uniform_at(self.key, i)).collect();
        Ok((CpuStorage::F32(v), Shape::from(n)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
        let dev = s.device();
        let n = l.shape().elem_count();
        let out = dev.alloc_zeros::<f32>(n.max(1))?;
        if n > 0 {
            let func = dev.get_or_load_custom_func("codec_uniform_f32", MODULE, PTX)?;
            let mut b = func.builder();
            b.arg(&out);
            b.arg(&self.key);
            let n_u32 = n as u32;
            b.arg(&n_u32);
            // SAFETY: argument types and order match `codec_uniform_f32`; `out` holds n f32.
            unsafe { b.launch(LaunchConfig::for_num_elems(n_u32)) }
                .map_err(|e| launch_err("codec_uniform_f32", e))?;
        }
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(out, dev.clone()),
            Shape::from(n),
        ))
    }
}

/// `n` uniform numbers on [0, 1) of stream `key` ([`uniform_at`]), f32, on `like`'s device (only
/// `like`'s device is used; `n` may differ from its size).
///
/// # Errors
/// Device errors; `n` ≥ 2³².
pub fn uniform(like: &Tensor, key: u64, n: usize) -> Result<Tensor> {
    if n > u32::MAX as usize {
        bail!("uniform: {n} elements: at most 2^32 - 1");
    }
    // A zero-copy, shape-only carrier of the length (the op reads no input element).
    let carrier = Tensor::zeros(1, DType::U8, like.device())?.broadcast_as(n)?;
    Ok(carrier.apply_op1_no_bwd(&Uniform { key })?)
}

/// The `codec_delay` kernel (one thread spinning on the global timer), loaded into `stream`'s
/// context, for `gradcomp ddp --link-gbps` (an emulated slower link: the communication stream
/// waits after each collective).
///
/// # Errors
/// A driver error loading the module.
#[cfg(feature = "cuda")]
pub fn delay_function(
    stream: &std::sync::Arc<candle_core::cuda_backend::cudarc::driver::CudaStream>,
) -> Result<candle_core::cuda_backend::cudarc::driver::CudaFunction> {
    use candle_core::cuda_backend::cudarc::nvrtc::Ptx;
    let module = stream
        .context()
        .load_module(Ptx::from_src(PTX))
        .map_err(|e| anyhow::anyhow!("loading the codec kernels: {e:?}"))?;
    module
        .load_function("codec_delay")
        .map_err(|e| anyhow::anyhow!("codec_delay: {e:?}"))
}

/// Launches `f` ([`delay_function`]) on `stream` for `ns` nanoseconds.
///
/// # Errors
/// A launch error.
#[cfg(feature = "cuda")]
pub fn delay(
    stream: &std::sync::Arc<candle_core::cuda_backend::cudarc::driver::CudaStream>,
    f: &candle_core::cuda_backend::cudarc::driver::CudaFunction,
    ns: u64,
) -> Result<()> {
    use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
    let mut b = stream.launch_builder(f);
    b.arg(&ns);
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (1, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: `codec_delay` takes one u64 and touches no memory.
    unsafe { b.launch(cfg) }.map_err(|e| anyhow::anyhow!("codec_delay launch: {e:?}"))?;
    Ok(())
}

/// Bins of one radix pass's histogram (`codec_radix_hist`).
pub const RADIX_BINS: usize = 4096;

/// Top-k's radix passes over the bits of |x| (sign cleared), high to low: (shift, bins mask)
/// for bits 30–20, 19–8 and 7–0.
pub const RADIX_PASSES: [(u32, u32); 3] = [(20, 0xFFF), (8, 0xFFF), (0, 0xFF)];

/// Fault bit of [`RadixState::fault`]: the vector holds a NaN or an infinity.
pub const FAULT_NON_FINITE: u32 = 1;
/// Fault bit of [`RadixState::fault`]: no digit held the k-th element (k above the count).
pub const FAULT_NO_DIGIT: u32 = 2;

/// The radix select's progress, `codec.cu`'s `state` (four u32 on the device).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RadixState {
    /// Bits of the prefix fixed so far.
    pub mask: u32,
    /// The prefix; after the last pass, the bit pattern of the k-th largest |x|.
    pub prefix: u32,
    /// Elements strictly above the prefix's digits.
    pub above: u32,
    /// [`FAULT_NON_FINITE`] | [`FAULT_NO_DIGIT`].
    pub fault: u32,
}

/// |x|'s bit pattern (non-negative floats order as their bits).
fn abs_bits(x: f32) -> u32 {
    x.to_bits() & 0x7fff_ffff
}

/// CPU reference of `codec_radix_hist`: `RADIX_BINS` counts of digit `(|x| bits >> shift) &
/// bins_mask` among the elements whose `|x| bits & st.mask == st.prefix`.
pub fn radix_hist_cpu(x: &[f32], st: &RadixState, shift: u32, bins_mask: u32) -> Vec<u32> {
    let mut h = vec![0u32; RADIX_BINS];
    for &v in x {
        let b = abs_bits(v);
        if b & st.mask == st.prefix {
            h[((b >> shift) & bins_mask) as usize] += 1;
        }
    }
    h
}

/// CPU reference of `codec_radix_pick`, thread by thread: 1024 threads, thread `t` owning bins
/// `4095 − 4t … 4092 − 4t`, an inclusive scan of their sums; the one bin whose range of ranks
/// covers `k` extends the prefix. The first pass flags bins `0x7F8..=0x7FF` (NaN, infinity).
pub fn radix_pick_cpu(
    hist: &[u32],
    st: &mut RadixState,
    k: u32,
    shift: u32,
    bins_mask: u32,
    first: bool,
) {
    const THREADS: usize = 1024;
    let bin = |t: usize, j: usize| (RADIX_BINS - 1 - (4 * t + j)) as u32;
    let c: Vec<[u32; 4]> = (0..THREADS)
        .map(|t| {
            std::array::from_fn(|j| {
                if bin(t, j) <= bins_mask {
                    hist[bin(t, j) as usize]
                } else {
                    0
                }
            })
        })
        .collect();
    let sums: Vec<u32> = c.iter().map(|c| c.iter().sum()).collect();
    let mut incl = sums.clone();
    for t in 1..THREADS {
        incl[t] += incl[t - 1];
    }
    let (above0, mask0, prefix0) = (st.above, st.mask, st.prefix);
    let total = above0 + incl[THREADS - 1];
    for t in 0..THREADS {
        let mut before = above0 + incl[t] - sums[t];
        for (j, &cj) in c[t].iter().enumerate() {
            if before < k && before + cj >= k {
                st.mask = mask0 | (bins_mask << shift);
                st.prefix = prefix0 | (bin(t, j) << shift);
                st.above = before;
            }
            before += cj;
        }
    }
    if first && (0x7F8..=bins_mask.min(0x7FF)).any(|d| hist[d as usize] != 0) {
        st.fault |= FAULT_NON_FINITE;
    }
    if total < k {
        st.fault |= FAULT_NO_DIGIT;
    }
}

/// The k-th largest |x| by the three radix passes, on the host (the CPU path of Top-k's
/// selection and its reference): `f32::from_bits(prefix)` is the value, `above` the count of
/// elements strictly larger.
pub fn radix_select_cpu(x: &[f32], k: usize) -> RadixState {
    let mut st = RadixState::default();
    for (p, &(shift, bins)) in RADIX_PASSES.iter().enumerate() {
        let h = radix_hist_cpu(x, &st, shift, bins);
        radix_pick_cpu(&h, &mut st, k as u32, shift, bins, p == 0);
    }
    st
}

/// CPU reference of `codec_topk_flags`: 1 above the k-th largest |x| (bit pattern `kth`), 2
/// equal, 0 below.
fn topk_flags_cpu(x: &[f32], kth: u32) -> Vec<u8> {
    x.iter()
        .map(|&v| match abs_bits(v).cmp(&kth) {
            std::cmp::Ordering::Greater => 1,
            std::cmp::Ordering::Equal => 2,
            std::cmp::Ordering::Less => 0,
        })
        .collect()
}

struct TopKSelect {
    k: usize,
}

impl CustomOp1 for TopKSelect {
    fn name(&self) -> &'static str {
        "gradcomp-topk-select"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(v) = s else {
            candle_core::bail!("topk-select: expected f32")
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("topk-select: input must be contiguous")
        };
        let x = &v[a..b];
        let st = radix_select_cpu(x, self.k);
        let need = (self.k as u32).saturating_sub(st.above) as usize;
        let mut out = select_cpu(&topk_flags_cpu(x, st.prefix), self.k, need);
        if out.len() != self.k {
            candle_core::bail!("topk-select: {} selected, expected {}", out.len(), self.k)
        }
        out.push(st.fault);
        Ok((CpuStorage::U32(out), Shape::from(self.k + 1)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
        let dev = s.device();
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("topk-select: input must be contiguous")
        };
        let src = s.as_cuda_slice::<f32>()?.slice(a..b);
        let n = (b - a) as u32;
        let k = self.k as u32;
        let mut state = dev.alloc_zeros::<u32>(4)?;
        let out = dev.alloc_zeros::<u32>(self.k + 1)?;
        // Two blocks per SM of an H200 (132 SMs), at most one per 1024 elements.
        let hist_cfg = LaunchConfig {
            grid_dim: (n.div_ceil(1024).clamp(1, 264), 1, 1),
            block_dim: (1024, 1, 1),
            shared_mem_bytes: 0,
        };
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1024, 1, 1),
            shared_mem_bytes: 0,
        };
        let hist_f = dev.get_or_load_custom_func("codec_radix_hist", MODULE, PTX)?;
        let pick_f = dev.get_or_load_custom_func("codec_radix_pick", MODULE, PTX)?;
        for (p, &(shift, bins)) in RADIX_PASSES.iter().enumerate() {
            let mut h = dev.alloc_zeros::<u32>(RADIX_BINS)?;
            {
                let mut bld = hist_f.builder();
                bld.arg(&src);
                bld.arg(&n);
                bld.arg(&state);
                bld.arg(&shift);
                bld.arg(&bins);
                bld.arg(&mut h);
                // SAFETY: matches `codec_radix_hist`; `src` holds n f32, `state` 4 u32, `h`
                // RADIX_BINS zeroed u32.
                unsafe { bld.launch(hist_cfg) }.map_err(|e| launch_err("codec_radix_hist", e))?;
            }
            let first = u32::from(p == 0);
            let mut bld = pick_f.builder();
            bld.arg(&h);
            bld.arg(&mut state);
            bld.arg(&k);
            bld.arg(&shift);
            bld.arg(&bins);
            bld.arg(&first);
            // SAFETY: matches `codec_radix_pick`; one block of 1024 threads reads RADIX_BINS
            // bins and updates the 4-word state.
            unsafe { bld.launch(one) }.map_err(|e| launch_err("codec_radix_pick", e))?;
        }
        // SAFETY: `codec_topk_flags` writes every one of the n bytes before they are read.
        let mut flags = unsafe { dev.alloc::<u8>(n.max(1) as usize) }?;
        {
            let f = dev.get_or_load_custom_func("codec_topk_flags", MODULE, PTX)?;
            let mut bld = f.builder();
            bld.arg(&src);
            bld.arg(&n);
            bld.arg(&state);
            bld.arg(&mut flags);
            // SAFETY: matches `codec_topk_flags`; one thread per element of n.
            unsafe { bld.launch(LaunchConfig::for_num_elems(n.max(1))) }
                .map_err(|e| launch_err("codec_topk_flags", e))?;
        }
        let flags = flags.slice(0..n as usize);
        compact_on_device(dev, &flags, n, k, Need::Device(&state), &out)?;
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(out, dev.clone()),
            Shape::from(self.k + 1),
        ))
    }
}

/// The positions (u32 `[k]`, increasing) of the k largest `|x|` of f32 `x`, ties at the k-th
/// value broken by lowest index (exactly the first k of a stable sort by decreasing `|x|`), and
/// the selection's fault bits (u32 `[1]`: [`FAULT_NON_FINITE`] when `x` holds a NaN or an
/// infinity, whose positions then count as the largest), all computed on `x`'s device without a
/// host read: three radix passes over |x|'s bit patterns, each a histogram and a one-block
/// pick of the digit that holds the k-th largest, then the stable compaction of [`select`] with
/// its tie count read on the device.
///
/// # Errors
/// k outside 1..=n; `x` not f32 or longer than 2³² − 1; device errors.
pub fn top_k_select(x: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
    let n = x.elem_count();
    if k == 0 || k > n {
        bail!("top-k: k {k} of {n} elements: expected 1 <= k <= n");
    }
    if n > u32::MAX as usize - 1 {
        bail!("top-k: {n} elements: at most 2^32 - 2");
    }
    if x.dtype() != DType::F32 {
        bail!("top-k: {:?}: expected f32", x.dtype());
    }
    let x = x.flatten_all()?.contiguous()?;
    let out = x.apply_op1_no_bwd(&TopKSelect { k })?;
    Ok((out.narrow(0, 0, k)?, out.narrow(0, k, 1)?))
}

struct ScatterAdd {
    n: usize,
}

impl CustomOp2 for ScatterAdd {
    fn name(&self) -> &'static str {
        "gradcomp-scatter-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::U32(idx), CpuStorage::F32(val)) = (s1, s2) else {
            candle_core::bail!("scatter-add: expected u32 indices and f32 values")
        };
        let (ir, vr) = ranges2("scatter-add", l1, l2)?;
        let mut out = vec![0f32; self.n];
        for (&i, &v) in idx[ir].iter().zip(&val[vr]) {
            let Some(o) = out.get_mut(i as usize) else {
                candle_core::bail!("scatter-add: index {i} >= {}", self.n)
            };
            *o += v;
        }
        Ok((CpuStorage::F32(out), Shape::from(self.n)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
        let dev = s1.device();
        let (ir, vr) = ranges2("scatter-add", l1, l2)?;
        let idx = s1.as_cuda_slice::<u32>()?.slice(ir.clone());
        let val = s2.as_cuda_slice::<f32>()?.slice(vr);
        let out = dev.alloc_zeros::<f32>(self.n.max(1))?;
        let m = ir.len();
        if m > 0 {
            let func = dev.get_or_load_custom_func("codec_scatter_add_f32", MODULE, PTX)?;
            let mut b = func.builder();
            b.arg(&idx);
            b.arg(&val);
            b.arg(&out);
            let m_u32 = m as u32;
            b.arg(&m_u32);
            // SAFETY: argument types and order match `codec_scatter_add_f32`; every index is
            // < n (the callers' indices come from a selection over n elements).
            unsafe { b.launch(LaunchConfig::for_num_elems(m_u32)) }
                .map_err(|e| launch_err("codec_scatter_add_f32", e))?;
        }
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(out, dev.clone()),
            Shape::from(self.n),
        ))
    }
}

/// A length-`n` f32 vector, zero except `out[idx[j]] += val[j]` (`idx` u32 `[m]` with every
/// index `< n`, `val` f32 `[m]`).
///
/// # Errors
/// Lengths or dtypes differ; device errors (the CPU reference also rejects an index `≥ n`).
pub fn scatter_add(idx: &Tensor, val: &Tensor, n: usize) -> Result<Tensor> {
    if idx.dims1()? != val.dims1()? || idx.dtype() != DType::U32 || val.dtype() != DType::F32 {
        bail!(
            "scatter-add: indices {:?} {:?}, values {:?} {:?}: expected u32 and f32 of one length",
            idx.dims(),
            idx.dtype(),
            val.dims(),
            val.dtype()
        );
    }
    Ok(idx
        .contiguous()?
        .apply_op2_no_bwd(&val.contiguous()?, &ScatterAdd { n })?)
}

/// The element ranges of the two inputs of a two-input op, both contiguous, or an error naming
/// the op.
fn ranges2(
    op: &str,
    l1: &Layout,
    l2: &Layout,
) -> candle_core::Result<(std::ops::Range<usize>, std::ops::Range<usize>)> {
    match (l1.contiguous_offsets(), l2.contiguous_offsets()) {
        (Some((a0, a1)), Some((b0, b1))) => Ok((a0..a1, b0..b1)),
        _ => candle_core::bail!("{op}: inputs must be contiguous"),
    }
}

/// Threads per block of `codec_orthogonalize` (one block per matrix).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const ORTH_BLOCK: u32 = 1024;

/// CPU reference of `codec_orthogonalize` (PowerSGD's orthogonalization, one matrix per
/// `offs` window): matrix j's Pᵀ is `r` contiguous rows of `(offs[j+1] − offs[j]) / r` elements
/// of `p`. Row i is re-orthogonalized against the finished rows (one modified Gram–Schmidt
/// pass), normalized with its norm floored at `norm_floor` (a zero row stays zero), then removed
/// from every later row. The same passes as the kernel; only the dot products' summation order
/// differs (sequential here, strided partial sums and a tree on the device).
///
/// # Panics
/// Never for windows [`check_offsets`] accepts.
pub fn orthogonalize_cpu(p: &[f32], offs: &[u32], r: usize, norm_floor: f32) -> Vec<f32> {
    let mut out = p.to_vec();
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for w in offs.windows(2) {
        let (lo, hi) = (w[0] as usize, w[1] as usize);
        let len = (hi - lo) / r;
        let mat = &mut out[lo..hi];
        for i in 0..r {
            for k in 0..i {
                let (done, rest) = mat.split_at_mut(i * len);
                let (u, v) = (&done[k * len..(k + 1) * len], &mut rest[..len]);
                let s = dot(v, u);
                v.iter_mut().zip(u).for_each(|(x, y)| *x -= s * y);
            }
            let (head, tail) = mat.split_at_mut((i + 1) * len);
            let v = &mut head[i * len..];
            let inv = 1.0 / dot(v, v).sqrt().max(norm_floor);
            v.iter_mut().for_each(|x| *x *= inv);
            for w in tail.chunks_exact_mut(len) {
                let c = dot(w, v);
                w.iter_mut().zip(v.iter()).for_each(|(x, y)| *x -= c * y);
            }
        }
    }
    out
}

/// Checks the windows of [`orthogonalize`]: `offs[0] = 0`, non-decreasing, each window a
/// multiple of `r ≥ 1` elements, the last ending at `n ≤ 2³² − 1`.
///
/// # Errors
/// The first violated condition.
pub fn check_offsets(offs: &[u32], r: usize, n: usize) -> Result<()> {
    if r == 0 || offs.len() < 2 || offs[0] != 0 || *offs.last().expect("len >= 2") as usize != n {
        bail!("orthogonalize: windows {offs:?} at rank {r} must start at 0 and end at {n}");
    }
    for w in offs.windows(2) {
        if w[1] < w[0] || (w[1] - w[0]) as usize % r != 0 {
            bail!(
                "orthogonalize: window {}..{} is not a multiple of rank {r}",
                w[0],
                w[1]
            );
        }
    }
    Ok(())
}

struct Orthogonalize {
    r: usize,
    norm_floor: f32,
}

impl CustomOp2 for Orthogonalize {
    fn name(&self) -> &'static str {
        "gradcomp-orthogonalize"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(p), CpuStorage::U32(offs)) = (s1, s2) else {
            candle_core::bail!("orthogonalize: expected f32 rows and u32 windows")
        };
        let (pr, or) = ranges2("orthogonalize", l1, l2)?;
        let out = orthogonalize_cpu(&p[pr.clone()], &offs[or], self.r, self.norm_floor);
        Ok((CpuStorage::F32(out), Shape::from(pr.len())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
        let dev = s1.device();
        let (pr, or) = ranges2("orthogonalize", l1, l2)?;
        let p = s1.as_cuda_slice::<f32>()?.slice(pr.clone());
        let offs = s2.as_cuda_slice::<u32>()?.slice(or.clone());
        let n = pr.len();
        let mats = or.len().saturating_sub(1) as u32;
        // SAFETY: the kernel writes every element: the windows cover 0..n (`check_offsets`).
        let out = unsafe { dev.alloc::<f32>(n.max(1))? };
        if mats > 0 && n > 0 {
            let func = dev.get_or_load_custom_func("codec_orthogonalize", MODULE, PTX)?;
            let mut b = func.builder();
            b.arg(&p);
            b.arg(&out);
            b.arg(&offs);
            let r_u32 = self.r as u32;
            b.arg(&r_u32);
            b.arg(&self.norm_floor);
            let cfg = LaunchConfig {
                grid_dim: (mats, 1, 1),
                block_dim: (ORTH_BLOCK, 1, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: argument types and order match `codec_orthogonalize`; the windows lie in
            // 0..n and are multiples of r (`check_offsets`, run by `orthogonalize`).
            unsafe { b.launch(cfg) }.map_err(|e| launch_err("codec_orthogonalize", e))?;
        }
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(out, dev.clone()),
            Shape::from(n),
        ))
    }
}

/// PowerSGD's orthogonalization of every matrix of a bucket in one launch: `p` f32 `[n]` holds
/// each matrix's Pᵀ (`r` contiguous rows) in the windows `offs` (u32, `offs_host` on the host:
/// the same values, checked here without a device read). See [`orthogonalize_cpu`].
///
/// # Errors
/// Bad windows ([`check_offsets`]), dtypes; device errors.
pub fn orthogonalize(
    p: &Tensor,
    offs: &Tensor,
    offs_host: &[u32],
    r: usize,
    norm_floor: f32,
) -> Result<Tensor> {
    check_offsets(offs_host, r, p.elem_count())?;
    if p.dtype() != DType::F32 || offs.dtype() != DType::U32 || offs.elem_count() != offs_host.len()
    {
        bail!(
            "orthogonalize: rows {:?} and windows {:?} {:?}: expected f32 and u32 of {} entries",
            p.dtype(),
            offs.dtype(),
            offs.dims(),
            offs_host.len()
        );
    }
    Ok(p.flatten_all()?
        .contiguous()?
        .apply_op2_no_bwd(&offs.contiguous()?, &Orthogonalize { r, norm_floor })?)
}

struct Select {
    k: usize,
    need: usize,
}

/// CPU reference of [`select`] over the flags.
fn select_cpu(flags: &[u8], k: usize, need: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(k);
    let mut ties = 0;
    for (i, &f) in flags.iter().enumerate() {
        if f == 1 || (f == 2 && ties < need) {
            out.push(i as u32);
        }
        if f == 2 {
            ties += 1;
        }
    }
    out
}

impl CustomOp1 for Select {
    fn name(&self) -> &'static str {
        "gradcomp-select"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::U8(f) = s else {
            candle_core::bail!("select: expected u8 flags")
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("select: flags must be contiguous")
        };
        let out = select_cpu(&f[a..b], self.k, self.need);
        if out.len() != self.k {
            candle_core::bail!("select: {} flagged, expected {}", out.len(), self.k)
        }
        Ok((CpuStorage::U32(out), Shape::from(self.k)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        let dev = s.device();
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("select: flags must be contiguous")
        };
        let flags = s.as_cuda_slice::<u8>()?.slice(a..b);
        let out = dev.alloc_zeros::<u32>(self.k.max(1))?;
        compact_on_device(
            dev,
            &flags,
            (b - a) as u32,
            self.k as u32,
            Need::Host(self.need as u32),
            &out,
        )?;
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(out, dev.clone()),
            Shape::from(self.k),
        ))
    }
}

/// Where the selection's tie count comes from.
#[cfg(feature = "cuda")]
enum Need<'a> {
    /// Known on the host.
    Host(u32),
    /// `k − state[2]` of a radix select's device state (`codec_topk_compact`, which also
    /// copies the fault bits `state[3]` to `out[k]`).
    Device(&'a candle_core::cuda_backend::cudarc::driver::CudaSlice<u32>),
}

/// The selection's three kernels on `dev`'s stream (count, scan, compact): the flagged positions
/// of `flags` (`n` bytes) into `out` (≥ k u32, k + 1 with [`Need::Device`]).
#[cfg(feature = "cuda")]
fn compact_on_device(
    dev: &candle_core::CudaDevice,
    flags: &candle_core::cuda_backend::cudarc::driver::CudaView<'_, u8>,
    n: u32,
    k: u32,
    need: Need<'_>,
    out: &candle_core::cuda_backend::cudarc::driver::CudaSlice<u32>,
) -> candle_core::Result<()> {
    use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
    let nb = (n as usize).div_ceil(SEL_BLOCK).max(1);
    let mut cnt_sel = dev.alloc_zeros::<u32>(nb)?;
    let mut cnt_tie = dev.alloc_zeros::<u32>(nb)?;
    let nb_u32 = nb as u32;
    let blocks = LaunchConfig {
        grid_dim: (nb_u32, 1, 1),
        block_dim: (SEL_BLOCK as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    let one = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (SEL_BLOCK as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    {
        let count = dev.get_or_load_custom_func("codec_sel_count", MODULE, PTX)?;
        let mut bld = count.builder();
        bld.arg(flags);
        bld.arg(&n);
        bld.arg(&mut cnt_sel);
        bld.arg(&mut cnt_tie);
        // SAFETY: matches `codec_sel_count`; nb blocks of 1024 cover n, each writes its entry.
        unsafe { bld.launch(blocks) }.map_err(|e| launch_err("codec_sel_count", e))?;
    }
    {
        let scan = dev.get_or_load_custom_func("codec_sel_scan", MODULE, PTX)?;
        let mut bld = scan.builder();
        bld.arg(&mut cnt_sel);
        bld.arg(&mut cnt_tie);
        bld.arg(&nb_u32);
        // SAFETY: matches `codec_sel_scan`; one block of 1024 threads scans nb entries in place.
        unsafe { bld.launch(one) }.map_err(|e| launch_err("codec_sel_scan", e))?;
    }
    match need {
        Need::Host(need) => {
            let compact = dev.get_or_load_custom_func("codec_sel_compact", MODULE, PTX)?;
            let mut bld = compact.builder();
            bld.arg(flags);
            bld.arg(&n);
            bld.arg(&cnt_sel);
            bld.arg(&cnt_tie);
            bld.arg(&need);
            bld.arg(&k);
            bld.arg(out);
            // SAFETY: matches `codec_sel_compact`; writes land below k (the kernel drops others).
            unsafe { bld.launch(blocks) }.map_err(|e| launch_err("codec_sel_compact", e))?;
        }
        Need::Device(state) => {
            let compact = dev.get_or_load_custom_func("codec_topk_compact", MODULE, PTX)?;
            let mut bld = compact.builder();
            bld.arg(flags);
            bld.arg(&n);
            bld.arg(&cnt_sel);
            bld.arg(&cnt_tie);
            bld.arg(state);
            bld.arg(&k);
            bld.arg(out);
            // SAFETY: matches `codec_topk_compact`; `state` holds 4 u32, `out` k + 1; index
            // writes land below k (the kernel drops others), the fault word at k.
            unsafe { bld.launch(blocks) }.map_err(|e| launch_err("codec_topk_compact", e))?;
        }
    }
    Ok(())
}

/// The positions `i` (u32, increasing) with `flags[i] == 1`, plus the first `need` positions
/// with `flags[i] == 2`; `flags` is u8 `[n]` and must flag exactly `k − need` ones and at least
/// `need` twos (the caller counted them).
///
/// # Errors
/// Dtype or shape; device errors; on the CPU, a count that does not come to `k`.
pub fn select(flags: &Tensor, k: usize, need: usize) -> Result<Tensor> {
    if flags.dtype() != DType::U8 || flags.rank() != 1 {
        bail!(
            "select: flags {:?} {:?}: expected u8 [n]",
            flags.dims(),
            flags.dtype()
        );
    }
    if flags.dims1()? > u32::MAX as usize {
        bail!("select: {} elements: at most 2^32 - 1", flags.dims1()?);
    }
    Ok(flags.contiguous()?.apply_op1_no_bwd(&Select { k, need })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn uniform_is_seeded_in_range_and_uniform() {
        let dev = Device::Cpu;
        let like = Tensor::zeros(1, DType::F32, &dev).unwrap();
        let a = uniform(&like, key(7, 0, 0), 20_000)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = uniform(&like, key(7, 0, 0), 20_000)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let c = uniform(&like, key(7, 0, 1), 20_000)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|&u| (0.0..1.0).contains(&u)));
        // Mean 1/2 with standard error (1/√12)/√n ≈ 0.002: 5σ = 0.0102.
        let mean = a.iter().map(|&u| u as f64).sum::<f64>() / a.len() as f64;
        assert!((mean - 0.5).abs() < 0.0102, "{mean}");
        // Each decile holds 10% ± 5σ (σ = √(0.09/n) ≈ 0.0021).
        for d in 0..10 {
            let lo = d as f32 / 10.0;
            let f = a.iter().filter(|&&u| u >= lo && u < lo + 0.1).count() as f64 / 2e4;
            assert!((f - 0.1).abs() < 0.0106, "decile {d}: {f}");
        }
    }

    #[test]
    fn scatter_add_sums_collisions_and_rejects_bad_input() {
        let dev = Device::Cpu;
        let idx = Tensor::new(&[3u32, 0, 3, 5], &dev).unwrap();
        let val = Tensor::new(&[1f32, 2., 4., 8.], &dev).unwrap();
        let out = scatter_add(&idx, &val, 6)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(out, vec![2., 0., 0., 5., 0., 8.]);
        let short = Tensor::new(&[1f32], &dev).unwrap();
        assert!(scatter_add(&idx, &short, 6).is_err());
        assert!(scatter_add(&idx, &val, 4).is_err());
    }

    /// `codec.cu`'s three selection kernels step by step on the host (blocks of 1024 threads,
    /// warps of 32, the scan's per-thread segments and Hillis–Steele rounds), so the kernels'
    /// indexing is tested where there is no GPU.
    fn select_like_the_kernels(flags: &[u8], need: usize) -> Vec<u32> {
        let n = flags.len();
        let nb = n.div_ceil(SEL_BLOCK).max(1);
        let flag = |i: usize| if i < n { flags[i] } else { 0 };
        // codec_sel_count
        let mut a: Vec<u32> = (0..nb)
            .map(|b| (0..1024).filter(|t| flag(b * 1024 + t) == 1).count() as u32)
            .collect();
        let mut b: Vec<u32> = (0..nb)
            .map(|bl| (0..1024).filter(|t| flag(bl * 1024 + t) == 2).count() as u32)
            .collect();
        // codec_sel_scan
        let per = nb.div_ceil(1024);
        let seg = |t: usize| (t * per, (t * per + per).min(nb));
        let ta: Vec<u32> = (0..1024)
            .map(|t| {
                let (lo, hi) = seg(t);
                (lo..hi).map(|j| a[j]).sum()
            })
            .collect();
        let tb: Vec<u32> = (0..1024)
            .map(|t| {
                let (lo, hi) = seg(t);
                (lo..hi).map(|j| b[j]).sum()
            })
            .collect();
        let (mut sa, mut sb) = (ta.clone(), tb.clone());
        let mut off = 1;
        while off < 1024 {
            let (xa, xb) = (sa.clone(), sb.clone());
            for t in off..1024 {
                sa[t] += xa[t - off];
                sb[t] += xb[t - off];
            }
            off <<= 1;
        }
        for t in 0..1024 {
            let (mut ra, mut rb) = (sa[t] - ta[t], sb[t] - tb[t]);
            let (lo, hi) = seg(t);
            for j in lo..hi.max(lo) {
                let (x, y) = (a[j], b[j]);
                a[j] = ra;
                b[j] = rb;
                ra += x;
                rb += y;
            }
        }
        // codec_sel_compact
        let k = flags.iter().filter(|&&f| f == 1).count() + need;
        let mut out = vec![u32::MAX; k];
        for bl in 0..nb {
            let v: Vec<u8> = (0..1024).map(|t| flag(bl * 1024 + t)).collect();
            let (mut ws, mut wt) = ([0u32; 32], [0u32; 32]);
            let (mut ca, mut cb) = (0, 0);
            for w in 0..32 {
                ws[w] = ca;
                wt[w] = cb;
                ca += v[w * 32..w * 32 + 32].iter().filter(|&&f| f == 1).count() as u32;
                cb += v[w * 32..w * 32 + 32].iter().filter(|&&f| f == 2).count() as u32;
            }
            for t in 0..1024 {
                let (w, lane) = (t / 32, t % 32);
                let ps = v[w * 32..w * 32 + lane].iter().filter(|&&f| f == 1).count() as u32;
                let pt = v[w * 32..w * 32 + lane].iter().filter(|&&f| f == 2).count() as u32;
                let s = (a[bl] + ws[w] + ps) as usize;
                let tt = (b[bl] + wt[w] + pt) as usize;
                let i = (bl * 1024 + t) as u32;
                if v[t] == 1 {
                    out[s + tt.min(need)] = i;
                } else if v[t] == 2 && tt < need {
                    out[s + tt] = i;
                }
            }
        }
        out
    }

    #[test]
    fn the_kernels_selection_steps_equal_the_reference() {
        // Block counts below, at and above the scan's 1024 threads (segments of 1 and 2).
        for (n, seed) in [(5usize, 1u64), (1024, 2), (5000, 3), (1024 * 1024 + 1, 4)] {
            let flags: Vec<u8> = (0..n as u64)
                .map(|i| match mix64(i ^ (seed << 40)) % 100 {
                    0..=2 => 1,
                    3..=9 => 2,
                    _ => 0,
                })
                .collect();
            let ties = flags.iter().filter(|&&f| f == 2).count();
            for need in [0, ties / 3, ties] {
                let want = select_cpu(
                    &flags,
                    flags.iter().filter(|&&f| f == 1).count() + need,
                    need,
                );
                assert_eq!(
                    select_like_the_kernels(&flags, need),
                    want,
                    "n {n} need {need}"
                );
            }
        }
    }

    #[test]
    fn select_takes_flagged_then_first_ties_in_order() {
        let dev = Device::Cpu;
        let f = Tensor::new(&[0u8, 2, 1, 2, 0, 2, 1], &dev).unwrap();
        let got = select(&f, 4, 2).unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(got, vec![1, 2, 3, 6]);
        let got = select(&f, 2, 0).unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(got, vec![2, 6]);
        assert!(select(&f, 5, 2).is_err());
        // Across several 1024-element blocks (the GPU kernels' unit).
        let n = 3 * SEL_BLOCK + 17;
        let flags: Vec<u8> = (0..n).map(|i| [0u8, 1, 2, 0, 2][i % 5]).collect();
        let ones = flags.iter().filter(|&&x| x == 1).count();
        let got = select_cpu(&flags, ones + 100, 100);
        assert_eq!(got.len(), ones + 100);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(flags[*got.last().unwrap() as usize], 1);
    }
}
