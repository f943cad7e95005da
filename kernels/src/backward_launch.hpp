// Launchers of the backward kernels (backward_query.cu, backward_keys.cu, backward_index.cu),
// seen by the host code (backward_host.cpp). C++17 and CUDA runtime headers only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "backward_items.hpp"

namespace nsa::cuda::detail {

// Widening of a stored value to fp64, for the device and the host side of the items.
struct BwdLoad {
  static NSA_HD double get(float x) { return x; }
  static NSA_HD double get(__half x) { return static_cast<double>(__half2float(x)); }
  static NSA_HD double get(__nv_bfloat16 x) { return static_cast<double>(__bfloat162float(x)); }
};

// Blocks of 128 threads for one thread per item, grid-stride beyond 2^20 blocks.
inline unsigned bwd_grid(int64_t items) {
  const int64_t want = (items + 127) / 128;
  return static_cast<unsigned>(want < (int64_t{1} << 20) ? want : (int64_t{1} << 20));
}

// Query side, one thread per (row, query head): lse[b], D[b] (fp64 [total_q, h_q]) for the key
// side, dg[b] and dq rounded once to T; dq_acc is fp64 scratch [total_q, h_q, d_k].
template <class T>
void launch_bwd_query(const bwd::Shape& c, const bwd::Tensors<T>& x, double* const lse[3],
                      double* const D[3], double* const dg_acc[3], double* dq_acc, T* const dg[3],
                      T* dq, cudaStream_t stream, const std::string& ctx);

// Key side of branch b, one thread per (key row, KV head): fp64 dK/dV of every key row
// ([total_c or total_k, h_kv, d_k / d_v]) into dk_acc, dv_acc.
template <class T>
void launch_bwd_keys(int b, const bwd::Shape& c, const bwd::Tensors<T>& x, const bwd::RowStats& st,
                     const bwd::SlcIndex& si, double* dk_acc, double* dv_acc, cudaStream_t stream,
                     const std::string& ctx);

// phi = linear / mlp backward of one tensor (K or V, width p.dim) from its blocks' gradients dy
// [total_c, h_kv, dim]: dx [total_c, h_kv, l dim] (fp64) for the finish, mlp's a and dh
// [total_c, h_kv, m] (fp64 scratch), and the parameter gradients dparam[0..4] (pos, w1, b1, w2, b2;
// null where phi has none) rounded once to T. No-op for mean.
template <class T>
void launch_bwd_phi(const bwd::Shape& c, const bwd::PhiView<T>& p, const double* dy, double* dx,
                    double* a, double* dh, T* const dparam[5], cudaStream_t stream,
                    const std::string& ctx);

// The gradients of the token tensors rounded once to T, per enabled branch (the compressed one
// through phi = mean from the blocks' gradients blk), and with shared K/V (shared != null) the
// sum over the branches: tensors of width dim, acc[b] the fp64 token gradients of b = 1, 2.
template <class T>
void launch_bwd_finish(const bwd::Shape& c, int64_t dim, const double* blk,
                       const double* const acc[3], T* const out[3], T* shared, cudaStream_t stream,
                       const std::string& ctx);

// dst[i] = src[i] rounded once to T for i < count (a given compressed cache's gradients).
template <class T>
void launch_bwd_round(const double* src, int64_t count, T* dst, cudaStream_t stream,
                      const std::string& ctx);

// The selection's inverted index: every (row, KV head, slot) entry keyed by slc_entry_key, then
// stably sorted by key (CUB radix sort; deterministic). Scratch: keys/rows in and out
// ([total_q h_kv n] each) and CUB's temporary storage; sizes from bwd_index_temp_bytes.
std::size_t bwd_index_temp_bytes(int64_t entries, int end_bit);
void launch_bwd_index(const bwd::Shape& c, const int32_t* idx, uint64_t* keys_tmp,
                      int64_t* rows_tmp, uint64_t* keys, int64_t* rows, void* temp,
                      std::size_t temp_bytes, int end_bit, cudaStream_t stream,
                      const std::string& ctx);

}  // namespace nsa::cuda::detail
