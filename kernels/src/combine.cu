// Gated combination: o[t,h] = sum over enabled branches of g_b[t,h] * o_b[t,h], where o_b are
// the stored (dtype-rounded) branch outputs; accumulated in fp32 and rounded once.
#include <cstdint>

#include "device.cuh"

namespace nsa::cuda::detail {

namespace {

template <class T>
struct Triple {
  const T* p[3];
};

// Eight elements of one (row, head) per thread in 16-byte accesses, 32-bit indices: the
// combination reads three branch outputs and writes one, so it runs at memory speed only when
// its accesses are wide. Needs d_v % 8 == 0, 16-byte aligned tensors and fewer than 2^31 chunks.
template <class T>
__global__ void combine_vec_kernel(DevCfg c, Triple<T> ob, Triple<T> gate, T* __restrict__ o,
                                   uint32_t chunks, uint32_t per_rh) {
  static_assert(sizeof(T) == 2, "8 elements in 16 bytes");
  for (uint32_t x = blockIdx.x * blockDim.x + threadIdx.x; x < chunks;
       x += gridDim.x * blockDim.x) {
    const uint32_t rh = x / per_rh;
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int b = 0; b < 3; ++b) {
      if (!c.enable[b]) continue;
      const float gb = to_f(gate.p[b][rh]);
      const uint4 raw = reinterpret_cast<const uint4*>(ob.p[b])[x];
      const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] += gb * to_f(e[i]);
    }
    uint4 out;
    T* r = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int i = 0; i < 8; ++i) r[i] = from_f<T>(acc[i]);
    reinterpret_cast<uint4*>(o)[x] = out;
  }
}

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
  auto grid_for = [](int64_t items) {  // 256 threads a block, grid-stride beyond 2^20 blocks
    const unsigned want = blocks_for(items, 256);
    return want < (1u << 20) ? want : (1u << 20);
  };
  if constexpr (sizeof(T) == 2) {
    bool aligned = reinterpret_cast<uintptr_t>(o) % 16 == 0;
    for (int b = 0; b < 3; ++b)
      if (c.enable[b]) aligned = aligned && reinterpret_cast<uintptr_t>(o_b[b]) % 16 == 0;
    const int64_t chunks = total / 8;
    if (aligned && c.d_v % 8 == 0 && chunks < (int64_t{1} << 31)) {
      combine_vec_kernel<T><<<grid_for(chunks), 256, 0, stream>>>(
          c, Triple<T>{{o_b[0], o_b[1], o_b[2]}}, Triple<T>{{gate[0], gate[1], gate[2]}}, o,
          static_cast<uint32_t>(chunks), static_cast<uint32_t>(c.d_v / 8));
      check_launch("combine_vec_kernel", ctx);
      return;
    }
  }
  combine_kernel<T><<<grid_for(total), 256, 0, stream>>>(c, Triple<T>{{o_b[0], o_b[1], o_b[2]}},
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
