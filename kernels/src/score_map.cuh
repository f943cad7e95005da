// The selection's block scores from the group probabilities pg (one row, one KV group), shared by
// map_scores_kernel (scores_topn.cu) and the decode batches' fused kernel (scores_topn_decode.cu).
// pg[i] is the sum over the group's heads of p_cmp for compressed block i; a candidate block j's
// free score sums the compressed blocks that the score mapping assigns to it, forced blocks may be
// scored as one per head (forced_mode score_one), and the group reduction divides by G for mean.
#pragma once

#include <algorithm>
#include <cstdint>

#include "device.cuh"

namespace nsa::cuda::detail {

// Free score of candidate j; at(i) reads pg[i] and must give 0 outside [0, visible) (mapped
// indices run from -(l'/d + l/d) to ns_max * l'/d - 1). I is the index type of that arithmetic;
// per_slc = l'/d and per_cmp = l/d come from the caller, computed once per kernel (two 64-bit
// divisions per candidate were measurable in the prefill's mapping).
template <class I, class At>
__device__ __forceinline__ float mapped_score(const DevCfg& c, I per_slc, I per_cmp, int64_t j,
                                              At at) {
  const I ps = per_slc, pc = per_cmp, jj = static_cast<I>(j);
  float acc = 0.0f;
  if (c.mapping == 0) {
    for (I b = 0; b < ps; ++b)
      for (I m = 0; m < pc; ++m) acc += at(jj * ps + b - m);
  } else if (c.mapping == 1) {
    for (I m = 0; m < ps; ++m)
      for (I n = 0; n < pc; ++n) acc += at(ps * jj - m - n);
  } else {
    acc = at(jj);
  }
  return acc;
}

// Final score of block j of a row with n_cand candidates whose current block is cur: -inf past
// the candidates, the forced value or the free score, then the group reduction.
__device__ __forceinline__ float block_score(const DevCfg& c, int64_t j, int64_t n_cand,
                                             int64_t cur, float free_score) {
  if (j >= n_cand) return -INFINITY;
  const bool forced = j < c.n_init || j > cur - c.n_local;
  float acc = c.forced == 1 && forced ? static_cast<float>(c.group)  // every head's score 1
                                      : free_score;
  if (c.reduce == 1) acc /= static_cast<float>(c.group);
  return acc;
}

// Zeros before and after a staged row of pg so that every mapped index of a candidate reads
// inside the staging without a bounds check (host side).
struct MapPads {
  int64_t left, right;
  int64_t span(const DevCfg& c) const { return left + c.nc_max + right; }
};
inline MapPads map_pads(const DevCfg& c) {
  const int64_t per_slc = c.lp / c.d, per_cmp = c.l / c.d;
  return {per_slc + per_cmp, std::max<int64_t>(0, c.ns_max * per_slc - c.nc_max) + 1};
}

// Staged entries a row needs: indices up to n_cand * l'/d (the overlap mapping's last).
__device__ __forceinline__ int staged_reach(const DevCfg& c, int64_t n_cand, int pad_l, int span) {
  const int64_t per_slc = c.lp / c.d;
  const int64_t reach = pad_l + n_cand * (per_slc > 1 ? per_slc : 1) + 1;
  return static_cast<int>(reach < span ? reach : span);
}

}  // namespace nsa::cuda::detail
