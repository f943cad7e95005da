// Launchers of the tensor-core backward (backward_mma_query.cu, backward_mma_keys.cu), seen by
// the host code (backward_host.cpp). C++17 and CUDA runtime headers only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "backward_items.hpp"

namespace nsa::cuda::detail {

constexpr int kMmaBwdThreads = 128;  // 4 warps of 16 query vectors or 16 keys each
constexpr int kMmaBwdTile = 64;      // vectors or keys per CTA tile (row chunks, key tiles)
constexpr int kMmaBwdSlcMaxList = 128;
constexpr int kWgmmaBwdVectors = 128;  // vectors per CTA of the Hopper dq kernel  // largest top_n:
                                       // the selection dq keeps a warp's list

// Calls f(DK, DV) (std::integral_constant) for the head dims the tensor-core backward is built
// for, d_k and d_v each 64 or 128, and returns true; false otherwise (the fp64 kernels run).
template <class F>
bool with_bwd_head_dims(int64_t dk, int64_t dv, F&& f) {
#define NSA_CASE(DK_, DV_)                                                     \
  if (dk == DK_ && dv == DV_) {                                                \
    f(std::integral_constant<int, DK_>{}, std::integral_constant<int, DV_>{}); \
    return true;                                                               \
  }
  NSA_CASE(64, 64)
  NSA_CASE(64, 128)
  NSA_CASE(128, 64)
  NSA_CASE(128, 128)
#undef NSA_CASE
  return false;
}

// One branch's launch. Key tensors are the branch's tokens (selection, window) or its compressed
// blocks (compression), [rows, h_kv, d].
template <class T>
struct MmaBwdArgs {
  bwd::Shape c;
  const T* q;               // [total_q, h_q, d_k]
  const T* k;               // the branch's keys
  const T* v;               // the branch's values
  const T* dob;             // dO_b = g_b dO rounded to T, [total_q, h_q, d_v]
  const float* lse2;        // lse_b log2(e), +inf where the key set is empty, [total_q, h_q]
  const float* dd;          // D_b, [total_q, h_q]
  const int32_t* idx;       // selection lists [total_q, h_kv, n]
  bwd::SlcIndex si;         // the selection's inverted index (key side)
  const int64_t* cu_items;  // per-sequence prefix of CTA items (row chunks or key tiles)
  float* dq;                // fp32 dq [total_q, h_q, d_k], added to (each branch adds its share)
  double* dk;               // the branch's dK [rows, h_kv, d_k] (written)
  double* dv;               // the branch's dV [rows, h_kv, d_v] (written)
  int64_t splits;           // key side: CTAs sharing one key tile's query chunks (grid z)
  float* part;       // key side, splits > 1: partial sums [items h_kv, splits, 64, d_k + d_v]
  int* arrived;      // key side, splits > 1: CTAs done per (item, KV head), zeroed
  float scale;       // softmax scale
  float scale_log2;  // scale log2(e)
};

// Per (row, query head) and enabled branch b: dob[b] = g_b dO rounded to T, dd[b] = D_b =
// rowsum(dob[b] o[b]) (fp32), lse2[b] = lse[b] log2 e (+inf for -inf), dg[b] = <dO, o[b]>
// rounded once; o[b] and lse[b] are the forward's branch outputs and fp32 lse.
template <class T>
void launch_bwd_prep(const bwd::Shape& c, const T* d_o, const T* const gate[3], const T* const o[3],
                     const float* const lse[3], T* const dob[3], float* const dd[3],
                     float* const lse2[3], T* const dg[3], cudaStream_t stream,
                     const std::string& ctx);

// dq += branch b's share (a.dq, fp32). items: row chunks of 64 vectors summed over sequences
// (compression, window; a.cu_items their prefix) or total_q ceil(G / 16) warps (selection).
// False when the head dims have no tensor-core instance.
template <class T>
bool launch_bwd_dq_mma(int b, const MmaBwdArgs<T>& a, int64_t items, cudaStream_t stream,
                       const std::string& ctx);

// The same for the compression (b = 0) and the window (b = 2) on Hopper's wgmma
// (backward_wgmma_query.cu, sm_90a machine code only; the caller asks only on a compute
// capability 9.0 device): items CTAs of 128 vectors, a.cu_items their per-sequence prefix
// (ceil(t_q G / 128) each). False where it does not apply (the selection, head dims, h_kv past
// 65535, key tensors of 2^31 rows or more); the caller then runs launch_bwd_dq_mma.
template <class T>
bool launch_bwd_dq_wgmma(int b, const MmaBwdArgs<T>& a, int64_t items, cudaStream_t stream,
                         const std::string& ctx);

// dK, dV of branch b (a.dk, a.dv, fp64 storage of fp32 sums): items key tiles summed over
// sequences (a.cu_items their prefix): ceil(keys / 64) per sequence, for the selection
// ceil(t_k / l') ceil(l' / 64).
template <class T>
bool launch_bwd_dkv_mma(int b, const MmaBwdArgs<T>& a, int64_t items, cudaStream_t stream,
                        const std::string& ctx);

// The same for the compression (b = 0) and the window (b = 2) on Hopper's wgmma
// (backward_wgmma_keys.cu, sm_90a only): items CTAs of 128 keys (two 64-key tiles), a.cu_items
// their per-sequence prefix (ceil(tiles / 2) each), cu_tiles the 64-key tiles' prefix (which
// numbers the split partial sums as on mma.sync). False where it does not apply.
template <class T>
bool launch_bwd_dkv_wgmma(int b, const MmaBwdArgs<T>& a, int64_t items, const int64_t* cu_tiles,
                          cudaStream_t stream, const std::string& ctx);

// dq rounded once to T from the fp32 sum.
template <class T>
void launch_bwd_dq_finish(int64_t count, const float* dq32, T* dq, cudaStream_t stream,
                          const std::string& ctx);

}  // namespace nsa::cuda::detail
