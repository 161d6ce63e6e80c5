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
// before it goes to s + min(t, need) (selected) or s + t (a tie with t < need).
extern "C" __global__ void codec_sel_compact(const uint8_t *flags, uint32_t n,
                                             const uint32_t *off_sel, const uint32_t *off_tie,
                                             uint32_t need, uint32_t *out) {
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
    if (v == 1) {
        out[s + min(t, need)] = i;
    } else if (v == 2 && t < need) {
        out[s + t] = i;
    }
}

// Radix-select histogram (Top-k's k-th largest |x| in three passes instead of a bisection).
// Non-negative f32 values order as their bit patterns. hist[(bits >> shift) & bins_mask] counts
// the elements whose bits & prefix_mask == prefix; hist holds 4096 zeroed u32 bins. Each block
// counts into shared memory and adds its non-zero bins to hist (global atomics, once per bin).
extern "C" __global__ void codec_radix_hist(const float *a, uint32_t n, uint32_t prefix_mask,
                                            uint32_t prefix, uint32_t shift, uint32_t bins_mask,
                                            uint32_t *hist) {
    __shared__ uint32_t h[4096];
    for (uint32_t i = threadIdx.x; i < 4096u; i += blockDim.x) {
        h[i] = 0;
    }
    __syncthreads();
    uint32_t stride = gridDim.x * blockDim.x;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        uint32_t b = __float_as_uint(a[i]);
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
