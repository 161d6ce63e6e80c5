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
