// Query side of the backward: one thread per (query row, query head) runs query_item
// (backward_items.hpp) over every enabled branch and rounds dq and the gate gradients once.
//
// fp64 arithmetic throughout the backward: the tolerance rule bounds a gradient's error by twice
// the fp32 baseline's (docs/tolerance.md), and a kernel in fp32 makes errors of the baseline's
// own size in another order, which exceed twice the baseline now and then (the forward's simple
// path met this: 19 fp32 fuzz cases in 4139). In fp64 the error is that of the final rounding
// and of the stored compressed K/V (which the baseline shares). Speed is for later kernels.
#include "backward_launch.hpp"
#include "device.cuh"

namespace nsa::cuda::detail {

namespace {

template <class T>
struct Ptrs3 {
  T* p[3];
};

template <class T>
__global__ void bwd_query_kernel(bwd::Shape c, bwd::Tensors<T> x, Ptrs3<double> lse,
                                 Ptrs3<double> dd, Ptrs3<double> dg_acc, double* dq_acc,
                                 Ptrs3<T> dg, T* dq) {
  const int64_t items = c.total_q * c.h_q;
  for (int64_t it = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; it < items;
       it += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = it / c.h_q, head = it % c.h_q;
    double* acc = dq_acc + it * c.d_k;
    bwd::query_item<T, BwdLoad>(c, x, row, head, lse.p, dd.p, dg_acc.p, acc);
    for (int64_t e = 0; e < c.d_k; ++e) dq[it * c.d_k + e] = from_f64<T>(acc[e]);
    for (int b = 0; b < 3; ++b)
      if (c.enable[b]) dg.p[b][it] = from_f64<T>(dg_acc.p[b][it]);
  }
}

}  // namespace

template <class T>
void launch_bwd_query(const bwd::Shape& c, const bwd::Tensors<T>& x, double* const lse[3],
                      double* const D[3], double* const dg_acc[3], double* dq_acc, T* const dg[3],
                      T* dq, cudaStream_t stream, const std::string& ctx) {
  const int64_t items = c.total_q * c.h_q;
  if (items == 0) return;
  bwd_query_kernel<T><<<bwd_grid(items), 128, 0, stream>>>(
      c, x, Ptrs3<double>{{lse[0], lse[1], lse[2]}}, Ptrs3<double>{{D[0], D[1], D[2]}},
      Ptrs3<double>{{dg_acc[0], dg_acc[1], dg_acc[2]}}, dq_acc, Ptrs3<T>{{dg[0], dg[1], dg[2]}},
      dq);
  check_launch("bwd_query_kernel", ctx);
}

#define NSA_INST(T)                                                                               \
  template void launch_bwd_query<T>(const bwd::Shape&, const bwd::Tensors<T>&, double* const[3],  \
                                    double* const[3], double* const[3], double*, T* const[3], T*, \
                                    cudaStream_t, const std::string&);
NSA_INST(float)
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
