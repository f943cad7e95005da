// Warp-level tensor-core and async-copy primitives of the attention kernels (sm_80+ PTX):
// mma.sync m16n8k16 with fp32 accumulation, ldmatrix, cp.async.
#pragma once

#include <cstdint>
#include <type_traits>

#include "device.cuh"

namespace nsa::cuda::detail {

constexpr float kLog2e = 1.4426950408889634f;

// The (d_k, d_v) pairs the tensor-core kernels are instantiated for; X(DK, DV) per pair.
#define NSA_MMA_HEAD_DIMS(X) \
  X(64, 64) X(128, 64) X(128, 128) X(192, 64) X(192, 128) X(256, 64) X(256, 128)

// Calls f(DK, DV) with std::integral_constant arguments for the instantiated pair equal to
// (dk, dv) and returns true; false when no pair matches (host side of the launchers).
template <class F>
bool with_head_dims(int64_t dk, int64_t dv, F&& f) {
#define NSA_CASE(DK_, DV_)                                                     \
  if (dk == DK_ && dv == DV_) {                                                \
    f(std::integral_constant<int, DK_>{}, std::integral_constant<int, DV_>{}); \
    return true;                                                               \
  }
  NSA_MMA_HEAD_DIMS(NSA_CASE)
#undef NSA_CASE
  return false;
}

template <class T>
__device__ __forceinline__ uint32_t pack2(float x, float y);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float x, float y) {
  __nv_bfloat162 h = __floats2bfloat162_rn(x, y);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float x, float y) {
  __half2 h = __floats2half2_rn(x, y);
  return *reinterpret_cast<uint32_t*>(&h);
}

template <class T>
__device__ __forceinline__ void mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma<__nv_bfloat16>(float c[4], const uint32_t a[4], uint32_t b0,
                                                   uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma<__half>(float c[4], const uint32_t a[4], uint32_t b0,
                                            uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldsm_x4(uint32_t r[4], const void* p) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const void* p) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
// 16-byte async copy; when !pred nothing is read and the destination is zero-filled.
__device__ __forceinline__ void cp16(void* dst, const void* src, bool pred) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  const int n = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(n));
}
// Copies rows [start, start + ROWS) of head g of a [rows][h_kv][D] tensor into shared memory
// (row stride `stride` elements) with NTHR threads (tid: this thread's index among them); rows
// outside [0, key_rows) are zero-filled. When NTHR is a multiple of the 16-byte chunks of a row,
// each thread keeps one chunk column and steps its 64-bit offset, with no division per copy.
template <class T, int D, int ROWS, int NTHR>
__device__ __forceinline__ void copy_rows(T* dst, int stride, const T* src, int64_t start,
                                          int64_t key_rows, int64_t h_kv, int64_t g, int tid) {
  constexpr int kc = D / 8;
  if constexpr (NTHR % kc == 0) {
    constexpr int kPerPass = NTHR / kc;
    const int cc = tid % kc;
    int rr = tid / kc;
    int64_t u = start + rr, off = (u * h_kv + g) * D + cc * 8;
    const int64_t step = kPerPass * h_kv * D;
#pragma unroll
    for (; rr < ROWS; rr += kPerPass, u += kPerPass, off += step) {
      const bool ok = u >= 0 && u < key_rows;
      cp16(dst + rr * stride + cc * 8, ok ? src + off : src, ok);
    }
  } else {
    for (int e = tid; e < ROWS * kc; e += NTHR) {
      const int rr = e / kc, cc = e % kc;
      const int64_t u = start + rr;
      const bool ok = u >= 0 && u < key_rows;
      cp16(dst + rr * stride + cc * 8, ok ? src + (u * h_kv + g) * D + cc * 8 : src, ok);
    }
  }
}

__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n"); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace nsa::cuda::detail
