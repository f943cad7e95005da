// Compression phi over every compressed block i (tokens [i d, i d + l) of its sequence):
//   mean:   (1/l) sum_j x_j                      (this file: one thread block per block and head)
//   linear: vec(X_i + P)^T W                     (phi_gemm.cu: cuBLAS DGEMM on gathered blocks)
//   mlp:    W2^T act(W1^T vec(X_i + P) + b1) + b2 (phi_gemm.cu: two DGEMMs)
// Arithmetic in fp64 and one rounding to the input dtype on store (the baseline stores the row in
// the input dtype too): phi is a small share of the work, and an fp32 sum here was enough to put
// fp32 outputs past the tolerance rule (H200 run of 2026-11-29, fuzz case 738: o_cmp 1.0007x the
// bound with a 64-token mean).
#include "device.cuh"
#include "phi_gemm.hpp"

namespace nsa::cuda::detail {

namespace {

template <class T>
__global__ void mean_kernel(DevCfg c, const T* __restrict__ x, int64_t dim, T* __restrict__ out) {
  const int64_t g = blockIdx.y;
  for (int64_t row = blockIdx.x; row < c.total_c; row += gridDim.x) {
    const DevSeq sq = c.seqs[seq_of(c.cu_c, c.num_seqs, row)];
    const int64_t tok0 = sq.k_begin + (row - sq.c_begin) * c.d;
    const int64_t xs = c.h_kv * dim;  // token stride
    const T* xb = x + tok0 * xs + g * dim;
    T* ob = out + (row * c.h_kv + g) * dim;
    for (int64_t e = threadIdx.x; e < dim; e += blockDim.x) {
      double acc = 0.0;
      for (int64_t j = 0; j < c.l; ++j) acc += to_f(xb[j * xs + e]);
      ob[e] = from_f64<T>(acc / static_cast<double>(c.l));
    }
  }
}

}  // namespace

template <class T>
void launch_compress(const DevCfg& c, const PhiDev<T>& phi, const T* x, int64_t dim, T* out,
                     PhiGemm& gemm, cudaStream_t stream, const std::string& ctx) {
  if (c.total_c == 0 || c.h_kv == 0) return;
  if (c.phi != 0) {
    gemm.run(c, phi, x, dim, out, stream, ctx);
    return;
  }
  const unsigned gx = static_cast<unsigned>(c.total_c < 65535 * 16 ? c.total_c : 65535 * 16);
  mean_kernel<T><<<dim3(gx, static_cast<unsigned>(c.h_kv)), 128, 0, stream>>>(c, x, dim, out);
  check_launch("mean_kernel (phi)", ctx);
}

#define NSA_INST(T)                                                                        \
  template void launch_compress<T>(const DevCfg&, const PhiDev<T>&, const T*, int64_t, T*, \
                                   PhiGemm&, cudaStream_t, const std::string&);
NSA_INST(float)
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
