// What the CTA-wide attention kernels (attention_mma.cu on mma.sync, attention_wgmma.cu on
// Hopper's wgmma) share: the per-row bookkeeping of a tile of packed query rows, the key range
// the tile walks, and the probs pass's epilogue (p = exp(z - lse) summed over a group's heads).
//
// A tile holds R consecutive packed query rows x the G heads of one KV group (R G <= BM query
// vectors, the NSA group-centric layout: every fetched key tile serves all G heads). Each row
// carries its own key mask:
//   window:      keys [t - span + 1, t]             (absolute packed key rows)
//   compressed:  compressed rows [0, visible(t))
//   selection:   the row's selected blocks, clipped causally ([base, cap) here; the blocks come
//                from the index lists, attention_mma.cu)
#pragma once

#include <cstdint>

#include "device.cuh"
#include "head_sums.hpp"
#include "mma_softmax.cuh"

namespace nsa::cuda::detail {

enum AttnMode { kCmp = 0, kSlc = 1, kWin = 2, kProbs = 3 };

constexpr int kTileKeys = 64;               // keys per shared-memory tile
constexpr int kProbStride = kTileKeys + 8;  // probs staging row stride in floats (bank spread)

// Per-row data of the tile, in shared memory.
template <int BM>
struct RowInfo {
  int64_t row[BM];         // packed query row, -1 when beyond the range
  int64_t base[BM];        // first key row of its sequence (raw or compressed)
  int64_t lo[BM], hi[BM];  // window / compressed: absolute key range; selection: [base, cap)
  int64_t n_cand[BM];
  int cnt[2][BM];  // selection: multiplicity of the current tile's block, per stage
};

// Row r (< BM) of the tile whose first packed row is first_row; rows at or past R or row_end
// are padding (row -1).
template <int BM>
__device__ __forceinline__ void setup_tile_row(const DevCfg& c, int mode, RowInfo<BM>& ri,
                                               int64_t first_row, int R, int64_t row_end, int r) {
  const bool is_cmp_keys = mode == kCmp || mode == kProbs;
  const int64_t span = c.window_keys == 0 ? c.w : c.w + 1;
  int64_t row = first_row + r;
  if (r >= R || row >= row_end) row = -1;
  ri.row[r] = row;
  int64_t base = 0, lo = 0, hi = 0, nc = 0;
  if (row >= 0) {
    const DevSeq sq = c.seqs[seq_of(c.cu_q, c.num_seqs, row)];
    const int64_t t = sq.t_k - sq.t_q + (row - sq.q_begin);
    base = is_cmp_keys ? sq.c_begin : sq.k_begin;
    if (mode == kWin) {
      lo = base + (t - span + 1 > 0 ? t - span + 1 : 0);
      hi = base + t + 1;
    } else if (is_cmp_keys) {
      lo = base;
      hi = base + visible_cmp(c, t);
    } else {
      lo = base;
      hi = base + (c.slc_causal == 0 ? t + 1 : sq.t_k);
      nc = t / c.lp + 1;
    }
  }
  ri.base[r] = base;
  ri.lo[r] = lo;
  ri.hi[r] = hi;
  ri.n_cand[r] = nc;
}

// [lo, hi) covering every real row's key range (window and compressed modes); lo >= hi: none.
template <int BM>
__device__ __forceinline__ void tile_key_range(const RowInfo<BM>& ri, int R, int64_t& lo,
                                               int64_t& hi) {
  lo = INT64_MAX;
  hi = INT64_MIN;
  for (int r = 0; r < R && r < BM; ++r)
    if (ri.row[r] >= 0 && ri.hi[r] > ri.lo[r]) {
      lo = min(lo, ri.lo[r]);
      hi = max(hi, ri.hi[r]);
    }
}

// The probs pass for G dividing 16: the G heads of a query row sit in the lanes that differ in
// bits 2 .. 1 + log2 G (vectors m_a, and for G = 16 also m_b), so their sum is a shuffle
// reduction.
__host__ __device__ constexpr bool probs_heads_in_lanes(int64_t G) {
  return G <= 16 && 16 % G == 0;
}

__device__ __forceinline__ int sum_heads_in_warp(float2 (&v)[8], int bits) {
  return sum_heads_in_lanes(v, bits, static_cast<int>(threadIdx.x & 31),
                            [](float x, int m) { return __shfl_xor_sync(0xffffffffu, x, m); });
}

// One m16 block of a probs tile (s: 64 keys of scores in natural units, masked to -inf; lse of
// the lane's rows a and b; r_a/r_b their tile rows, ca/cb their columns): p = exp(z - lse),
// summed over the group's heads in registers (G dividing 16) and written to
// pg[row - row0, g, key - base]; other G stage p in Ps ([BM][kProbStride], vectors m_a/m_b) for
// probs_reduce_staged.
template <int BM>
__device__ __forceinline__ void probs_block(const float (&s)[8][4], float lse_a, float lse_b,
                                            int64_t G, int m_a, int m_b, int r_a, int r_b,
                                            TileCols ca, TileCols cb, const RowInfo<BM>& ri,
                                            const DevCfg& c, int64_t row0, int64_t g, int64_t start,
                                            float* pg, float* Ps) {
  const int lane = threadIdx.x & 31;
  float2 pa[8], pb[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    pa[j] = make_float2(exp2_ftz((s[j][0] - lse_a) * kLog2e), exp2_ftz((s[j][1] - lse_a) * kLog2e));
    pb[j] = make_float2(exp2_ftz((s[j][2] - lse_b) * kLog2e), exp2_ftz((s[j][3] - lse_b) * kLog2e));
  }
  if (!probs_heads_in_lanes(G)) {
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int col = j * 8 + (lane & 3) * 2;
      *reinterpret_cast<float2*>(Ps + m_a * kProbStride + col) = pa[j];
      *reinterpret_cast<float2*>(Ps + m_b * kProbStride + col) = pb[j];
    }
    return;
  }
  const int head_bits = G >= 8 ? 3 : (G == 4 ? 2 : (G == 2 ? 1 : 0));
  // Writes a lane's head sums: v[jj] for jj < 8 >> head_bits holds key columns
  // 8 (j0 + jj) + 2 (lane % 4) + {0, 1} of row r, written where they lie in its columns.
  auto store = [&](const float2(&v)[8], int j0, int r, TileCols cols) {
    const int64_t row = ri.row[r];
    if (row < 0) return;
    float* dst = pg + ((row - row0) * c.h_kv + g) * c.nc_max + (start - ri.base[r]);
#pragma unroll
    for (int jj = 0; jj < 8; ++jj) {
      if (jj >= (8 >> head_bits)) break;
      const int col = (j0 + jj) * 8 + (lane & 3) * 2;
      if (col >= cols.lo && col < cols.hi) dst[col] = v[jj].x;
      if (col + 1 >= cols.lo && col + 1 < cols.hi) dst[col + 1] = v[jj].y;
    }
  };
  if (G == 16) {  // vectors m_a and m_b are two heads of one row
#pragma unroll
    for (int j = 0; j < 8; ++j) pa[j] = make_float2(pa[j].x + pb[j].x, pa[j].y + pb[j].y);
    store(pa, sum_heads_in_warp(pa, head_bits), r_a, ca);
  } else {
    store(pa, sum_heads_in_warp(pa, head_bits), r_a, ca);
    store(pb, sum_heads_in_warp(pb, head_bits), r_b, cb);
  }
}

// After probs_block staged a tile in Ps and a barrier: the sum over the G heads of each row,
// keys outside a row's visible range skipped.
template <int BM>
__device__ __forceinline__ void probs_reduce_staged(const float* Ps, const RowInfo<BM>& ri, int R,
                                                    int64_t G, const DevCfg& c, int64_t row0,
                                                    int64_t g, int64_t start, float* pg, int tid,
                                                    int threads) {
  for (int e = tid; e < R * kTileKeys; e += threads) {
    const int r = e / kTileKeys, col = e % kTileKeys;
    const int64_t u = start + col;
    if (r >= BM || ri.row[r] < 0 || u < ri.lo[r] || u >= ri.hi[r]) continue;
    float total = 0.f;
    for (int64_t h = 0; h < G; ++h) total += Ps[(r * G + h) * kProbStride + col];
    pg[((ri.row[r] - row0) * c.h_kv + g) * c.nc_max + (u - ri.base[r])] = total;
  }
}

}  // namespace nsa::cuda::detail
