// Deterministic segment sum for the embedding-row gradient (perfcast-gpu embcache).
// out[u, d] = sum over k in [offs[u], offs[u+1]) of g[perm[k], d], added in k order (the accesses
// of row u in batch order), so the sum is bit-identical to the CPU path's sequential loop.
// Built to PTX with nvcc 13.0: nvcc -ptx -arch=sm_90 -O3 seg_sum.cu -o seg_sum.ptx
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
