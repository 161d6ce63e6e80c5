// Gradient-codec kernels of perfcast-gpu's gradcomp harness (validation/src/gradcomp/codec/kernels.rs
// holds the CPU references that compute the same results and the launch code).
// Built with: nvcc 13.0.88 -arch=sm_90 -O3 --ptx codec.cu -o codec.ptx
#include <stdint.h>

// splitmix64's finalizer (Steele, Lea & Flood 2014): a counter-based hash, so element i's random
// number depends only on (key, i) and the CPU reference reproduces it bit for bit.
__device__ __forceinline__ uint64_t codec_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// out[i] = top 24 bits of mix64(key + i * golden) * 2^-24: uniform on [0, 1), 24-bit resolution.
extern "C" __global__ void codec_uniform_f32(float *out, uint64_t key, uint32_t n) {
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        uint64_t h = codec_mix64(key + (uint64_t)i * 0x9e3779b97f4a7c15ULL);
        out[i] = (float)(uint32_t)(h >> 40) * 5.9604644775390625e-8f;
    }
}

// out[idx[j]] += val[j] for j < m (atomic: several ranks may name the same index).
extern "C" __global__ void codec_scatter_add_f32(const uint32_t *idx, const float *val, float *out,
                                                 uint32_t m) {
    uint32_t j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j < m) {
        atomicAdd(out + idx[j], val[j]);
    }
}

// Stable selection, step 1 of 3. flags[i]: 1 = selected, 2 = tie (the first `need` ties in index
// order are selected), 0 = not. One block of 1024 threads per 1024 elements counts both kinds.
extern "C" __global__ void codec_sel_count(const uint8_t *flags, uint32_t n, uint32_t *cnt_sel,
                                           uint32_t *cnt_tie) {
    uint32_t i = blockIdx.x * 1024u + threadIdx.x;
    uint8_t v = i < n ? flags[i] : 0;
    int s = __syncthreads_count(v == 1);
    int t = __syncthreads_count(v == 2);
    if (threadIdx.x == 0) {
        cnt_sel[blockIdx.x] = (uint32_t)s;
        cnt_tie[blockIdx.x] = (uint32_t)t;
    }
}

// Step 2: exclusive prefix sums of both count arrays (nb entries), in place; one block of 1024.
extern "C" __global__ void codec_sel_scan(uint32_t *a, uint32_t *b, uint32_t nb) {
    __shared__ uint32_t sa[1024];
    __shared__ uint32_t sb[1024];
    uint32_t per = (nb + 1023u) / 1024u;
    uint32_t lo = threadIdx.x * per;
    uint32_t hi = min(lo + per, nb);
    uint32_t ta = 0, tb = 0;
    for (uint32_t j = lo; j < hi; ++j) {
        ta += a[j];
        tb += b[j];
    }
    sa[threadIdx.x] = ta;
    sb[threadIdx.x] = tb;
    __syncthreads();
    for (uint32_t off = 1; off < 1024u; off <<= 1) {
        uint32_t xa = threadIdx.x >= off ? sa[threadIdx.x - off] : 0u;
        uint32_t xb = threadIdx.x >= off ? sb[threadIdx.x - off] : 0u;
        __syncthreads();
        sa[threadIdx.x] += xa;
        sb[threadIdx.x] += xb;
        __syncthreads();
    }
    uint32_t ra = sa[threadIdx.x] - ta;
    uint32_t rb = sb[threadIdx.x] - tb;
    for (uint32_t j = lo; j < hi; ++j) {
        uint32_t x = a[j], y = b[j];
        a[j] = ra;
        b[j] = rb;
        ra += x;
        rb += y;
    }
}

// Step 3: writes the selected indices in index order: an element with s selected and t ties
// before it goes to s + min(t, need) (selected) or s + t (a tie with t < need). Writes at or
// beyond k are dropped (they cannot happen when the flags hold k - need ones and >= need twos).
__device__ __forceinline__ void codec_sel_compact_body(const uint8_t *flags, uint32_t n,
                                                       const uint32_t *off_sel,
                                                       const uint32_t *off_tie, uint32_t need,
                                                       uint32_t k, uint32_t *out) {
    __shared__ uint32_t ws[32];
    __shared__ uint32_t wt[32];
    uint32_t i = blockIdx.x * 1024u + threadIdx.x;
    uint8_t v = i < n ? flags[i] : 0;
    uint32_t lane = threadIdx.x & 31u, w = threadIdx.x >> 5;
    uint32_t bs = __ballot_sync(0xffffffffu, v == 1);
    uint32_t bt = __ballot_sync(0xffffffffu, v == 2);
    uint32_t below = (1u << lane) - 1u;
    uint32_t ps = __popc(bs & below), pt = __popc(bt & below);
    if (lane == 0) {
        ws[w] = __popc(bs);
        wt[w] = __popc(bt);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        uint32_t a = 0, b = 0;
        for (int j = 0; j < 32; ++j) {
            uint32_t x = ws[j], y = wt[j];
            ws[j] = a;
            wt[j] = b;
            a += x;
            b += y;
        }
    }
    __syncthreads();
    uint32_t s = off_sel[blockIdx.x] + ws[w] + ps;
    uint32_t t = off_tie[blockIdx.x] + wt[w] + pt;
    uint32_t pos = 0xffffffffu;
    if (v == 1) {
        pos = s + min(t, need);
    } else if (v == 2 && t < need) {
        pos = s + t;
    }
    if (pos < k) {
        out[pos] = i;
    }
}

extern "C" __global__ void codec_sel_compact(const uint8_t *flags, uint32_t n,
                                             const uint32_t *off_sel, const uint32_t *off_tie,
                                             uint32_t need, uint32_t k, uint32_t *out) {
    codec_sel_compact_body(flags, n, off_sel, off_tie, need, k, out);
}

// Top-k's selection without a host read (issue 14: the host read of each pass's histogram
// drained the launch queue mid-backward). `state` (4 u32, zeroed) holds the radix select's
// progress on the device: [0] prefix mask, [1] prefix (after the last pass: the bit pattern of
// the k-th largest |x|), [2] count of elements strictly above the prefix's digits, [3] fault
// bits (1: a NaN or infinity, 2: no digit held the k-th element). Every kernel reads |x| as the
// bit pattern with the sign cleared (non-negative floats order as their bits).

// Radix-select histogram: hist[(|x| bits >> shift) & bins_mask] over the elements whose
// |x| bits & state[0] == state[1]; hist holds 4096 zeroed u32 bins. Each block counts into
// shared memory and adds its non-zero bins to hist (global atomics, once per bin).
extern "C" __global__ void codec_radix_hist(const float *x, uint32_t n, const uint32_t *state,
                                            uint32_t shift, uint32_t bins_mask, uint32_t *hist) {
    __shared__ uint32_t h[4096];
    uint32_t prefix_mask = state[0], prefix = state[1];
    for (uint32_t i = threadIdx.x; i < 4096u; i += blockDim.x) {
        h[i] = 0;
    }
    __syncthreads();
    uint32_t stride = gridDim.x * blockDim.x;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        uint32_t b = __float_as_uint(x[i]) & 0x7fffffffu;
        if ((b & prefix_mask) == prefix) {
            atomicAdd(&h[(b >> shift) & bins_mask], 1u);
        }
    }
    __syncthreads();
    for (uint32_t i = threadIdx.x; i < 4096u; i += blockDim.x) {
        if (h[i] != 0) {
            atomicAdd(&hist[i], h[i]);
        }
    }
}

// One block of 1024 threads picks the digit that holds the k-th largest element from a pass's
// histogram: thread t owns the bins 4095 - 4t ... 4092 - 4t (high to low); an inclusive scan of
// the threads' sums gives each bin the count of elements above it (plus state[2], the count
// above the prefix); the one bin whose range covers k extends the prefix. On the first pass,
// bins >= 0x7F8 (exponent all ones: NaN or infinity) set fault bit 1.
extern "C" __global__ void codec_radix_pick(const uint32_t *hist, uint32_t *state, uint32_t k,
                                            uint32_t shift, uint32_t bins_mask, uint32_t first) {
    __shared__ uint32_t part[1024];
    uint32_t t = threadIdx.x;
    uint32_t c[4];
    uint32_t s = 0;
    for (uint32_t j = 0; j < 4u; ++j) {
        uint32_t d = 4095u - (4u * t + j);
        c[j] = d <= bins_mask ? hist[d] : 0u;
        s += c[j];
    }
    uint32_t above0 = state[2];
    uint32_t mask0 = state[0], prefix0 = state[1];
    part[t] = s;
    __syncthreads();
    for (uint32_t off = 1; off < 1024u; off <<= 1) {
        uint32_t x = t >= off ? part[t - off] : 0u;
        __syncthreads();
        part[t] += x;
        __syncthreads();
    }
    uint32_t before = above0 + part[t] - s;
    uint32_t total = above0 + part[1023];
    __syncthreads();
    for (uint32_t j = 0; j < 4u; ++j) {
        uint32_t d = 4095u - (4u * t + j);
        if (before < k && before + c[j] >= k) {
            state[0] = mask0 | (bins_mask << shift);
            state[1] = prefix0 | (d << shift);
            state[2] = before;
        }
        before += c[j];
    }
    if (t == 0) {
        uint32_t fault = 0;
        if (first) {
            // |x| has its sign cleared: digits 0x7F8..0x7FF (exponent all ones) at most.
            for (uint32_t d = 0x7F8u; d <= min(bins_mask, 0x7FFu); ++d) {
                if (hist[d] != 0) {
                    fault |= 1u;
                }
            }
        }
        if (total < k) {
            fault |= 2u;
        }
        if (fault) {
            atomicOr(&state[3], fault);
        }
    }
}

// After the three passes: flags[i] = 1 if |x_i| > kth, 2 if equal, 0 otherwise (kth = state[1]).
extern "C" __global__ void codec_topk_flags(const float *x, uint32_t n, const uint32_t *state,
                                            uint8_t *flags) {
    uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        uint32_t kth = state[1];
        uint32_t b = __float_as_uint(x[i]) & 0x7fffffffu;
        flags[i] = b > kth ? 1 : (b == kth ? 2 : 0);
    }
}

// Step 3 of the selection with need = k - state[2] read on the device; block 0's thread 0 also
// copies the fault bits to out[k].
extern "C" __global__ void codec_topk_compact(const uint8_t *flags, uint32_t n,
                                              const uint32_t *off_sel, const uint32_t *off_tie,
                                              const uint32_t *state, uint32_t k, uint32_t *out) {
    uint32_t above = state[2];
    uint32_t need = above <= k ? k - above : 0u;
    codec_sel_compact_body(flags, n, off_sel, off_tie, need, k, out);
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        out[k] = state[3];
    }
}

// Sum of one float per thread of the block (blockDim.x a multiple of 32, at most 1024),
// returned to every thread; `sh` holds 32 floats of shared memory.
__device__ __forceinline__ float codec_block_sum(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    __syncthreads();  // the previous call's readers are done with sh
    if ((threadIdx.x & 31u) == 0) {
        sh[threadIdx.x >> 5] = v;
    }
    __syncthreads();
    v = (threadIdx.x & 31u) < (blockDim.x >> 5) ? sh[threadIdx.x & 31u] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

// PowerSGD's orthogonalization of every compressed matrix of a bucket in one launch (issue 14:
// the candle composition took about 13 launches per rank column, so the stage ran at the host's
// launch rate). Matrix j's P^T is r contiguous rows of len = (offs[j+1] - offs[j]) / r floats at
// in + offs[j]; one block per matrix writes the result to out + offs[j]. Row i is
// re-orthogonalized against the finished rows 0..i-1 (one modified Gram-Schmidt pass: "twice is
// enough", Giraud, Langou & Rozloznik 2005), normalized with its norm floored at `norm_floor`
// (a zero row stays zero), then removed from every later row. Each thread owns the elements
// e = threadIdx.x + k * blockDim.x of every row, so only the dot products synchronize.
// The CPU reference (kernels.rs `orthogonalize_cpu`) runs the same passes.
extern "C" __global__ void codec_orthogonalize(const float *in, float *out, const uint32_t *offs,
                                               uint32_t r, float norm_floor) {
    __shared__ float sh[32];
    uint32_t base = offs[blockIdx.x];
    uint32_t len = (offs[blockIdx.x + 1] - base) / r;
    const float *src = in + base;
    float *p = out + base;
    for (uint32_t e = threadIdx.x; e < r * len; e += blockDim.x) {
        p[e] = src[e];
    }
    for (uint32_t i = 0; i < r; ++i) {
        float *v = p + (size_t)i * len;
        for (uint32_t k = 0; k < i; ++k) {
            const float *u = p + (size_t)k * len;
            float s = 0.0f;
            for (uint32_t e = threadIdx.x; e < len; e += blockDim.x) {
                s += v[e] * u[e];
            }
            s = codec_block_sum(s, sh);
            for (uint32_t e = threadIdx.x; e < len; e += blockDim.x) {
                v[e] -= s * u[e];
            }
        }
        float s = 0.0f;
        for (uint32_t e = threadIdx.x; e < len; e += blockDim.x) {
            s += v[e] * v[e];
        }
        float inv = 1.0f / fmaxf(sqrtf(codec_block_sum(s, sh)), norm_floor);
        for (uint32_t e = threadIdx.x; e < len; e += blockDim.x) {
            v[e] *= inv;
        }
        for (uint32_t t = i + 1; t < r; ++t) {
            float *w = p + (size_t)t * len;
            float c = 0.0f;
            for (uint32_t e = threadIdx.x; e < len; e += blockDim.x) {
                c += w[e] * v[e];
            }
            c = codec_block_sum(c, sh);
            for (uint32_t e = threadIdx.x; e < len; e += blockDim.x) {
                w[e] -= c * v[e];
            }
        }
    }
}

// ---- PowerSGD's three stages as fused, memory-bound kernels (one launch per stage per bucket) ----
// cuBLAS's matmuls for P = M·Q and Q = Mᵀ·P (K or N = r ≤ 32: skinny GEMMs) pick a kernel per
// shape and rank whose time no bytes-and-FLOPs model follows (run 48 on: rank 8's P on 128×512
// took 55 µs where ranks 4 and 32 took 9–10 µs), and the candle composition launched about
// 3 kernels per matrix. These kernels read each element of M once per stage, do r FMAs per
// element on the CUDA cores, and cover every matrix of a bucket in one launch (the table below,
// passed by value). PSGD_R is the register width (a power of two ≥ r); columns i ≥ r are skipped.
#define PSGD_MAX 64
struct PsgdTable {
    uint32_t mats, segs, r, q_rows;        // matrices, uncompressed runs, rank, rows per q chunk
    uint32_t warp0[PSGD_MAX + 1];          // cumulative warp units (rows x column chunks of PSGD_CW)
    uint32_t unit0[PSGD_MAX + 1];          // cumulative work units of codec_psgd_q
    uint32_t m[PSGD_MAX], c[PSGD_MAX];     // rows, columns
    uint32_t goff[PSGD_MAX];               // offset in the flat gradient / decoded output
    uint32_t eoff[PSGD_MAX];               // offset in the packed M (+ E) buffers
    uint32_t poff[PSGD_MAX];               // offset of its Pᵀ (r × m) in the concatenated P
    uint32_t qoff[PSGD_MAX];               // offset of its Qᵀ (r × c) in the concatenated Q
    uint32_t seg_dst[PSGD_MAX], seg_src[PSGD_MAX], seg_len[PSGD_MAX]; // uncompressed runs
};

// The last j < n with a[j] <= x (a non-decreasing, a[0] <= x).
__device__ __forceinline__ uint32_t psgd_find(const uint32_t *a, uint32_t n, uint32_t x) {
    uint32_t lo = 0, hi = n;
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (a[mid] <= x) lo = mid; else hi = mid;
    }
    return lo;
}

__device__ __forceinline__ float psgd_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Columns per warp unit of stages p and decode: a row of c columns is split into ⌈c/PSGD_CW⌉
// warps, so a matrix of few, long rows (ResNet's 64 × 4608) still fills the GPU (run 73: one warp
// per row left such shapes latency-bound, up to 5× the bytes-and-FLOPs time).
#define PSGD_CW 256

// The warp unit w of table t: matrix j, its row, and the column range [k0, k1).
__device__ __forceinline__ void psgd_unit(const PsgdTable &t, uint32_t w, uint32_t &j,
                                          uint32_t &row, uint32_t &k0, uint32_t &k1) {
    j = psgd_find(t.warp0, t.mats, w);
    uint32_t c = t.c[j], chunks = (c + PSGD_CW - 1) / PSGD_CW, local = w - t.warp0[j];
    row = local / chunks;
    k0 = (local % chunks) * PSGD_CW;
    k1 = min(c, k0 + PSGD_CW);
}

// Column kk of the R rows of Qᵀ a lane multiplies by (stages p and decode): R loads issued back
// to back; rank columns i >= r read row 0 (an address select, not a branch: run 74's guarded
// loads were serialized), and their products are discarded (p) or multiplied by 0 (decode).
template <int R>
__device__ __forceinline__ void psgd_load_q(const float *q, uint32_t r, uint32_t c, uint32_t kk,
                                            float (&qv)[R]) {
#pragma unroll
    for (int i = 0; i < R; ++i) qv[i] = __ldg(q + (size_t)(i < r ? i : 0) * c + kk);
}

// Stage p. blockIdx.y = 0: one warp per (row, chunk of PSGD_CW columns) of every matrix: M + E →
// mef (packed), and Pᵀ[i][row] += Σ_{k in chunk} (M + E)[row][k] · Qᵀ[i][k] (P zeroed before;
// one atomicAdd per rank column and chunk, so the chunks' order is not fixed). blockIdx.y = 1:
// gathers the uncompressed runs of g into `rest`. E is read only when has_ef.
template <int R>
__device__ void psgd_p(const float *g, const float *ef, uint32_t has_ef, const float *qt,
                       float *mef, float *p, float *rest, const PsgdTable &t) {
    if (blockIdx.y == 1) {
        uint32_t stride = gridDim.x * blockDim.x;
        for (uint32_t s = 0; s < t.segs; ++s)
            for (uint32_t e = blockIdx.x * blockDim.x + threadIdx.x; e < t.seg_len[s]; e += stride)
                rest[t.seg_src[s] + e] = g[t.seg_dst[s] + e];
        return;
    }
    uint32_t w = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (t.mats == 0 || w >= t.warp0[t.mats]) return;
    uint32_t j, row, k0, k1;
    psgd_unit(t, w, j, row, k0, k1);
    uint32_t c = t.c[j], r = t.r;
    const float *gr = g + t.goff[j] + (size_t)row * c;
    const float *er = ef + t.eoff[j] + (size_t)row * c;
    float *mr = mef + t.eoff[j] + (size_t)row * c;
    const float *q = qt + t.qoff[j];
    float acc[R];
#pragma unroll
    for (int i = 0; i < R; ++i) acc[i] = 0.0f;
    // A lane's (at most PSGD_CW / 32) elements of M and E are all loaded before any is used, so
    // their memory latencies overlap (run 75: a loop of dependent iterations cost one memory
    // latency per 32 columns, which made 64 x 256 slower than 576 x 64). Out-of-range elements
    // read the chunk's first column and count as 0. Rank columns i >= r read row 0 of Q (an
    // address select, not a branch, so the R loads issue back to back; run 74's guarded loads
    // were serialized) and their sums are never stored.
    float x[PSGD_CW / 32];
#pragma unroll
    for (int u = 0; u < PSGD_CW / 32; ++u) {
        uint32_t k = k0 + lane + 32 * u, kk = k < k1 ? k : k0;
        float v = gr[kk];
        if (has_ef) v += er[kk];
        x[u] = k < k1 ? v : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < PSGD_CW / 32; ++u) {
        uint32_t k = k0 + lane + 32 * u;
        if (k < k1) mr[k] = x[u];
    }
#pragma unroll
    for (int u = 0; u < PSGD_CW / 32; ++u) {
        uint32_t k = k0 + lane + 32 * u, kk = k < k1 ? k : k0;
        float qv[R];
        psgd_load_q<R>(q, r, c, kk, qv);
#pragma unroll
        for (int i = 0; i < R; ++i) acc[i] = fmaf(x[u], qv[i], acc[i]);
    }
#pragma unroll
    for (int i = 0; i < R; ++i) {
        if (i < r) {
            float s = psgd_warp_sum(acc[i]);
            if (lane == 0) atomicAdd(p + t.poff[j] + (size_t)i * t.m[j] + row, s);
        }
    }
}

// Stage q: Qᵀ[i][k] += Σ_{rows of the chunk} Pᵀ[i][row] · mef[row][k] (qt zeroed before). A work
// unit is (matrix, chunk of t.q_rows rows, tile of 64 columns); 256 threads = 64 columns × 4 row
// groups, whose partial sums meet in shared memory before one atomicAdd per (i, column): the
// order of the chunks' additions is not fixed (a few ulps of Q between runs).
#define PSGD_QCOLS 64
#define PSGD_QROWS_MAX 64
template <int R>
__device__ void psgd_q(const float *mef, const float *p, float *qt, const PsgdTable &t) {
    __shared__ float sp[R][PSGD_QROWS_MAX];
    __shared__ float red[4][R][PSGD_QCOLS];
    uint32_t u = blockIdx.x;
    if (t.mats == 0 || u >= t.unit0[t.mats]) return;
    uint32_t j = psgd_find(t.unit0, t.mats, u);
    uint32_t m = t.m[j], c = t.c[j], r = t.r;
    uint32_t tiles = (c + PSGD_QCOLS - 1) / PSGD_QCOLS, local = u - t.unit0[j];
    uint32_t i0 = (local / tiles) * t.q_rows, rows = min(t.q_rows, m - i0);
    uint32_t col = threadIdx.x % PSGD_QCOLS, grp = threadIdx.x / PSGD_QCOLS;
    uint32_t k = (local % tiles) * PSGD_QCOLS + col;
    for (uint32_t e = threadIdx.x; e < R * PSGD_QROWS_MAX; e += blockDim.x) {
        uint32_t i = e / PSGD_QROWS_MAX, ii = e % PSGD_QROWS_MAX;
        sp[i][ii] = (i < r && ii < rows) ? p[t.poff[j] + (size_t)i * m + i0 + ii] : 0.0f;
    }
    __syncthreads();
    float acc[R];
#pragma unroll
    for (int i = 0; i < R; ++i) acc[i] = 0.0f;
    if (k < c) {
        const float *src = mef + t.eoff[j] + (size_t)i0 * c + k;
        for (uint32_t ii = grp; ii < rows; ii += 4) {
            float x = src[(size_t)ii * c];
#pragma unroll
            for (int i = 0; i < R; ++i) acc[i] = fmaf(sp[i][ii], x, acc[i]);
        }
    }
#pragma unroll
    for (int i = 0; i < R; ++i) red[grp][i][col] = acc[i];
    __syncthreads();
    if (grp == 0 && k < c) {
#pragma unroll
        for (int i = 0; i < R; ++i) {
            if (i < r) {
                float s = red[0][i][col] + red[1][i][col] + red[2][i][col] + red[3][i][col];
                atomicAdd(qt + t.qoff[j] + (size_t)i * c + k, s);
            }
        }
    }
}

// Stage decode (inv = 1 / world). blockIdx.y = 0: one warp per (row, column chunk): M̂[row][k] = Σ_i Pᵀ[i][row] ·
// (inv · Qᵀ[i][k]) into out (flat gradient layout), E = mef − M̂ into ef. y = 1: the uncompressed
// runs, inv · rest_sum, into out. y = 2: the next round's Qᵀ = inv · q_sum.
template <int R>
__device__ void psgd_decode(const float *mef, const float *p, const float *q_sum,
                            const float *rest_sum, float inv, float *out, float *ef,
                            float *qt_next, const PsgdTable &t) {
    uint32_t stride = gridDim.x * blockDim.x, tid = blockIdx.x * blockDim.x + threadIdx.x;
    if (blockIdx.y == 1) {
        for (uint32_t s = 0; s < t.segs; ++s)
            for (uint32_t e = tid; e < t.seg_len[s]; e += stride)
                out[t.seg_dst[s] + e] = rest_sum[t.seg_src[s] + e] * inv;
        return;
    }
    if (blockIdx.y == 2) {
        for (uint32_t j = 0; j < t.mats; ++j)
            for (uint32_t e = tid; e < t.r * t.c[j]; e += stride)
                qt_next[t.qoff[j] + e] = q_sum[t.qoff[j] + e] * inv;
        return;
    }
    uint32_t w = tid >> 5, lane = threadIdx.x & 31;
    if (t.mats == 0 || w >= t.warp0[t.mats]) return;
    uint32_t j, row, k0, k1;
    psgd_unit(t, w, j, row, k0, k1);
    uint32_t c = t.c[j], r = t.r;
    float pv[R];
#pragma unroll
    for (int i = 0; i < R; ++i) pv[i] = (i < r) ? p[t.poff[j] + (size_t)i * t.m[j] + row] : 0.0f;
    const float *q = q_sum + t.qoff[j];
    const float *mr = mef + t.eoff[j] + (size_t)row * c;
    float *er = ef + t.eoff[j] + (size_t)row * c;
    float *orow = out + t.goff[j] + (size_t)row * c;
    // As in stage p: a lane's elements of mef loaded up front, unguarded loads of Q (pv[i] = 0
    // for i >= r, whose products add exact zeros).
    float x[PSGD_CW / 32];
#pragma unroll
    for (int u = 0; u < PSGD_CW / 32; ++u) {
        uint32_t k = k0 + lane + 32 * u;
        x[u] = mr[k < k1 ? k : k0];
    }
#pragma unroll
    for (int u = 0; u < PSGD_CW / 32; ++u) {
        uint32_t k = k0 + lane + 32 * u, kk = k < k1 ? k : k0;
        float qv[R];
        psgd_load_q<R>(q, r, c, kk, qv);
        float h = 0.0f;
#pragma unroll
        for (int i = 0; i < R; ++i) h = fmaf(pv[i], qv[i] * inv, h);
        if (k < k1) {
            orow[k] = h;
            er[k] = x[u] - h;
        }
    }
}

#define PSGD_INST(R)                                                                               \
    extern "C" __global__ void codec_psgd_p_##R(const float *g, const float *ef, uint32_t has_ef,  \
                                                const float *qt, float *mef, float *p,             \
                                                float *rest, PsgdTable t) {                        \
        psgd_p<R>(g, ef, has_ef, qt, mef, p, rest, t);                                             \
    }                                                                                              \
    extern "C" __global__ void codec_psgd_q_##R(const float *mef, const float *p, float *qt,       \
                                                PsgdTable t) {                                     \
        psgd_q<R>(mef, p, qt, t);                                                                  \
    }                                                                                              \
    extern "C" __global__ void codec_psgd_decode_##R(const float *mef, const float *p,             \
                                                     const float *q_sum, const float *rest_sum,    \
                                                     float inv, float *out, float *ef,             \
                                                     float *qt_next, PsgdTable t) {                \
        psgd_decode<R>(mef, p, q_sum, rest_sum, inv, out, ef, qt_next, t);                         \
    }
PSGD_INST(1)
PSGD_INST(2)
PSGD_INST(4)
PSGD_INST(8)
PSGD_INST(16)
PSGD_INST(32)

// Emulated slower link (gradcomp ddp --link-gbps): one thread spins on the global timer for `ns`
// nanoseconds on the communication stream after a collective, delaying every later collective.
extern "C" __global__ void codec_delay(uint64_t ns) {
    uint64_t start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        __nanosleep(1000);
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < ns);
}
