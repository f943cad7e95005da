// Mapped scores and top-n of a decode batch in one kernel: one CTA per (row, KV group).
//
// scores_topn.cu runs the mapping with one CTA per (row, group) and the top-n with one warp per
// (row, group), n rounds of an arg-max each: throughput kernels for prefill's millions of pairs.
// A decode step has a few hundred pairs, and there the two took 13.4 + 33.2 us at B = 16,
// G = 16, T_k = 65536 on the H200 for 64 pairs (Nsight Compute); this kernel took 16.4.
// Here a CTA stages its row of pg (kUnroll loads in flight per thread), writes the mapped scores
// to shared memory and to `scores`, and ranks the free candidates with one CTA-wide radix sort
// (CUB) of keys that encode the tie rule, so the selection is the same set under the same total
// order as topn_warp_kernel's: score descending, then lower (or higher) index first.
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>

#include "score_map.cuh"

namespace nsa::cuda::detail {

namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 8;  // staging loads in flight per thread

// The sort key of free candidate j with score s: order-preserving bits of s above the tie bits
// (descending keys = better first). -0 ranks as +0 (they compare equal), a NaN as -inf. Key 0 is
// never formed (-inf maps above it) and marks "not a free candidate".
__device__ __forceinline__ uint64_t rank_key(float s, int j, bool lower_first, int tie_bits) {
  if (s != s) s = -INFINITY;
  if (s == 0.0f) s = 0.0f;
  uint32_t u = __float_as_uint(s);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  const uint32_t cap = 1u << tie_bits;
  const uint32_t t = lower_first ? cap - 1u - static_cast<uint32_t>(j) : static_cast<uint32_t>(j);
  return (static_cast<uint64_t>(u) << tie_bits) | t;
}

template <int ITEMS>
__global__ void __launch_bounds__(kThreads)
    scores_topn_decode_kernel(DevCfg c, int64_t row0, int64_t rows, const float* __restrict__ pg,
                              float* __restrict__ scores, int32_t* __restrict__ indices, int pad_l,
                              int pad_r) {
  constexpr int kCap = kThreads * ITEMS;  // candidates a CTA ranks
  constexpr int kTieBits = ITEMS == 4 ? 10 : 11;
  static_assert((1 << kTieBits) == kCap, "tie bits cover the candidates");
  using Sort = cub::BlockRadixSort<uint64_t, kThreads, ITEMS>;
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ union {
    typename Sort::TempStorage sort;
    typename Scan::TempStorage scan;
  } tmp;
  __shared__ unsigned char chosen[kCap];
  extern __shared__ float smem[];  // staged pg [pad_l + nc_max + pad_r], then scores [ns_max]
  const int span = pad_l + static_cast<int>(c.nc_max) + pad_r;
  float* ps = smem;
  float* sc = smem + span;
  const int tid = threadIdx.x;
  const bool lower_first = c.tie == 0;
  const bool always = c.forced == 0;
  const int per_slc = static_cast<int>(c.lp / c.d), per_cmp = static_cast<int>(c.l / c.d);

  for (int64_t local = blockIdx.x; local < rows * c.h_kv; local += gridDim.x) {
    const int64_t item = row0 * c.h_kv + local;
    const DevSeq sq = c.seqs[seq_of(c.cu_q, c.num_seqs, item / c.h_kv)];
    const int64_t t = sq.t_k - sq.t_q + (item / c.h_kv - sq.q_begin);
    const int vis = static_cast<int>(visible_cmp(c, t));
    const int n_cand = static_cast<int>(t / c.lp + 1), cur = n_cand - 1;
    const float* p = pg + local * c.nc_max;
    __syncthreads();  // the previous item's shared memory is free

    // Stage pg: loads first, then stores, so kUnroll loads per thread are in flight.
    const int need = staged_reach(c, n_cand, pad_l, span);
    for (int i0 = tid; i0 < need; i0 += kThreads * kUnroll) {
      float x[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int k = i0 + u * kThreads - pad_l;
        x[u] = k >= 0 && k < vis ? p[k] : 0.0f;
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        if (i0 + u * kThreads < need) ps[i0 + u * kThreads] = x[u];
    }
    for (int j = tid; j < kCap; j += kThreads) chosen[j] = 0;
    __syncthreads();

    const float* z = ps + pad_l;
    float* out_s = scores + item * c.ns_max;
    for (int j = tid; j < static_cast<int>(c.ns_max); j += kThreads) {
      const float s = block_score(
          c, j, n_cand, cur,
          j < n_cand ? mapped_score<int>(c, per_slc, per_cmp, j, [&](int i) { return z[i]; })
                     : 0.0f);
      sc[j] = s;
      out_s[j] = s;
    }
    // Forced blocks as two disjoint ranges, [0, a) and [b, cur], as in topn_warp_kernel.
    const int want = static_cast<int>(c.n < n_cand ? c.n : n_cand);
    const int a = static_cast<int>(c.n_init < n_cand ? c.n_init : n_cand);
    const int b = static_cast<int>(cur - c.n_local + 1 > a ? cur - c.n_local + 1 : a);
    const int n_forced = always ? a + (cur >= b ? cur - b + 1 : 0) : 0;
    auto is_forced = [&](int j) { return j < c.n_init || j > cur - c.n_local; };
    __syncthreads();

    // Rank the free candidates (blocked: thread tid holds candidates tid * ITEMS + e).
    uint64_t key[ITEMS];
#pragma unroll
    for (int e = 0; e < ITEMS; ++e) {
      const int j = tid * ITEMS + e;
      const bool free_cand = j < n_cand && !(always && is_forced(j));
      key[e] = free_cand ? rank_key(sc[j], j, lower_first, kTieBits) : 0;
      if (always && j < n_cand && is_forced(j)) chosen[j] = 1;
    }
    Sort(tmp.sort).SortDescending(key, 0, 32 + kTieBits);
    const int take = want - n_forced;
#pragma unroll
    for (int e = 0; e < ITEMS; ++e) {
      const int rank = tid * ITEMS + e;
      if (rank < take && key[e] != 0) {
        const uint32_t tb = static_cast<uint32_t>(key[e] & (kCap - 1));
        chosen[lower_first ? kCap - 1 - static_cast<int>(tb) : static_cast<int>(tb)] = 1;
      }
    }
    __syncthreads();

    // The chosen set in ascending order, then -1 padding.
    int mine = 0;
#pragma unroll
    for (int e = 0; e < ITEMS; ++e) mine += chosen[tid * ITEMS + e];
    int offset = 0, total = 0;
    __syncthreads();  // tmp changes role from sort to scan
    Scan(tmp.scan).ExclusiveSum(mine, offset, total);
    int32_t* out = indices + item * c.n;
#pragma unroll
    for (int e = 0; e < ITEMS; ++e) {
      const int j = tid * ITEMS + e;
      if (chosen[j] && offset < c.n) out[offset++] = j;
    }
    for (int64_t e = total + tid; e < c.n; e += kThreads) out[e] = -1;
  }
}

template <int ITEMS>
void launch_items(const DevCfg& c, int64_t row0, int64_t rows, const float* pg, float* scores,
                  int32_t* indices, const MapPads& pads, size_t smem, cudaStream_t stream,
                  const std::string& ctx) {
  static bool configured = false;  // per instantiation
  if (!configured) {
    check(cudaFuncSetAttribute(scores_topn_decode_kernel<ITEMS>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(kDecodeTopnSmem)),
          "scores_topn_decode_kernel (shared memory)", ctx);
    configured = true;
  }
  const int64_t items = rows * c.h_kv;
  scores_topn_decode_kernel<ITEMS>
      <<<static_cast<unsigned>(items < (1 << 20) ? items : (1 << 20)), kThreads, smem, stream>>>(
          c, row0, rows, pg, scores, indices, static_cast<int>(pads.left),
          static_cast<int>(pads.right));
  check_launch("scores_topn_decode_kernel", ctx);
}

}  // namespace

bool scores_topn_decode_fits(const DevCfg& c) {
  const MapPads pads = map_pads(c);
  const int64_t floats = pads.span(c) + c.ns_max;
  return c.ns_max >= 1 && c.ns_max <= 2048 && floats * 4 <= kDecodeTopnSmem;
}

void launch_scores_topn_decode(const DevCfg& c, int64_t row0, int64_t rows, const float* pg,
                               float* scores, int32_t* indices, cudaStream_t stream,
                               const std::string& ctx) {
  if (!scores_topn_decode_fits(c))
    throw_cuda_error("scores_topn_decode_kernel: ns_max = " + std::to_string(c.ns_max) +
                     ", nc_max = " + std::to_string(c.nc_max) + " do not fit [" + ctx + "]");
  if (rows <= 0 || c.h_kv == 0) return;
  const MapPads pads = map_pads(c);
  const size_t smem = static_cast<size_t>(pads.span(c) + c.ns_max) * sizeof(float);
  if (c.ns_max <= 1024)
    launch_items<4>(c, row0, rows, pg, scores, indices, pads, smem, stream, ctx);
  else
    launch_items<8>(c, row0, rows, pg, scores, indices, pads, smem, stream, ctx);
}

}  // namespace nsa::cuda::detail
