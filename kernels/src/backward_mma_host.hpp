// Host side of the tensor-core backward (docs/kernels.md, "Backward"): which configs take it, its
// work tables and scratch, and the launch order of one branch's sides. Used by backward_host.cpp.
#pragma once

#include <array>
#include <cstddef>
#include <string>

#include "backward_items.hpp"
#include "backward_mma_launch.hpp"
#include "device_buffer.hpp"
#include "nsa/ref/config.hpp"

namespace nsa::cuda::detail {

// True when the config takes the tensor-core backward: fp16 / bf16, d_k and d_v in {64, 128},
// top_n at most kMmaBwdSlcMaxList. Everything else runs the fp64 kernels.
bool mma_backward_fits(const nsa::ref::ValidConfig& vc);

// CTAs that share one key tile's query chunks on branch b's key side (docs/kernels.md): enough
// that the longest tile's share is near 64 chunks of 64 vectors, at most 32 (compression) or 8
// (selection: the partial sums are per token); 1 for the window, whose tiles are short.
int64_t mma_key_splits(const nsa::ref::ValidConfig& vc, int b);

// Device scratch bytes of the tensor-core path (on top of what both paths share): per enabled
// branch the forward's o_b and lse_b, dO_b, D_b and lse_b log2 e; the fp32 dq; the key side's
// split partial sums and counters (the largest branch's); the work tables.
std::size_t mma_backward_scratch_bytes(const nsa::ref::ValidConfig& vc);

// What the kernels read and write, device pointers in T (null where a branch is off).
template <class T>
struct MmaBackwardIo {
  const T* q = nullptr;
  const T* k[3] = {};  // the branch's keys: [0] the compressed blocks
  const T* v[3] = {};
  const T* gate[3] = {};
  const T* d_o = nullptr;
  const T* o[3] = {};        // the forward's branch outputs
  const float* lse[3] = {};  // the forward's fp32 lse per branch
  const int32_t* idx = nullptr;
  T* dq = nullptr;
  T* dg[3] = {};
  double* dk[3] = {};  // per branch [key rows, h_kv, d_k]: compressed blocks for [0]
  double* dv[3] = {};
};

template <class T>
class MmaBackward {
 public:
  // sh: the device Shape (tables on the device already).
  MmaBackward(const nsa::ref::ValidConfig& vc, const bwd::Shape& sh, const std::string& ctx);
  // The query side in launch order: the row quantities and dg (prep), each enabled branch's
  // share of dq (dq, branch order cmp, slc, win), dq rounded once into io.dq (finish_dq).
  void prep(const MmaBackwardIo<T>& io, cudaStream_t stream);
  void dq(int b, const MmaBackwardIo<T>& io, cudaStream_t stream);
  void finish_dq(const MmaBackwardIo<T>& io, cudaStream_t stream);
  // dK, dV of branch b into io.dk[b], io.dv[b] (after prep()).
  void keys(int b, const MmaBackwardIo<T>& io, const bwd::SlcIndex& si, cudaStream_t stream);

 private:
  MmaBwdArgs<T> args(int b, const MmaBackwardIo<T>& io) const;
  bwd::Shape sh_;
  std::string ctx_;
  int64_t nq_ = 0, total_q_ = 0;
  int64_t row_items_ = 0, key_items_[3] = {0, 0, 0}, splits_[3] = {1, 1, 1};
  bool wgmma_ = false;  // the compression's and window's dq on the Hopper kernel
  int64_t wg_row_items_ = 0, pair_items_[3] = {0, 0, 0};
  DeviceBuffer cu_rows_, cu_keys_[3], cu_wg_rows_, cu_pairs_[3];
  std::array<DeviceBuffer, 3> dob_, dd_, lse2_;
  DeviceBuffer dq32_, part_, arrived_;
};

}  // namespace nsa::cuda::detail
