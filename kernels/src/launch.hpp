// Host-visible kernel interface: the flattened config (DevCfg) that kernels take by value, the
// phi parameter view and every launcher. C++17 and CUDA runtime headers only, so both the host
// C++20 files and the nvcc-compiled kernels include it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace nsa::cuda::detail {

// Throws nsa::cuda::CudaError naming `what` (kernel or call) and the context when err is set.
void check(cudaError_t err, const char* what, const std::string& context);
// Throws nsa::cuda::CudaError with this message (for errors of CUDA libraries such as cuBLAS).
[[noreturn]] void throw_cuda_error(const std::string& message);
// Checks the last launch error of kernel `what`.
void check_launch(const char* what, const std::string& context);
// Whether the Hopper wgmma kernels run (forward and backward): the device is compute capability
// 9.0, where their sm_90a machine code runs, and NSA_CUDA_WGMMA is not 0 (that switch keeps every
// kernel on mma.sync: comparisons, tests of that path).
bool wgmma_enabled();

// Per-sequence table on the device (64-bit everywhere).
struct DevSeq {
  int64_t q_begin, k_begin, t_q, t_k, c_begin;  // c_begin: first row of its compressed blocks
};

// Everything a kernel needs to know about the config, flattened.
struct DevCfg {
  int64_t total_q, total_k, total_c;  // total_c: compressed rows over all sequences
  int64_t h_q, h_kv, group, d_k, d_v;
  int64_t l, d, lp, n, n_init, n_local, w;
  int64_t phi_hidden;
  int64_t nc_max, ns_max;
  int64_t num_seqs;
  float scale;       // softmax scale rounded to fp32 (tensor-core path)
  double scale_f64;  // the config's scale (fp64 paths)
  int qk_split;      // 1: S = Q K^T summed slice by slice in fp32 (attention_mma.cu)
  int slc_union;     // 1: selection on the CTA-wide union kernel even where the warp kernel fits
  int slc_stages;    // key sub-tiles in flight per warp in the warp selection kernel (2..4)
  int wgmma;         // 1: compressed, window and probs passes on the Hopper wgmma kernel
  int phi, act, visibility, mapping, reduce, forced, tie, slc_causal, policy, window_keys;
  bool enable[3];
  const DevSeq* seqs;   // [num_seqs]
  const int64_t* cu_q;  // [num_seqs + 1]
  const int64_t* cu_c;  // [num_seqs + 1] compressed-row offsets
};

// ---- decode-shaped batches (attention_decode.cu) ----------------------------------------------
// Split-K kernels where every sequence has few query rows (the compressed and window branches and
// the probs pass in attention_decode.cu, the selection in attention_slc_warp.cu): each item is up
// to 16 / G consecutive rows of one sequence (its G heads of one KV group fill an m16 block), and
// its keys (a range, or the union of its rows' selected blocks) are cut into chunks walked by
// independent warps, merged afterwards in chunk order (flash-decoding).
struct DecodeItem {
  int64_t row0;  // first packed query row
  int64_t rows;  // consecutive rows of sequence `seq`, at most decode_rows_per_item(G)
  int64_t seq;
};
constexpr int64_t kDecodeMaxRows = 16;  // the largest T_q of a sequence the path is chosen for
__host__ __device__ constexpr int64_t decode_rows_per_item(int64_t G) {
  return G >= 16 ? 1 : 16 / G;
}
struct DecodeArgs {
  const DecodeItem* items = nullptr;
  int64_t n_items = 0;
  int64_t chunk[3] = {0, 0, 0};   // keys per chunk (compressed, window); selected blocks (slc)
  int64_t chunks[3] = {0, 0, 0};  // chunks per item (>= 1); with 1 the kernel writes o directly
  float* part_o = nullptr;        // [n_items, h_kv, chunks, 16, d_v] fp32 partial outputs
  float* part_lse = nullptr;      // [n_items, h_kv, chunks, 16] their lse (natural units)
  // Set: the compressed branch also stores its scores z = scale q.k (natural units) at
  // z[row, head, block] ([total_q, h_q, nc_max], visible blocks only), and the probs pass reads
  // them instead of the compressed keys (launch_probs_from_scores).
  float* z = nullptr;
  const int64_t* seq_item = nullptr;  // [num_seqs] each sequence's first item
  // 3: the compressed and window kernels built for three resident CTAs per SM (d_k, d_v <= 128).
  int min_blocks = 1;
  // 2: their two-stage cp.async ring (d_k, d_v <= 128) instead of the deepest that fits.
  int stages = 0;
};

// Random fill for benchmarks; dtype 0 fp32, 1 fp16, 2 bf16.
void launch_fill(void* dev, int64_t count, int dtype, uint64_t seed, float lo, float hi);

// phi parameters of one tensor (K or V) on the device, in the input dtype.
template <class T>
struct PhiDev {
  const T* pos = nullptr;
  const T* w1 = nullptr;
  const T* b1 = nullptr;
  const T* w2 = nullptr;
  const T* b2 = nullptr;
};

class PhiGemm;  // phi_gemm.hpp: cuBLAS handle and scratch of linear / mlp phi

// phi over every compressed block: mean by a kernel, linear / mlp through `gemm` (prepared).
template <class T>
void launch_compress(const DevCfg& c, const PhiDev<T>& phi, const T* x, int64_t dim, T* out,
                     PhiGemm& gemm, cudaStream_t stream, const std::string& ctx);

// Simple path, every dtype: branch 0 = compressed (k/v are the compressed rows), 1 = selection
// (idx: [total_q, h_kv, n]), 2 = window.
template <class T>
void launch_attend_simple(int branch, const DevCfg& c, const T* q, const T* k, const T* v,
                          const int32_t* idx, T* o, float* lse, cudaStream_t stream,
                          const std::string& ctx);

// Tensor-core path (fp16/bf16, d_k in {64,128,192,256}, d_v in {64,128}); returns false when
// the config is outside it (the caller then takes the simple path).
template <class T>
bool launch_attend_mma(int branch, const DevCfg& c, const T* q, const T* k, const T* v,
                       const int32_t* idx, T* o, float* lse, cudaStream_t stream,
                       const std::string& ctx);

// Tensor-core selection with one independent warp per 16 query vectors (fp16/bf16, G dividing
// 16 or a multiple of 16, (16 / G) * n <= 256); returns false outside it.
// With `dec` (decode-shaped batches, attention_decode.cu's items): one warp per (item, chunk of
// chunk[1] blocks of the item's union), merged by launch_decode_merge.
template <class T>
bool launch_slc_warp(const DevCfg& c, const T* q, const T* k, const T* v, const int32_t* idx, T* o,
                     float* lse, cudaStream_t stream, const std::string& ctx,
                     const DecodeArgs* dec = nullptr);

// The same on Hopper's warpgroup MMA (attention_wgmma.cu) for branches 0 and 2 and the probs
// pass, fp16 and bf16 (instantiated for those only); false where it does not apply
// (DevCfg::wgmma off, selection, unsupported dims, key rows past 2^31).
template <class T>
bool launch_attend_wgmma(int branch, const DevCfg& c, const T* q, const T* k, const T* v, T* o,
                         float* lse, cudaStream_t stream, const std::string& ctx);
template <class T>
bool launch_probs_wgmma(const DevCfg& c, int64_t row0, int64_t rows, const T* q, const T* kc,
                        const float* lse_cmp, float* pg, cudaStream_t stream,
                        const std::string& ctx);

// Tensor-core probs pass (fp16/bf16, supported head dims): pg for rows [row0, row0 + rows);
// returns false when outside its configs.
template <class T>
bool launch_probs_mma(const DevCfg& c, int64_t row0, int64_t rows, const T* q, const T* kc,
                      const float* lse_cmp, float* pg, cudaStream_t stream, const std::string& ctx);

// ---- decode-shaped batches (attention_decode.cu; DecodeArgs above) ----------------------------
// Whether the decode kernels take the config's dtype T, G and head dims (G <= 16).
template <class T>
bool decode_fits(const DevCfg& c);
// Warps of the compressed / window decode kernel resident per SM (its occupancy: registers and
// shared memory), for the variant DecodeArgs::min_blocks and ::stages ask for; 0 where the dtype
// has no decode kernels.
template <class T>
int decode_resident_warps(const DevCfg& c, const DecodeArgs& a, const std::string& ctx);
// Branch 0 (compressed) or 2 (window), every row; false outside decode_fits. merge = false leaves
// the partials of several chunks unmerged (the caller runs launch_decode_merge, on another
// stream).
template <class T>
bool launch_attend_decode(int branch, const DevCfg& c, const DecodeArgs& a, const T* q, const T* k,
                          const T* v, T* o, float* lse, cudaStream_t stream, const std::string& ctx,
                          bool merge = true);
// pg of rows [row0, row0 + rows) from the scores the compressed branch stored in a.z and its lse:
// pg[row, g, i] = sum over the group's heads of exp(z - lse); with p_cmp also each head's term.
// With several compressed chunks the lse is merged from a's partials (lse_cmp is not read), so
// the branch's merge may run later or beside it.
void launch_probs_from_scores(const DevCfg& c, const DecodeArgs& a, int64_t row0, int64_t rows,
                              const float* lse_cmp, float* pg, float* p_cmp, cudaStream_t stream,
                              const std::string& ctx);
// Merges the partial outputs of branch `branch` (chunks[branch] > 1) into o and lse.
template <class T>
void launch_decode_merge(int branch, const DevCfg& c, const DecodeArgs& a, T* o, float* lse,
                         cudaStream_t stream, const std::string& ctx);
// The probs pass for rows [row0, row0 + rows) (pg as launch_group_probs); false outside.
template <class T>
bool launch_probs_decode(const DevCfg& c, const DecodeArgs& a, int64_t row0, int64_t rows,
                         const T* q, const T* kc, const float* lse_cmp, float* pg,
                         cudaStream_t stream, const std::string& ctx);

template <class T>
void launch_group_probs(const DevCfg& c, int64_t row0, int64_t rows, const T* q, const T* kc,
                        const float* lse_cmp, float* pg, float* p_cmp, cudaStream_t stream,
                        const std::string& ctx);
// Rows [row0, row0 + rows): pg holds that chunk only ([rows, h_kv, nc_max]).
void launch_map_scores(const DevCfg& c, int64_t row0, int64_t rows, const float* pg, float* scores,
                       cudaStream_t stream, const std::string& ctx);
void launch_topn(const DevCfg& c, const float* scores, int32_t* indices, cudaStream_t stream,
                 const std::string& ctx);
// Decode batches (scores_topn_decode.cu): the mapping and the top-n of rows [row0, row0 + rows)
// in one kernel, one CTA per (row, group), same scores and indices as launch_map_scores followed
// by launch_topn. It fits (scores_topn_decode_fits) where ns_max <= 2048 and the staged row and
// the scores take at most kDecodeTopnSmem bytes; launching a config that does not fit throws.
constexpr int64_t kDecodeTopnSmem = 160 * 1024;
bool scores_topn_decode_fits(const DevCfg& c);
void launch_scores_topn_decode(const DevCfg& c, int64_t row0, int64_t rows, const float* pg,
                               float* scores, int32_t* indices, cudaStream_t stream,
                               const std::string& ctx);

// o = sum over enabled branches of gate_b * o_b, rounded once to the dtype.
template <class T>
void launch_combine(const DevCfg& c, const T* const o_b[3], const T* const gate[3], T* o,
                    cudaStream_t stream, const std::string& ctx);

}  // namespace nsa::cuda::detail
