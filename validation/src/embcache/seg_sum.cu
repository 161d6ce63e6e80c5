// Deterministic segment sum for the embedding-row gradient (perfcast-gpu embcache).
// out[u, d] = sum over k in [offs[u], offs[u+1]) of g[perm[k], d], added in k order (the accesses
// of row u in batch order), so the sum is bit-identical to the CPU path's sequential loop.
// Built to PTX with nvcc 13.0: nvcc -ptx -arch=sm_90 -O3 seg_sum.cu -o seg_sum.ptx (all kernels)
extern "C" __global__ void seg_sum_f32(const float *__restrict__ g,
                                       const unsigned int *__restrict__ perm,
                                       const unsigned int *__restrict__ offs,
                                       float *__restrict__ out, unsigned int rows,
                                       unsigned int dim) {
  const size_t n = (size_t)rows * dim;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)blockDim.x * gridDim.x) {
    const unsigned int u = (unsigned int)(i / dim);
    const unsigned int d = (unsigned int)(i % dim);
    float s = 0.0f;
    const unsigned int end = offs[u + 1];
    for (unsigned int k = offs[u]; k < end; ++k) {
      s = __fadd_rn(s, g[(size_t)perm[k] * dim + d]);
    }
    out[i] = s;
  }
}

// Row scatter into the cache, in place: dst[slots[r], c] = src[r, c] (slots distinct). candle's
// scatter kernel runs one thread per column and loops over the rows (about 1 GB/s).
extern "C" __global__ void scatter_rows_f32(const float *__restrict__ src,
                                            const unsigned int *__restrict__ slots,
                                            float *__restrict__ dst, unsigned int n,
                                            unsigned int width) {
  const size_t total = (size_t)n * width;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)blockDim.x * gridDim.x) {
    const unsigned int r = (unsigned int)(i / width);
    const unsigned int c = (unsigned int)(i % width);
    dst[(size_t)slots[r] * width + c] = src[i];
  }
}

// The same with 16-byte accesses (width4 = width / 4; every row start 16-byte aligned).
extern "C" __global__ void scatter_rows_f32x4(const float4 *__restrict__ src,
                                              const unsigned int *__restrict__ slots,
                                              float4 *__restrict__ dst, unsigned int n,
                                              unsigned int width4) {
  const size_t total = (size_t)n * width4;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)blockDim.x * gridDim.x) {
    const unsigned int r = (unsigned int)(i / width4);
    const unsigned int c = (unsigned int)(i % width4);
    dst[(size_t)slots[r] * width4 + c] = src[i];
  }
}

// Zero-copy gather: out[r, :] = host[idx[r], :], the rows read by the GPU straight from page-locked
// host memory over the bus (with unified addressing a cuMemHostAlloc pointer is valid on the
// device), 16 bytes per access (width4 = width / 4; rows 16-byte aligned).
extern "C" __global__ void gather_host_rows_f32x4(const float4 *__restrict__ host,
                                                  const unsigned int *__restrict__ idx,
                                                  float4 *__restrict__ out, unsigned int n,
                                                  unsigned int width4) {
  const size_t total = (size_t)n * width4;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
       i += (size_t)blockDim.x * gridDim.x) {
    const unsigned int r = (unsigned int)(i / width4);
    const unsigned int c = (unsigned int)(i % width4);
    out[i] = host[(size_t)idx[r] * width4 + c];
  }
}
