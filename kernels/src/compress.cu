// Compression phi: one thread block per (compressed block, KV head); threads over output dims.
// mean: (1/l) sum_j x_j.  linear: vec(X + P)^T W.  mlp: W2^T act(W1^T vec(X + P) + b1) + b2.
// Arithmetic in fp64 and one rounding to the input dtype on store (the baseline stores the row in
// the input dtype too): phi is a small share of the work, and an fp32 sum here was enough to put
// fp32 outputs past the tolerance rule (H200 run of 2026-11-29, fuzz case 738: o_cmp 1.0007x the
// bound with a 64-token mean).
#include "device.cuh"

namespace nsa::cuda::detail {

namespace {

__device__ double activate(double x, int act) {
  return act == 0 ? fmax(x, 0.0) : x / (1.0 + exp(-x));
}

template <class T>
__global__ void compress_kernel(DevCfg c, PhiDev<T> phi, const T* __restrict__ x, int64_t dim,
                                T* __restrict__ out) {
  extern __shared__ double hidden[];  // mlp: [phi_hidden]
  const int64_t g = blockIdx.y;
  for (int64_t row = blockIdx.x; row < c.total_c; row += gridDim.x) {
    const int64_t s = seq_of(c.cu_c, c.num_seqs, row);
    const DevSeq sq = c.seqs[s];
    const int64_t i = row - sq.c_begin;
    const int64_t tok0 = sq.k_begin + i * c.d;
    const int64_t xs = c.h_kv * dim;  // token stride
    const T* xb = x + tok0 * xs + g * dim;
    T* ob = out + (row * c.h_kv + g) * dim;
    if (c.phi == 0) {
      for (int64_t e = threadIdx.x; e < dim; e += blockDim.x) {
        double acc = 0.0;
        for (int64_t j = 0; j < c.l; ++j) acc += to_f(xb[j * xs + e]);
        ob[e] = from_f64<T>(acc / static_cast<double>(c.l));
      }
      continue;
    }
    const T* pos = phi.pos + g * c.l * dim;
    if (c.phi == 1) {
      const T* w = phi.w1 + g * c.l * dim * dim;
      for (int64_t e = threadIdx.x; e < dim; e += blockDim.x) {
        double acc = 0.0;
        for (int64_t j = 0; j < c.l; ++j)
          for (int64_t cc = 0; cc < dim; ++cc)
            acc += (static_cast<double>(to_f(xb[j * xs + cc])) + to_f(pos[j * dim + cc])) *
                   to_f(w[(j * dim + cc) * dim + e]);
        ob[e] = from_f64<T>(acc);
      }
      continue;
    }
    const int64_t m = c.phi_hidden;
    const T* w1 = phi.w1 + g * c.l * dim * m;
    for (int64_t u = threadIdx.x; u < m; u += blockDim.x) {
      double acc = to_f(phi.b1[g * m + u]);
      for (int64_t j = 0; j < c.l; ++j)
        for (int64_t cc = 0; cc < dim; ++cc)
          acc += (static_cast<double>(to_f(xb[j * xs + cc])) + to_f(pos[j * dim + cc])) *
                 to_f(w1[(j * dim + cc) * m + u]);
      hidden[u] = activate(acc, c.act);
    }
    __syncthreads();
    const T* w2 = phi.w2 + g * m * dim;
    for (int64_t e = threadIdx.x; e < dim; e += blockDim.x) {
      double acc = to_f(phi.b2[g * dim + e]);
      for (int64_t u = 0; u < m; ++u) acc += hidden[u] * to_f(w2[u * dim + e]);
      ob[e] = from_f64<T>(acc);
    }
    __syncthreads();
  }
}

}  // namespace

template <class T>
void launch_compress(const DevCfg& c, const PhiDev<T>& phi, const T* x, int64_t dim, T* out,
                     cudaStream_t stream, const std::string& ctx) {
  if (c.total_c == 0 || c.h_kv == 0) return;
  const unsigned gx = static_cast<unsigned>(c.total_c < 65535 * 16 ? c.total_c : 65535 * 16);
  const size_t smem = c.phi == 2 ? static_cast<size_t>(c.phi_hidden) * sizeof(double) : 0;
  if (smem > 48 * 1024)
    check(cudaFuncSetAttribute(compress_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(smem)),
          "compress_kernel (shared memory)", ctx);
  compress_kernel<T>
      <<<dim3(gx, static_cast<unsigned>(c.h_kv)), 128, smem, stream>>>(c, phi, x, dim, out);
  check_launch("compress_kernel", ctx);
}

#define NSA_INST(T)                                                                        \
  template void launch_compress<T>(const DevCfg&, const PhiDev<T>&, const T*, int64_t, T*, \
                                   cudaStream_t, const std::string&);
NSA_INST(float)
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
