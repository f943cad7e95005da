// Key side of the backward: one thread per (key row, KV head) runs key_item (backward_items.hpp),
// the sum over every query that attends the key in a fixed order, so each dK/dV element is
// written by exactly one thread (no atomics). Then the finish kernel: phi = mean's gather of the
// compressed blocks' gradients into the tokens, each gradient rounded once, the shared-K/V sum.
#include "backward_launch.hpp"
#include "device.cuh"

namespace nsa::cuda::detail {

namespace {

template <class T>
__global__ void bwd_keys_kernel(int b, bwd::Shape c, bwd::Tensors<T> x, bwd::RowStats st,
                                bwd::SlcIndex si, int64_t key_rows, double* dk_acc,
                                double* dv_acc) {
  const int64_t items = key_rows * c.h_kv;
  for (int64_t it = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; it < items;
       it += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t key_row = it / c.h_kv, g = it % c.h_kv;
    bwd::key_item<T, BwdLoad>(c, x, st, si, b, key_row, g, dk_acc + it * c.d_k,
                              dv_acc + it * c.d_v);
  }
}

template <class T>
struct Out3 {
  T* p[3];
};
struct Acc3 {
  const double* p[3];
};

template <class T>
__global__ void bwd_finish_kernel(bwd::Shape c, int64_t dim, const double* blk, Acc3 acc,
                                  Out3<T> out, T* shared) {
  const int64_t total = c.total_k * c.h_kv * dim;
  for (int64_t it = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; it < total;
       it += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    double v[3] = {0.0, 0.0, 0.0};
    const double sum = bwd::finish_item(c, dim, blk, acc.p, it, v);
    for (int b = 0; b < 3; ++b)
      if (c.enable[b]) out.p[b][it] = from_f64<T>(v[b]);
    if (shared) shared[it] = from_f64<T>(sum);
  }
}

template <class T>
__global__ void bwd_round_kernel(const double* src, int64_t count, T* dst) {
  for (int64_t it = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; it < count;
       it += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[it] = from_f64<T>(src[it]);
}

}  // namespace

template <class T>
void launch_bwd_round(const double* src, int64_t count, T* dst, cudaStream_t stream,
                      const std::string& ctx) {
  if (count == 0) return;
  bwd_round_kernel<T><<<bwd_grid(count), 128, 0, stream>>>(src, count, dst);
  check_launch("bwd_round_kernel", ctx);
}

template <class T>
void launch_bwd_keys(int b, const bwd::Shape& c, const bwd::Tensors<T>& x, const bwd::RowStats& st,
                     const bwd::SlcIndex& si, double* dk_acc, double* dv_acc, cudaStream_t stream,
                     const std::string& ctx) {
  const int64_t key_rows = b == 0 ? c.total_c : c.total_k;
  if (key_rows * c.h_kv == 0) return;
  bwd_keys_kernel<T>
      <<<bwd_grid(key_rows * c.h_kv), 128, 0, stream>>>(b, c, x, st, si, key_rows, dk_acc, dv_acc);
  check_launch(b == 0   ? "bwd_keys_kernel<cmp>"
               : b == 1 ? "bwd_keys_kernel<slc>"
                        : "bwd_keys_kernel<win>",
               ctx);
}

template <class T>
void launch_bwd_finish(const bwd::Shape& c, int64_t dim, const double* blk,
                       const double* const acc[3], T* const out[3], T* shared, cudaStream_t stream,
                       const std::string& ctx) {
  const int64_t total = c.total_k * c.h_kv * dim;
  if (total == 0) return;
  bwd_finish_kernel<T><<<bwd_grid(total), 128, 0, stream>>>(
      c, dim, blk, Acc3{{acc[0], acc[1], acc[2]}}, Out3<T>{{out[0], out[1], out[2]}}, shared);
  check_launch("bwd_finish_kernel", ctx);
}

#define NSA_INST(T)                                                                              \
  template void launch_bwd_keys<T>(int, const bwd::Shape&, const bwd::Tensors<T>&,               \
                                   const bwd::RowStats&, const bwd::SlcIndex&, double*, double*, \
                                   cudaStream_t, const std::string&);                            \
  template void launch_bwd_finish<T>(const bwd::Shape&, int64_t, const double*,                  \
                                     const double* const[3], T* const[3], T*, cudaStream_t,      \
                                     const std::string&);                                        \
  template void launch_bwd_round<T>(const double*, int64_t, T*, cudaStream_t, const std::string&);
NSA_INST(float)
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
