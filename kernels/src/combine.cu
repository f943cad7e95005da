// Gated combination: o[t,h] = sum over enabled branches of g_b[t,h] * o_b[t,h], where o_b are
// the stored (dtype-rounded) branch outputs; accumulated in fp32 and rounded once.
#include "device.cuh"

namespace nsa::cuda::detail {

namespace {

template <class T>
struct Triple {
  const T* p[3];
};

template <class T>
__global__ void combine_kernel(DevCfg c, Triple<T> ob, Triple<T> gate, T* __restrict__ o) {
  const int64_t total = c.total_q * c.h_q * c.d_v;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t rh = e / c.d_v;
    float acc = 0.0f;
#pragma unroll
    for (int b = 0; b < 3; ++b)
      if (c.enable[b]) acc += to_f(gate.p[b][rh]) * to_f(ob.p[b][e]);
    o[e] = from_f<T>(acc);
  }
}

}  // namespace

template <class T>
void launch_combine(const DevCfg& c, const T* const o_b[3], const T* const gate[3], T* o,
                    cudaStream_t stream, const std::string& ctx) {
  const int64_t total = c.total_q * c.h_q * c.d_v;
  if (total == 0) return;
  const int64_t want = (total + 255) / 256;
  const unsigned grid = static_cast<unsigned>(want < (1 << 20) ? want : (1 << 20));
  combine_kernel<T><<<grid, 256, 0, stream>>>(c, Triple<T>{{o_b[0], o_b[1], o_b[2]}},
                                              Triple<T>{{gate[0], gate[1], gate[2]}}, o);
  check_launch("combine_kernel", ctx);
}

#define NSA_INST(T)                                                                        \
  template void launch_combine<T>(const DevCfg&, const T* const[3], const T* const[3], T*, \
                                  cudaStream_t, const std::string&);
NSA_INST(float)
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
