//! PowerSGD's three stages as fused, memory-bound kernels (`codec.cu`: `codec_psgd_p_R`,
//! `codec_psgd_q_R`, `codec_psgd_decode_R`, R the register width, a power of two ≥ r), each one
//! launch per bucket, with CPU references that compute the same results.
//!
//! Why not cuBLAS: P = M·Q and Q = Mᵀ·P are skinny GEMMs (one side r ≤ 32 wide). cuBLAS picks a
//! kernel per shape and rank whose time follows no bytes-and-FLOPs model (runs 48–71: rank 8's P
//! on a 128 × 512 matrix 55 µs where ranks 4 and 32 took 9–10 µs, on every host), and the candle
//! composition launched about three kernels per matrix. Here every stage reads each element of
//! the bucket's matrices once (4 bytes) and does r fused multiply-adds per element on the CUDA
//! cores, so its time is launches + bytes / bandwidth + FLOPs / rate, the cost model's terms.
//!
//! - stage `p` (one warp per row and chunk of [`CHUNK_COLS`] columns of every matrix):
//!   `mef = M + E` (E the error feedback, absent in the first round),
//!   `Pᵀ[i][row] = Σ_k mef[row][k]·Qᵀ[i][k]`, the chunks' partial sums added atomically into a
//!   zeroed P (one launch zeroes it); the uncompressed runs of the bucket are gathered into
//!   `rest` in the same launch. (Run 73's first version used one warp per row: matrices of few,
//!   long rows were latency-bound, up to 5× their bytes-and-FLOPs time.)
//! - stage `q` (after [`super::kernels::orthogonalize`]): `Qᵀ[i][k] = Σ_row Pᵀ[i][row]·mef[row][k]`
//!   over chunks of [`Q_ROWS`] rows × 64 columns, one `atomicAdd` per (i, column, chunk) into a
//!   zeroed Q: the order of the chunks' additions is not fixed on the device (a few ulps of Q
//!   between runs; the CPU reference adds the chunks in order).
//! - stage `decode` (one warp per row and column chunk): `M̂ = P·(Q/world)ᵀ` into the flat output, `E = mef − M̂`,
//!   the uncompressed runs `rest_sum / world` into the output, and the next round's
//!   `Qᵀ = q_sum / world`, in one launch.
//!
//! A launch covers at most [`TABLE_MAX`] matrices and [`TABLE_MAX`] uncompressed runs (its
//! [`Table`] is a kernel argument, 2.8 KB); larger buckets take one launch per 64.

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};

use super::host;
use super::powersgd::powersgd_compresses;

use perfcast::gradcomp::compressor::powersgd as model;

/// Largest rank the fused kernels take (one register accumulator per rank column).
pub const MAX_RANK: usize = 32;
/// Matrices and uncompressed runs per launch (`PSGD_MAX` in `codec.cu`; the cost model's
/// [`model::FUSED_TABLE`], which counts the launches).
pub const TABLE_MAX: usize = model::FUSED_TABLE as usize;
/// Rows per work unit of stage `q` (`PSGD_QROWS_MAX`; the model's [`model::Q_TILE`]).
pub const Q_ROWS: u32 = model::Q_TILE as u32;
/// Columns per work unit of stage `q` (`PSGD_QCOLS`; the model's [`model::Q_TILE`]).
pub const Q_COLS: u32 = model::Q_TILE as u32;
/// Columns per warp unit of stages `p` and `decode` (`PSGD_CW`; the model's
/// [`model::CHUNK_COLS`]): a row is split into `⌈c/256⌉` warps, whose partial sums of P meet by
/// `atomicAdd`.
pub const CHUNK_COLS: u32 = model::CHUNK_COLS as u32;

/// One launch's description of a bucket, `codec.cu`'s `PsgdTable` (offsets in f32 elements).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table {
    /// Matrices in this table.
    pub mats: u32,
    /// Uncompressed runs in this table.
    pub segs: u32,
    /// Rank.
    pub r: u32,
    /// Rows per stage-`q` chunk ([`Q_ROWS`]).
    pub q_rows: u32,
    /// Cumulative warp units of this table's matrices (stages `p` and `decode`: one warp per row
    /// and chunk of [`CHUNK_COLS`] columns).
    pub warp0: [u32; TABLE_MAX + 1],
    /// Cumulative stage-`q` work units (row chunks × column tiles).
    pub unit0: [u32; TABLE_MAX + 1],
    /// Rows per matrix.
    pub m: [u32; TABLE_MAX],
    /// Columns per matrix.
    pub c: [u32; TABLE_MAX],
    /// Offset in the flat gradient and the decoded output.
    pub goff: [u32; TABLE_MAX],
    /// Offset in the packed matrices (`mef`, E).
    pub eoff: [u32; TABLE_MAX],
    /// Offset of the matrix's Pᵀ (r × m) in the concatenated P.
    pub poff: [u32; TABLE_MAX],
    /// Offset of the matrix's Qᵀ (r × c) in the concatenated Q.
    pub qoff: [u32; TABLE_MAX],
    /// Uncompressed run: offset in the flat gradient.
    pub seg_dst: [u32; TABLE_MAX],
    /// Uncompressed run: offset in the gathered `rest`.
    pub seg_src: [u32; TABLE_MAX],
    /// Uncompressed run: elements.
    pub seg_len: [u32; TABLE_MAX],
}

#[cfg(feature = "cuda")]
// SAFETY: `Table` is `#[repr(C)]` of u32 fields and arrays only, the layout of `PsgdTable`.
unsafe impl candle_core::cuda_backend::cudarc::driver::DeviceRepr for Table {}

impl Table {
    /// Warp units of stages `p` and `decode`.
    pub fn warps(&self) -> usize {
        self.warp0[self.mats as usize] as usize
    }

    /// Uncompressed elements of this table's runs.
    pub fn rest_elems(&self) -> usize {
        self.seg_len[..self.segs as usize]
            .iter()
            .map(|&x| x as usize)
            .sum()
    }

    /// Elements of this table's matrices' Qᵀ.
    pub fn q_elems(&self) -> usize {
        self.c[..self.mats as usize]
            .iter()
            .map(|&c| (self.r * c) as usize)
            .sum()
    }
}

/// A compressed matrix of the bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mat {
    /// Its index among the bucket's shapes (compressed or not).
    pub index: usize,
    /// Rows.
    pub m: usize,
    /// Columns.
    pub c: usize,
    /// Offset (elements) in the flat gradient.
    pub goff: usize,
    /// Offset in the packed matrices.
    pub eoff: usize,
    /// Offset of its Pᵀ in the concatenated P.
    pub poff: usize,
    /// Offset of its Qᵀ in the concatenated Q.
    pub qoff: usize,
}

/// A maximal run of uncompressed elements (matrices PowerSGD does not compress, vector parts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seg {
    /// Offset in the flat gradient.
    pub dst: usize,
    /// Offset in the gathered `rest`.
    pub src: usize,
    /// Elements.
    pub len: usize,
}

/// Where every piece of a bucket lies, at rank r.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Rank.
    pub r: usize,
    /// Flat gradient elements.
    pub n: usize,
    /// Compressed matrices in flat order.
    pub mats: Vec<Mat>,
    /// Uncompressed runs in flat order.
    pub segs: Vec<Seg>,
    /// Σ m·c over the compressed matrices.
    pub elems: usize,
    /// Σ r·m (P's elements).
    pub p_elems: usize,
    /// Σ r·c (Q's elements).
    pub q_elems: usize,
    /// Uncompressed elements.
    pub rest_elems: usize,
    /// The windows of P per matrix ([`Plan::windows`]), derived once.
    windows: Vec<u32>,
    /// One [`Table`] per launch ([`Plan::tables`]), derived once: every round's three stages
    /// read them.
    tables: Vec<Table>,
}

impl Plan {
    /// The plan of a flat gradient of `n` elements whose leading elements are the `shapes`
    /// (row-major, in order), the rest a vector tail.
    ///
    /// # Errors
    /// Rank 0 or above [`MAX_RANK`]; the shapes hold more than `n` elements; a buffer of 2³² or
    /// more elements.
    pub fn new(shapes: &[(usize, usize)], n: usize, r: usize) -> Result<Plan> {
        if r == 0 || r > MAX_RANK {
            bail!("powersgd: rank {r}: the fused kernels take 1..={MAX_RANK}");
        }
        let packed: usize = shapes.iter().map(|&(m, c)| m * c).sum();
        if packed > n {
            bail!("powersgd: matrices {shapes:?} hold {packed} elements, the gradient {n}");
        }
        if n > u32::MAX as usize || r * n > u32::MAX as usize {
            bail!(
                "powersgd: a bucket of {n} elements at rank {r}: buffers of 2^32 or more elements"
            );
        }
        let mut p = Plan {
            r,
            n,
            mats: Vec::new(),
            segs: Vec::new(),
            elems: 0,
            p_elems: 0,
            q_elems: 0,
            rest_elems: 0,
            windows: Vec::new(),
            tables: Vec::new(),
        };
        let mut off = 0;
        let add_rest = |p: &mut Plan, dst: usize, len: usize| {
            if len == 0 {
                return;
            }
            match p.segs.last_mut() {
                Some(s) if s.dst + s.len == dst => s.len += len,
                _ => p.segs.push(Seg {
                    dst,
                    src: p.rest_elems,
                    len,
                }),
            }
            p.rest_elems += len;
        };
        for (index, &(m, c)) in shapes.iter().enumerate() {
            if powersgd_compresses(r as u64, m as u64, c as u64) {
                p.mats.push(Mat {
                    index,
                    m,
                    c,
                    goff: off,
                    eoff: p.elems,
                    poff: p.p_elems,
                    qoff: p.q_elems,
                });
                p.elems += m * c;
                p.p_elems += r * m;
                p.q_elems += r * c;
            } else {
                add_rest(&mut p, off, m * c);
            }
            off += m * c;
        }
        add_rest(&mut p, off, n - off);
        p.windows = std::iter::once(0)
            .chain(p.mats.iter().map(|x| (x.poff + r * x.m) as u32))
            .collect();
        p.tables = p.build_tables();
        Ok(p)
    }

    /// Launches per fused stage: `max(⌈mats/64⌉, ⌈runs/64⌉, 1)`.
    pub fn launches(&self) -> usize {
        self.mats
            .len()
            .div_ceil(TABLE_MAX)
            .max(self.segs.len().div_ceil(TABLE_MAX))
            .max(1)
    }

    /// The windows of P per matrix (`0, r·m₀, r·(m₀ + m₁), …`), what the orthogonalization takes.
    pub fn windows(&self) -> &[u32] {
        &self.windows
    }

    /// One [`Table`] per launch.
    pub fn tables(&self) -> &[Table] {
        &self.tables
    }

    fn build_tables(&self) -> Vec<Table> {
        (0..self.launches())
            .map(|t| {
                let lo = t * TABLE_MAX;
                let mats = self.mats.iter().skip(lo).take(TABLE_MAX);
                let segs = self.segs.iter().skip(lo).take(TABLE_MAX);
                let mut tb = Table {
                    mats: mats.len() as u32,
                    segs: segs.len() as u32,
                    r: self.r as u32,
                    q_rows: Q_ROWS,
                    warp0: [0; TABLE_MAX + 1],
                    unit0: [0; TABLE_MAX + 1],
                    m: [0; TABLE_MAX],
                    c: [0; TABLE_MAX],
                    goff: [0; TABLE_MAX],
                    eoff: [0; TABLE_MAX],
                    poff: [0; TABLE_MAX],
                    qoff: [0; TABLE_MAX],
                    seg_dst: [0; TABLE_MAX],
                    seg_src: [0; TABLE_MAX],
                    seg_len: [0; TABLE_MAX],
                };
                for (j, x) in mats.enumerate() {
                    let units = (x.m as u32).div_ceil(Q_ROWS) * (x.c as u32).div_ceil(Q_COLS);
                    tb.warp0[j + 1] = tb.warp0[j] + x.m as u32 * (x.c as u32).div_ceil(CHUNK_COLS);
                    tb.unit0[j + 1] = tb.unit0[j] + units;
                    tb.m[j] = x.m as u32;
                    tb.c[j] = x.c as u32;
                    tb.goff[j] = x.goff as u32;
                    tb.eoff[j] = x.eoff as u32;
                    tb.poff[j] = x.poff as u32;
                    tb.qoff[j] = x.qoff as u32;
                }
                for (s, x) in segs.enumerate() {
                    tb.seg_dst[s] = x.dst as u32;
                    tb.seg_src[s] = x.src as u32;
                    tb.seg_len[s] = x.len as u32;
                }
                tb
            })
            .collect()
    }
}

/// Stage `p`'s results: the packed `M + E`, the concatenated Pᵀ, the gathered uncompressed
/// elements (each `None` when empty).
pub struct StageP {
    /// Packed `M + E`.
    pub mef: Option<Tensor>,
    /// Concatenated Pᵀ.
    pub p: Option<Tensor>,
    /// Gathered uncompressed elements.
    pub rest: Option<Tensor>,
}

/// Stage `decode`'s results: the decoded flat gradient `[n]`, the new error feedback, the next
/// round's concatenated Qᵀ (`None` when no matrix is compressed).
pub struct StageDecode {
    /// Decoded flat gradient.
    pub out: Tensor,
    /// New packed error feedback.
    pub ef: Option<Tensor>,
    /// Next round's concatenated Qᵀ.
    pub qt: Option<Tensor>,
}

/// CPU reference of stage `p` (sums in index order).
pub fn p_cpu(
    plan: &Plan,
    g: &[f32],
    ef: Option<&[f32]>,
    qt: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let r = plan.r;
    let mut mef = vec![0f32; plan.elems];
    let mut p = vec![0f32; plan.p_elems];
    for x in &plan.mats {
        for row in 0..x.m {
            for k in 0..x.c {
                let e = ef.map_or(0.0, |e| e[x.eoff + row * x.c + k]);
                mef[x.eoff + row * x.c + k] = g[x.goff + row * x.c + k] + e;
            }
            for i in 0..r {
                let q = &qt[x.qoff + i * x.c..x.qoff + (i + 1) * x.c];
                let mr = &mef[x.eoff + row * x.c..x.eoff + (row + 1) * x.c];
                p[x.poff + i * x.m + row] = mr.iter().zip(q).map(|(a, b)| a * b).sum();
            }
        }
    }
    let mut rest = vec![0f32; plan.rest_elems];
    for s in &plan.segs {
        rest[s.src..s.src + s.len].copy_from_slice(&g[s.dst..s.dst + s.len]);
    }
    (mef, p, rest)
}

/// CPU reference of stage `q`: per matrix `Qᵀ = Pᵀ·mef`, the rows summed in chunks of
/// [`Q_ROWS`] (each chunk in row order), the chunks added in order.
pub fn q_cpu(plan: &Plan, mef: &[f32], p: &[f32]) -> Vec<f32> {
    let r = plan.r;
    let mut q = vec![0f32; plan.q_elems];
    for x in &plan.mats {
        for i0 in (0..x.m).step_by(Q_ROWS as usize) {
            let rows = (Q_ROWS as usize).min(x.m - i0);
            for i in 0..r {
                for k in 0..x.c {
                    let s: f32 = (0..rows)
                        .map(|ii| p[x.poff + i * x.m + i0 + ii] * mef[x.eoff + (i0 + ii) * x.c + k])
                        .sum();
                    q[x.qoff + i * x.c + k] += s;
                }
            }
        }
    }
    q
}

/// CPU reference of stage `decode`: `(out, E, next Qᵀ)`.
pub fn decode_cpu(
    plan: &Plan,
    mef: &[f32],
    p: &[f32],
    q_sum: &[f32],
    rest_sum: &[f32],
    inv: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let r = plan.r;
    let mut out = vec![0f32; plan.n];
    let mut ef = vec![0f32; plan.elems];
    for x in &plan.mats {
        for row in 0..x.m {
            for k in 0..x.c {
                let mut h = 0f32;
                for i in 0..r {
                    h = p[x.poff + i * x.m + row].mul_add(q_sum[x.qoff + i * x.c + k] * inv, h);
                }
                out[x.goff + row * x.c + k] = h;
                ef[x.eoff + row * x.c + k] = mef[x.eoff + row * x.c + k] - h;
            }
        }
    }
    for s in &plan.segs {
        for e in 0..s.len {
            out[s.dst + e] = rest_sum[s.src + e] * inv;
        }
    }
    let qt = q_sum.iter().map(|x| x * inv).collect();
    (out, ef, qt)
}

fn some(v: Vec<f32>, dev: &Device) -> Result<Option<Tensor>> {
    Ok(if v.is_empty() {
        None
    } else {
        let n = v.len();
        Some(Tensor::from_vec(v, n, dev)?)
    })
}

/// Stage `p` on `g`'s device: `g` f32 `[n]`, `ef` the packed error feedback (`None`: zero),
/// `qt` the concatenated Qᵀ (`None` only when no matrix is compressed).
///
/// # Errors
/// Sizes that do not match the plan; device errors.
pub fn stage_p(
    plan: &Plan,
    g: &Tensor,
    ef: Option<&Tensor>,
    qt: Option<&Tensor>,
) -> Result<StageP> {
    check_len("gradient", g, plan.n)?;
    if let Some(e) = ef {
        check_len("error feedback", e, plan.elems)?;
    }
    let qt = match (qt, plan.mats.is_empty()) {
        (Some(q), _) => {
            check_len("Q", q, plan.q_elems)?;
            Some(q)
        }
        (None, true) => None,
        (None, false) => bail!("powersgd: stage p without Q"),
    };
    match g.device() {
        Device::Cpu => {
            let ef = ef.map(host).transpose()?;
            let qt = qt.map(host).transpose()?.unwrap_or_default();
            let (mef, p, rest) = p_cpu(plan, &host(g)?, ef.as_deref(), &qt);
            Ok(StageP {
                mef: some(mef, g.device())?,
                p: some(p, g.device())?,
                rest: some(rest, g.device())?,
            })
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => cuda::stage_p(plan, g, ef, qt),
        #[allow(unreachable_patterns)]
        d => bail!("powersgd: no kernels for device {d:?}"),
    }
}

/// Stage `q`: the concatenated Qᵀ from the packed `mef` and the orthogonalized Pᵀ.
///
/// # Errors
/// Sizes that do not match the plan; device errors.
pub fn stage_q(plan: &Plan, mef: &Tensor, p: &Tensor) -> Result<Tensor> {
    check_len("M + E", mef, plan.elems)?;
    check_len("P", p, plan.p_elems)?;
    match mef.device() {
        Device::Cpu => Ok(Tensor::from_vec(
            q_cpu(plan, &host(mef)?, &host(p)?),
            plan.q_elems,
            mef.device(),
        )?),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => cuda::stage_q(plan, mef, p),
        #[allow(unreachable_patterns)]
        d => bail!("powersgd: no kernels for device {d:?}"),
    }
}

/// Stage `decode` with `inv` = 1 / world. `mef`, `p`, `q_sum` are `None` exactly when no matrix
/// is compressed; `rest_sum` is `None` exactly when nothing is uncompressed.
///
/// # Errors
/// Sizes or presence that do not match the plan; device errors.
pub fn stage_decode(
    plan: &Plan,
    mef: Option<&Tensor>,
    p: Option<&Tensor>,
    q_sum: Option<&Tensor>,
    rest_sum: Option<&Tensor>,
    inv: f32,
    dev: &Device,
) -> Result<StageDecode> {
    let comp = match (mef, p, q_sum) {
        (Some(m), Some(p), Some(q)) if !plan.mats.is_empty() => {
            check_len("M + E", m, plan.elems)?;
            check_len("P", p, plan.p_elems)?;
            check_len("all-reduced Q", q, plan.q_elems)?;
            Some((m, p, q))
        }
        (None, None, None) if plan.mats.is_empty() => None,
        _ => bail!("powersgd: decode: stages out of step with the bucket's matrices"),
    };
    match (rest_sum, plan.rest_elems) {
        (Some(r), n) => check_len("all-reduced uncompressed part", r, n)?,
        (None, 0) => {}
        (None, n) => bail!("powersgd: decode: no all-reduced uncompressed part ({n} elements)"),
    }
    match dev {
        Device::Cpu => {
            let (m, p, q) = match comp {
                Some((m, p, q)) => (host(m)?, host(p)?, host(q)?),
                None => Default::default(),
            };
            let rest = rest_sum.map(host).transpose()?.unwrap_or_default();
            let (out, ef, qt) = decode_cpu(plan, &m, &p, &q, &rest, inv);
            Ok(StageDecode {
                out: Tensor::from_vec(out, plan.n, dev)?,
                ef: some(ef, dev)?,
                qt: some(qt, dev)?,
            })
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => cuda::stage_decode(plan, comp, rest_sum, inv, dev),
        #[allow(unreachable_patterns)]
        d => bail!("powersgd: no kernels for device {d:?}"),
    }
}

fn check_len(what: &str, t: &Tensor, n: usize) -> Result<()> {
    if t.elem_count() != n || t.dtype() != candle_core::DType::F32 {
        bail!(
            "powersgd: {what} is {:?} {:?}, expected f32 of {n} elements",
            t.dtype(),
            t.dims()
        );
    }
    Ok(())
}

#[cfg(feature = "cuda")]
mod cuda {
    //! The launches: inputs are read through their storage guards (held until the launch is
    //! queued on candle's stream), outputs are fresh allocations wrapped as tensors.
    use super::super::kernels::{launch_err, MODULE, PTX};
    use super::{Plan, StageDecode, StageP, Table};
    use anyhow::{anyhow, bail, Result};
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{
        CudaSlice, CudaView, LaunchConfig, PushKernelArg,
    };
    use candle_core::{CudaDevice, CudaStorage, Device, Storage, Tensor};

    const BLOCK: u32 = 256;
    /// Most blocks of a grid-stride part (uncompressed runs, next Q).
    const STRIDE_BLOCKS: usize = 2048;

    /// A launch of `x × y` blocks of [`BLOCK`] threads, no dynamic shared memory.
    fn grid(x: u32, y: u32) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (x, y, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// The kernel width for rank r: the smallest of 1, 2, 4, 8, 16, 32 that is ≥ r.
    fn width(r: usize) -> usize {
        r.next_power_of_two()
    }

    fn blocks(threads: usize) -> u32 {
        threads.div_ceil(BLOCK as usize).max(1) as u32
    }

    /// Blocks along x of a launch of `t`: enough for its warp units and for each grid-stride
    /// part of `strided` elements (at most [`STRIDE_BLOCKS`] each).
    fn grid_x(t: &Table, strided: &[usize]) -> u32 {
        strided.iter().fold(blocks(t.warps() * 32), |g, &n| {
            g.max(n.div_ceil(BLOCK as usize).min(STRIDE_BLOCKS) as u32)
        })
    }

    /// `s` as a tensor of `n` elements, `None` when `n` is 0 (a placeholder allocation).
    fn wrap_some(s: CudaSlice<f32>, n: usize, dev: &CudaDevice) -> Option<Tensor> {
        (n > 0).then(|| wrap(s, n, dev))
    }

    fn wrap(s: CudaSlice<f32>, n: usize, dev: &CudaDevice) -> Tensor {
        Tensor::from_storage(
            Storage::Cuda(CudaStorage::wrap_cuda_slice(s, dev.clone())),
            n,
            candle_core::op::BackpropOp::none(),
            false,
        )
    }

    /// Runs `f` with the contiguous f32 views of `ts` (their storage guards held meanwhile).
    fn with_views<R>(
        ts: &[&Tensor],
        f: impl FnOnce(&CudaDevice, &[CudaView<'_, f32>]) -> Result<R>,
    ) -> Result<R> {
        let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
        let mut views = Vec::with_capacity(ts.len());
        let mut dev = None;
        for (st, l) in &guards {
            let Storage::Cuda(cs) = &**st else {
                bail!("powersgd: a tensor is not on the CUDA device")
            };
            let Some((a, b)) = l.contiguous_offsets() else {
                bail!("powersgd: a tensor is not contiguous")
            };
            dev.get_or_insert_with(|| cs.device().clone());
            views.push(cs.as_cuda_slice::<f32>()?.slice(a..b));
        }
        let dev = dev.ok_or_else(|| anyhow!("powersgd: no tensor"))?;
        f(&dev, &views)
    }

    pub fn stage_p(
        plan: &Plan,
        g: &Tensor,
        ef: Option<&Tensor>,
        qt: Option<&Tensor>,
    ) -> Result<StageP> {
        let g = g.contiguous()?;
        let mut ins = vec![&g];
        ins.extend(ef);
        ins.extend(qt);
        let name = format!("codec_psgd_p_{}", width(plan.r));
        let (mef, p, rest, dev) = with_views(&ins, |dev, v| {
            // SAFETY: every element of mef and rest is written: the rows of every matrix and
            // every uncompressed run; P is zeroed and accumulated into.
            let mef = unsafe { dev.alloc::<f32>(plan.elems.max(1))? };
            let p = dev.alloc_zeros::<f32>(plan.p_elems.max(1))?;
            let rest = unsafe { dev.alloc::<f32>(plan.rest_elems.max(1))? };
            let func = dev.get_or_load_custom_func(&name, MODULE, PTX)?;
            let has_ef = ef.is_some() as u32;
            let ef_v = if ef.is_some() { &v[1] } else { &v[0] };
            // Q follows g and, when present, E.
            let qt_v = if qt.is_some() {
                &v[1 + has_ef as usize]
            } else {
                &v[0]
            };
            for t in plan.tables() {
                let cfg = grid(grid_x(t, &[t.rest_elems()]), if t.segs > 0 { 2 } else { 1 });
                let mut b = func.builder();
                b.arg(&v[0]);
                b.arg(ef_v);
                b.arg(&has_ef);
                b.arg(qt_v);
                b.arg(&mef);
                b.arg(&p);
                b.arg(&rest);
                b.arg(t);
                // SAFETY: argument types and order match `codec_psgd_p_R`; every offset of the
                // table lies within its buffer (`Plan::new`).
                unsafe { b.launch(cfg) }.map_err(|e| launch_err(&name, e))?;
            }
            Ok((mef, p, rest, dev.clone()))
        })?;
        Ok(StageP {
            mef: wrap_some(mef, plan.elems, &dev),
            p: wrap_some(p, plan.p_elems, &dev),
            rest: wrap_some(rest, plan.rest_elems, &dev),
        })
    }

    pub fn stage_q(plan: &Plan, mef: &Tensor, p: &Tensor) -> Result<Tensor> {
        let name = format!("codec_psgd_q_{}", width(plan.r));
        let (q, dev) = with_views(&[mef, p], |dev, v| {
            let q = dev.alloc_zeros::<f32>(plan.q_elems.max(1))?;
            let func = dev.get_or_load_custom_func(&name, MODULE, PTX)?;
            for t in plan.tables() {
                if t.mats == 0 {
                    continue;
                }
                let cfg = grid(t.unit0[t.mats as usize], 1);
                let mut b = func.builder();
                b.arg(&v[0]);
                b.arg(&v[1]);
                b.arg(&q);
                b.arg(t);
                // SAFETY: argument types and order match `codec_psgd_q_R`; offsets from `Plan`.
                unsafe { b.launch(cfg) }.map_err(|e| launch_err(&name, e))?;
            }
            Ok((q, dev.clone()))
        })?;
        Ok(wrap(q, plan.q_elems, &dev))
    }

    pub fn stage_decode(
        plan: &Plan,
        comp: Option<(&Tensor, &Tensor, &Tensor)>,
        rest_sum: Option<&Tensor>,
        inv: f32,
        dev: &Device,
    ) -> Result<StageDecode> {
        let rest_c = rest_sum.map(|r| r.contiguous()).transpose()?;
        let mut ins: Vec<&Tensor> = Vec::new();
        if let Some((m, p, q)) = comp {
            ins.extend([m, p, q]);
        }
        ins.extend(rest_c.as_ref());
        if ins.is_empty() {
            // An empty bucket: nothing to decode.
            return Ok(StageDecode {
                out: Tensor::zeros(plan.n, candle_core::DType::F32, dev)?,
                ef: None,
                qt: None,
            });
        }
        let name = format!("codec_psgd_decode_{}", width(plan.r));
        let has_comp = comp.is_some();
        let (out, ef, qt, cdev) = with_views(&ins, |d, v| {
            // SAFETY: every element is written: out by the matrices' rows and the uncompressed
            // runs (which cover the rest of the gradient), E by the rows, next Q by part y = 2.
            let out = unsafe { d.alloc::<f32>(plan.n.max(1))? };
            let ef = unsafe { d.alloc::<f32>(plan.elems.max(1))? };
            let qt = unsafe { d.alloc::<f32>(plan.q_elems.max(1))? };
            let func = d.get_or_load_custom_func(&name, MODULE, PTX)?;
            let (m, p, q) = if has_comp {
                (&v[0], &v[1], &v[2])
            } else {
                (&v[0], &v[0], &v[0])
            };
            let rest = if rest_c.is_some() {
                &v[v.len() - 1]
            } else {
                &v[0]
            };
            for t in plan.tables() {
                let cfg = grid(grid_x(t, &[t.rest_elems(), t.q_elems()]), 3);
                let mut b = func.builder();
                b.arg(m);
                b.arg(p);
                b.arg(q);
                b.arg(rest);
                b.arg(&inv);
                b.arg(&out);
                b.arg(&ef);
                b.arg(&qt);
                b.arg(t);
                // SAFETY: argument types and order match `codec_psgd_decode_R`; offsets from
                // `Plan`; absent inputs are never read (no matrices / no runs in the table).
                unsafe { b.launch(cfg) }.map_err(|e| launch_err(&name, e))?;
            }
            Ok((out, ef, qt, d.clone()))
        })?;
        Ok(StageDecode {
            out: wrap(out, plan.n, &cdev),
            ef: wrap_some(ef, plan.elems, &cdev),
            qt: wrap_some(qt, plan.q_elems, &cdev),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-worked plan: 16×12 compresses at rank 2 (192 ≥ 112), 2×3 and (5, 1) do not and merge
    /// with the 4-element tail into one run.
    #[test]
    fn plan_places_matrices_and_merges_runs() {
        let p = Plan::new(
            &[(16, 12), (2, 3), (5, 1), (40, 10)],
            16 * 12 + 6 + 5 + 400 + 4,
            2,
        )
        .unwrap();
        assert_eq!(p.mats.len(), 2);
        assert_eq!(
            p.mats[1],
            Mat {
                index: 3,
                m: 40,
                c: 10,
                goff: 203,
                eoff: 192,
                poff: 32,
                qoff: 24
            }
        );
        assert_eq!(
            p.segs,
            vec![
                Seg {
                    dst: 192,
                    src: 0,
                    len: 11
                },
                Seg {
                    dst: 603,
                    src: 11,
                    len: 4
                }
            ]
        );
        assert_eq!(
            (p.elems, p.p_elems, p.q_elems, p.rest_elems),
            (592, 112, 44, 15)
        );
        assert_eq!(p.windows(), [0, 32, 112]);
        let t = &p.tables()[0];
        assert_eq!((t.mats, t.segs, t.warp0[2]), (2, 2, 56));
        // Units: 16 rows → 1 chunk × 1 tile; 40 rows → 1 × 1.
        assert_eq!(t.unit0[2], 2);
        assert_eq!(p.launches(), 1);
        assert!(Plan::new(&[(16, 12)], 192, 33).is_err());
        assert!(Plan::new(&[(16, 12)], 191, 2).is_err());
    }

    /// The three stages on the CPU equal the dense definitions: P = (M+E)·Q, Q = Mᵀ·P (chunked),
    /// M̂ = P·(Q/w)ᵀ, E = M + E − M̂, and the uncompressed runs pass through divided by w.
    #[test]
    fn stages_match_dense_definitions() {
        let dev = Device::Cpu;
        let shapes = [(70, 9), (3, 2), (20, 33)];
        let n = 70 * 9 + 6 + 20 * 33 + 7;
        let r = 3;
        let plan = Plan::new(&shapes, n, r).unwrap();
        assert_eq!(plan.mats.len(), 2);
        let g = super::super::synthetic_gradient(&dev, n, 4).unwrap();
        let e = super::super::normal(&dev, plan.elems, 5).unwrap();
        let q = super::super::normal(&dev, plan.q_elems, 6).unwrap();
        let s = stage_p(&plan, &g, Some(&e), Some(&q)).unwrap();
        let (gv, ev, qv) = (host(&g).unwrap(), host(&e).unwrap(), host(&q).unwrap());
        let (mef, p) = (
            host(s.mef.as_ref().unwrap()).unwrap(),
            host(s.p.as_ref().unwrap()).unwrap(),
        );
        for x in &plan.mats {
            for row in 0..x.m {
                for i in 0..r {
                    let want: f64 = (0..x.c)
                        .map(|k| {
                            let m = gv[x.goff + row * x.c + k] as f64
                                + ev[x.eoff + row * x.c + k] as f64;
                            m * qv[x.qoff + i * x.c + k] as f64
                        })
                        .sum();
                    let got = p[x.poff + i * x.m + row] as f64;
                    assert!(
                        (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "P {i},{row}: {got} vs {want}"
                    );
                }
            }
        }
        assert_eq!(
            host(s.rest.as_ref().unwrap()).unwrap(),
            [&gv[630..636], &gv[1296..]].concat()
        );
        let pt = s.p.clone().unwrap();
        let qs = stage_q(&plan, s.mef.as_ref().unwrap(), &pt).unwrap();
        let qsv = host(&qs).unwrap();
        for x in &plan.mats {
            for i in 0..r {
                for k in 0..x.c {
                    let want: f64 = (0..x.m)
                        .map(|row| {
                            p[x.poff + i * x.m + row] as f64 * mef[x.eoff + row * x.c + k] as f64
                        })
                        .sum();
                    let got = qsv[x.qoff + i * x.c + k] as f64;
                    assert!(
                        (got - want).abs() < 1e-3 * (1.0 + want.abs()),
                        "Q {i},{k}: {got} vs {want}"
                    );
                }
            }
        }
        let d = stage_decode(
            &plan,
            s.mef.as_ref(),
            Some(&pt),
            Some(&qs),
            s.rest.as_ref(),
            0.5,
            &dev,
        )
        .unwrap();
        let (out, ef, qt) = (
            host(&d.out).unwrap(),
            host(d.ef.as_ref().unwrap()).unwrap(),
            host(d.qt.as_ref().unwrap()).unwrap(),
        );
        for x in &plan.mats {
            for row in 0..x.m {
                for k in 0..x.c {
                    let want: f64 = (0..r)
                        .map(|i| {
                            p[x.poff + i * x.m + row] as f64
                                * qsv[x.qoff + i * x.c + k] as f64
                                * 0.5
                        })
                        .sum();
                    let got = out[x.goff + row * x.c + k] as f64;
                    assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()));
                    let e = mef[x.eoff + row * x.c + k] - out[x.goff + row * x.c + k];
                    assert_eq!(ef[x.eoff + row * x.c + k], e);
                }
            }
        }
        for i in (630..636).chain(1296..n) {
            assert_eq!(out[i], gv[i] * 0.5);
        }
        assert_eq!(qt, qsv.iter().map(|x| x * 0.5).collect::<Vec<_>>());
        // Wrong sizes are refused.
        assert!(stage_q(&plan, &pt, &pt).is_err());
        assert!(stage_decode(&plan, None, None, None, s.rest.as_ref(), 0.5, &dev).is_err());
    }

    /// The table the kernels were built for (`codec.ptx`'s by-value parameter of every fused
    /// kernel) is exactly [`Table`]: a PTX built from another `PSGD_MAX` would read every offset
    /// from the wrong place (run 72's first device call: every fused-stage check failed).
    #[test]
    fn ptx_table_parameter_is_the_rust_table() {
        let ptx = include_str!("codec.ptx");
        let size = std::mem::size_of::<Table>();
        for (kernel, param) in [("p", 7), ("q", 3), ("decode", 8)] {
            for r in [1, 2, 4, 8, 16, 32] {
                let decl = format!("codec_psgd_{kernel}_{r}_param_{param}[{size}]");
                assert!(
                    ptx.contains(&decl),
                    "codec.ptx lacks {decl}: rebuild it from codec.cu"
                );
            }
        }
        assert_eq!(size, 4 * (4 + 2 * (TABLE_MAX + 1) + 9 * TABLE_MAX));
    }

    /// The kernel geometry in `codec.cu` is the one the plan and the cost model count: matrices
    /// per launch, columns per warp unit of `p` and `decode`, rows and columns per `q` unit.
    #[test]
    fn kernel_geometry_is_the_models() {
        let cu = include_str!("codec.cu");
        let define = |name: &str| -> usize {
            let line = cu
                .lines()
                .find(|l| l.starts_with(&format!("#define {name} ")))
                .unwrap_or_else(|| panic!("codec.cu lacks #define {name}"));
            line.split_whitespace().nth(2).unwrap().parse().unwrap()
        };
        assert_eq!(define("PSGD_MAX"), TABLE_MAX);
        assert_eq!(define("PSGD_CW"), CHUNK_COLS as usize);
        assert_eq!(define("PSGD_QCOLS"), Q_COLS as usize);
        assert_eq!(define("PSGD_QROWS_MAX"), Q_ROWS as usize);
        assert_eq!(
            (TABLE_MAX, CHUNK_COLS, Q_ROWS),
            (64, 256, 64),
            "the measured kernels' geometry (runs 76-82)"
        );
    }

    /// A bucket of 130 small matrices takes three launches of 64.
    #[test]
    fn large_buckets_split_into_tables_of_64() {
        let shapes = vec![(8usize, 8usize); 130];
        let p = Plan::new(&shapes, 130 * 64, 1).unwrap();
        assert_eq!(p.launches(), 3);
        let t = p.tables();
        assert_eq!((t[0].mats, t[1].mats, t[2].mats), (64, 64, 2));
        assert_eq!(t[2].goff[1], 129 * 64);
        assert_eq!(t[2].warp0[2], 16);
        // A 64 × 4608 matrix is 64 rows × 18 chunks of 256 columns.
        let wide = Plan::new(&[(64, 4608)], 64 * 4608, 4).unwrap();
        assert_eq!(wide.tables()[0].warp0[1], 64 * 18);
    }
}
