// phi = linear / mlp backward on the device: one thread per work item of backward_items.hpp —
// the mlp hidden units (a, dh) per (compressed row, KV head, unit), the blocks' input gradients
// dx per (compressed row, KV head, element), then every parameter gradient element as a sum over
// all compressed rows in order (no atomics), rounded once to T. The tokens receive dx in the
// finish kernel (phi_gather).
#include "backward_launch.hpp"
#include "device.cuh"

namespace nsa::cuda::detail {

namespace {

template <class T>
__global__ void bwd_mlp_hidden_kernel(bwd::Shape c, bwd::PhiView<T> p, const double* dy, double* a,
                                      double* dh) {
  const int64_t items = c.total_c * c.h_kv * c.m;
  for (int64_t it = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; it < items;
       it += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = it % c.m, g = (it / c.m) % c.h_kv, ci = it / (c.m * c.h_kv);
    bwd::mlp_hidden_item<T, BwdLoad>(c, p, dy, ci, g, j, a, dh);
  }
}

template <class T>
__global__ void bwd_phi_dx_kernel(bwd::Shape c, bwd::PhiView<T> p, const double* dy,
                                  const double* dh, double* dx) {
  const int64_t width = c.l * p.dim, items = c.total_c * c.h_kv * width;
  for (int64_t it = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; it < items;
       it += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = it % width, g = (it / width) % c.h_kv, ci = it / (width * c.h_kv);
    dx[it] = bwd::phi_dx_item<T, BwdLoad>(c, p, dy, dh, ci, g, r);
  }
}

template <class T>
__global__ void bwd_phi_param_kernel(bwd::Shape c, bwd::PhiView<T> p, const double* dy,
                                     const double* dx, const double* a, const double* dh, int which,
                                     int64_t items, T* out) {
  for (int64_t it = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; it < items;
       it += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[it] = from_f64<T>(bwd::phi_param_item<T, BwdLoad>(c, p, dy, dx, a, dh, which, it));
}

}  // namespace

template <class T>
void launch_bwd_phi(const bwd::Shape& c, const bwd::PhiView<T>& p, const double* dy, double* dx,
                    double* a, double* dh, T* const dparam[5], cudaStream_t stream,
                    const std::string& ctx) {
  if (c.phi == 0 || c.total_c * c.h_kv == 0) return;
  if (c.phi == 2) {
    bwd_mlp_hidden_kernel<T>
        <<<bwd_grid(c.total_c * c.h_kv * c.m), 128, 0, stream>>>(c, p, dy, a, dh);
    check_launch("bwd_mlp_hidden_kernel", ctx);
  }
  bwd_phi_dx_kernel<T>
      <<<bwd_grid(c.total_c * c.h_kv * c.l * p.dim), 128, 0, stream>>>(c, p, dy, dh, dx);
  check_launch("bwd_phi_dx_kernel", ctx);
  for (int which = 0; which < 5; ++which) {
    const int64_t items = bwd::phi_param_size(c, p.dim, which);
    if (items == 0) continue;
    bwd_phi_param_kernel<T>
        <<<bwd_grid(items), 128, 0, stream>>>(c, p, dy, dx, a, dh, which, items, dparam[which]);
    check_launch("bwd_phi_param_kernel", ctx);
  }
}

#define NSA_INST(T)                                                                         \
  template void launch_bwd_phi<T>(const bwd::Shape&, const bwd::PhiView<T>&, const double*, \
                                  double*, double*, double*, T* const[5], cudaStream_t,     \
                                  const std::string&);
NSA_INST(float)
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
