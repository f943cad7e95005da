// Hopper warpgroup MMA (wgmma.mma_async, sm_90a) with operands in shared memory laid out in the
// 128-byte swizzle, and the mbarrier / TMA primitives that fill them. Only compiled for sm_90a
// (attention_wgmma.cu); the rest of the kernels stay on portable mma.sync.
//
// Shared-memory layout of a [ROWS][D] operand tile (D a multiple of 64 elements of 2 bytes):
// D / 64 column atoms, each [ROWS][64] elements with 128-byte rows, stored one after the other
// (atom a at byte a * ROWS * 128). Inside an atom the 16-byte chunk c of row r sits at chunk
// c ^ (r % 8) of its row: the hardware's 128-byte swizzle, which spreads the 8 rows of every
// 8 x 16-byte core matrix over all banks. Atoms must start on 1024-byte boundaries.
//
// Descriptors (PTX ISA "matrix descriptor"): start address, leading and stride byte offsets
// (all >> 4) and the swizzle mode. For this layout:
//   K-major operand (A = Q, B = K; the reduction dimension runs along the rows): 8-row groups
//     1024 bytes apart (stride offset); the k16 slice kk starts at atom kk / 4, byte (kk % 4) * 32.
//   MN-major B (V: keys are the reduction dimension, d_v the columns; wgmma's transpose-B): the
//     16-key slice kk starts at byte kk * 16 * 128; 64-column atoms ROWS * 128 bytes apart
//     (leading offset), 8-key groups 1024 bytes apart (stride offset).
#pragma once

#include <cstdint>
#include <type_traits>

#include "mma.cuh"

namespace nsa::cuda::detail {

constexpr int kSwAtomCols = 64;  // elements per 128-byte row of a swizzle atom (2-byte types)

// Byte offset of 16-byte chunk cc (of D / 8) of row r in a [ROWS][D] swizzled tile.
template <int ROWS>
__device__ __forceinline__ uint32_t sw128_offset(int r, int cc) {
  return static_cast<uint32_t>((cc >> 3) * ROWS * 128 + r * 128 + (((cc & 7) ^ (r & 7)) << 4));
}

__device__ __forceinline__ uint64_t sw128_desc(const void* smem, uint32_t lead_bytes,
                                               uint32_t stride_bytes) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) |
         static_cast<uint64_t>((lead_bytes >> 4) & 0x3FFF) << 16 |
         static_cast<uint64_t>((stride_bytes >> 4) & 0x3FFF) << 32 | (uint64_t{1} << 62);
}

// The descriptor d with its start address moved by `bytes` (a multiple of 16 inside the same
// shared-memory allocation: the 14-bit address field does not overflow).
__device__ __forceinline__ uint64_t desc_add(uint64_t d, int bytes) {
  return d + static_cast<uint64_t>(bytes >> 4);
}

// Orders this thread's shared-memory writes (cp.async included) before the tensor cores' reads
// through the async proxy; each writing thread, before the barrier.
__device__ __forceinline__ void fence_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Tells the compiler the registers may change here (an async wgmma writes them): no value of
// them is reused across this point.
template <int N>
__device__ __forceinline__ void fence_regs(float (&r)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(r[j][e])::"memory");
}

// ---- mbarriers and TMA (the bulk tensor copy engine) ------------------------------------------

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count)
               : "memory");
}
// Makes initialized mbarriers visible to the async proxy (TMA) before their first use.
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
}
// One arrival that also announces `bytes` of TMA traffic the phase must wait for.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)),
               "r"(bytes)
               : "memory");
}
// Waits until the phase with the given parity has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  const uint32_t a = smem_addr(bar);
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(a), "r"(parity)
        : "memory");
  } while (!done);
}
// TMA: the box at coordinates (c0, c1, c2) of a 3-D tensor map into shared memory at dst,
// completing `bytes` on the mbarrier. Out-of-range elements arrive as zeros.
__device__ __forceinline__ void tma_load_3d(void* dst, const void* tmap, int c0, int c1, int c2,
                                            uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(tmap)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_addr(bar))
      : "memory");
}
// Moves this warpgroup's register allocation down / up (sm_90a; needs a register cap at entry).
template <int N>
__device__ __forceinline__ void set_max_regs_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void set_max_regs_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
// Barrier among the first `threads` threads of the CTA only (named barrier 1).
__device__ __forceinline__ void named_sync(int threads) {
  asm volatile("bar.sync 1, %0;\n" ::"r"(threads) : "memory");
}
// Barrier `id` (1..15) among `threads` threads, whole warps (e.g. one warpgroup).
__device__ __forceinline__ void named_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

#define NSA_WG_D8(d, j) "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
#define NSA_WG_D64(d)                                                                  \
  NSA_WG_D8(d, 0), NSA_WG_D8(d, 1), NSA_WG_D8(d, 2), NSA_WG_D8(d, 3), NSA_WG_D8(d, 4), \
      NSA_WG_D8(d, 5), NSA_WG_D8(d, 6), NSA_WG_D8(d, 7)
#define NSA_WG_D128(d)                                                                 \
  NSA_WG_D64(d), NSA_WG_D8(d, 8), NSA_WG_D8(d, 9), NSA_WG_D8(d, 10), NSA_WG_D8(d, 11), \
      NSA_WG_D8(d, 12), NSA_WG_D8(d, 13), NSA_WG_D8(d, 14), NSA_WG_D8(d, 15)
#define NSA_WG_REGS32                                                                           \
  "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24," \
  "%25,%26,%27,%28,%29,%30,%31}"
#define NSA_WG_REGS64                                                                            \
  "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,"  \
  "%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47," \
  "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}"

// The accumulate predicate of the register-A forms (always on): operand 37 or 69.
#define NSA_WG_PRED "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
#define NSA_WG_PRED64 "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"

// d (+)= A B for a 64 x 64 tile: A and B K-major in shared memory; accumulate (d += ...) when
// `acc`, else d = A B. d[j] holds n8 column block j in the mma.sync C-fragment layout of the
// thread's warp (rows 16 (warp % 4) + lane / 4, + 8).
template <class T>
__device__ __forceinline__ void wgmma_64x64_ss(float (&d)[8][4], uint64_t da, uint64_t db,
                                               bool acc) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " NSA_WG_REGS32
        ", %32, %33, p, 1, 1, 0, 0;\n}\n"
        : NSA_WG_D64(d)
        : "l"(da), "l"(db), "r"(static_cast<int>(acc)));
  } else {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " NSA_WG_REGS32
        ", %32, %33, p, 1, 1, 0, 0;\n}\n"
        : NSA_WG_D64(d)
        : "l"(da), "l"(db), "r"(static_cast<int>(acc)));
  }
}

// d += A B for a 64 x N tile (N = 8 NJ, 64 or 128): A (16 keys of P) from registers in the
// mma.sync A-fragment layout of the thread's warp, B MN-major in shared memory (transposed).
template <class T, int NJ>
__device__ __forceinline__ void wgmma_rs_tb(float (&d)[NJ][4], const uint32_t (&a)[4],
                                            uint64_t db) {
  static_assert(NJ == 8 || NJ == 16, "N = 64 or 128");
  if constexpr (NJ == 8) {
    if constexpr (std::is_same_v<T, __nv_bfloat16>)
      asm volatile(NSA_WG_PRED "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " NSA_WG_REGS32
                               ", {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
                   : NSA_WG_D64(d)
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
    else
      asm volatile(NSA_WG_PRED "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " NSA_WG_REGS32
                               ", {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
                   : NSA_WG_D64(d)
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
  } else {
    if constexpr (std::is_same_v<T, __nv_bfloat16>)
      asm volatile(NSA_WG_PRED64
                   "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " NSA_WG_REGS64
                   ", {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
                   : NSA_WG_D128(d)
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
    else
      asm volatile(NSA_WG_PRED64
                   "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 " NSA_WG_REGS64
                   ", {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
                   : NSA_WG_D128(d)
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
  }
}

#undef NSA_WG_D8
#undef NSA_WG_D64
#undef NSA_WG_D128
#undef NSA_WG_REGS32
#undef NSA_WG_REGS64
#undef NSA_WG_PRED
#undef NSA_WG_PRED64

}  // namespace nsa::cuda::detail
