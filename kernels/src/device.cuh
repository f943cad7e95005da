// Device-side helpers shared by every kernel: dtype conversion, sequence lookup, reductions.
#pragma once

#include "launch.hpp"

namespace nsa::cuda::detail {

template <class T>
__device__ __forceinline__ float to_f(T x);
template <>
__device__ __forceinline__ float to_f<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ float to_f<__half>(__half x) {
  return __half2float(x);
}
template <>
__device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

template <class T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half from_f<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// One rounding from fp64 to the storage dtype (fp32 first would round twice).
template <class T>
__device__ __forceinline__ T from_f64(double x);
template <>
__device__ __forceinline__ float from_f64<float>(double x) {
  return static_cast<float>(x);
}
template <>
__device__ __forceinline__ __half from_f64<__half>(double x) {
  return __double2half(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f64<__nv_bfloat16>(double x) {
  return __double2bfloat16(x);
}

// Sequence holding packed row r of the prefix table cu (num+1 entries): the last s with
// cu[s] <= r (empty sequences share their offset with the next one).
__device__ __forceinline__ int64_t seq_of(const int64_t* cu, int64_t num, int64_t r) {
  int64_t lo = 0, hi = num;  // answer in [0, num)
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (cu[mid] <= r)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

__device__ __forceinline__ int64_t num_cmp_blocks(const DevCfg& c, int64_t len) {
  return len < c.l ? 0 : (len - c.l) / c.d + 1;
}
__device__ __forceinline__ int64_t visible_cmp(const DevCfg& c, int64_t t) {
  return num_cmp_blocks(c, c.visibility == 0 ? t + 1 : t);
}

// Sum over the 32 lanes (butterfly: every lane gets the total).
template <class R>
__device__ __forceinline__ R warp_sum(R x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

inline unsigned blocks_for(int64_t items, int per_block) {
  return static_cast<unsigned>((items + per_block - 1) / per_block);
}

}  // namespace nsa::cuda::detail
