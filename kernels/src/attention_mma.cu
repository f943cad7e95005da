// Tensor-core attention (mma.sync m16n8k16, fp16/bf16 operands, fp32 accumulation) for all three
// branches, plus the "probs" pass of the importance scores.
//
// A CTA of 4 warps owns a tile of BM = 64 MW query vectors: R consecutive packed query rows x
// the G heads of one KV group (R = BM / G, the NSA group-centric layout: every fetched key tile
// serves all G heads of the group). Each warp holds MW m16 blocks of vectors, so each K and V
// fragment read from shared memory feeds MW MMAs: MW = 2 where two 128-vector CTAs fit in an
// SM's shared memory (d_k = 64, 128), else 1. With MW = 2 the attention passes walk each 64-key
// tile in two 32-key steps (the two blocks' accumulators take the registers), and the probs pass
// is its own instantiation without accumulators. Keys stream through shared memory in tiles of 64
// (cp.async, two stages); each row of the tile carries its own key mask (attention_tile.cuh).
// Online softmax in fp32 with the running max in natural units (z = scale * q.k, p =
// exp2((z - m) * log2 e), lse = m + log l), so lse carries no error proportional to |m| beyond
// that of the scores themselves; P is rounded to the operand dtype for P.V while the denominator
// uses the unrounded weights, as the dtype-faithful baseline does.
// Scores S = Q K^T: each 16-wide slice of d_k is one MMA into zeroed registers, added to the
// running sum in IEEE fp32 (DevCfg::qk_split). Accumulating inside the MMA instead lets the
// tensor core align and truncate the products against the growing sum, an error biased toward
// zero that reached ~10 fp32 ulps of lse in the H200 fuzz run of 2026-11-29.
// Probs mode recomputes S over the compressed keys with the known lse and writes
// pg[row, g, i] = sum over the group's heads of p_cmp (input of the score mapping); for G
// dividing 16 the head sum is a shuffle reduction across the lanes holding the heads.
// Interior tiles (every key of every row visible) skip the per-element mask.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "attention_tile.cuh"
#include "block_union.cuh"

namespace nsa::cuda::detail {

namespace {

constexpr int kBN = kTileKeys;
constexpr int kMaxGroup = 64;  // largest G a tile holds (G <= BM)
constexpr int kPs = kProbStride;
constexpr int kMaxSelEntries = 1024;  // R * n bound of the selection union (shared memory)

template <class T, int DK, int DV, int BM>
struct Smem {
  static constexpr int kQs = DK + 8, kVs = DV + 8;  // padded row strides (bank spread)
  static constexpr size_t q_bytes = sizeof(T) * BM * kQs;
  static constexpr size_t k_bytes = sizeof(T) * kBN * kQs;
  static constexpr size_t v_bytes = sizeof(T) * kBN * kVs;
  static constexpr size_t v_region = v_bytes * 2 > sizeof(float) * BM* kPs
                                         ? v_bytes * 2
                                         : sizeof(float) * BM* kPs;
  // Layout: Q | K stages | RowInfo | V stages or probs staging | selection lists. Launches
  // leave out the tail they do not use: the selection lists outside the selection pass, and
  // the V region in a probs pass that sums heads in registers (three such CTAs fit per SM).
  static constexpr size_t row_off = q_bytes + 2 * k_bytes;
  static constexpr size_t v_off = row_off + sizeof(RowInfo<BM>);
  static constexpr size_t sel_off = v_off + v_region;
  static_assert(sizeof(RowInfo<BM>) % 16 == 0, "16-byte aligned V region");
};

constexpr int kThreads = 128;  // 4 warps, each with MW m16 blocks of query vectors

template <class T, int DK, int DV, int MW, bool PROBS>
__global__ void __launch_bounds__(kThreads)
    attn_mma_kernel(DevCfg c, int mode, int R, int64_t row0, int64_t rows, const T* __restrict__ q,
                    const T* __restrict__ k, const T* __restrict__ v,
                    const int32_t* __restrict__ idx, T* __restrict__ o, float* __restrict__ lse,
                    float* __restrict__ pg) {
  constexpr int BM = 64 * MW;
  using S = Smem<T, DK, DV, BM>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Qs = reinterpret_cast<T*>(smem);
  T* Ks = reinterpret_cast<T*>(smem + S::q_bytes);
  T* Vs = reinterpret_cast<T*>(smem + S::v_off);
  float* Ps = reinterpret_cast<float*>(Vs);  // probs mode: [BM][kPs] (no V there)
  RowInfo<BM>& ri = *reinterpret_cast<RowInfo<BM>*>(smem + S::row_off);
  int64_t* starts = reinterpret_cast<int64_t*>(smem + S::sel_off);
  int64_t* ent = starts + kMaxSelEntries;  // selection: entries before sorting
  __shared__ int64_t s_union_lo, s_union_hi;
  __shared__ int s_nb;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t G = c.group, g = blockIdx.y;
  // Last row tiles first: under causal masks they see the most keys, and the light ones then
  // fill the tail of the grid.
  const int64_t first_row = row0 + static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * R;
  const int64_t key_rows = mode == kCmp || mode == kProbs ? c.total_c : c.total_k;

  // ---- per-row setup -----------------------------------------------------------------------
  if (tid < BM) setup_tile_row(c, mode, ri, first_row, R, row0 + rows, tid);
  __syncthreads();

  // ---- key tiles: one range (window, compressed) or the union of selected blocks -------------
  int64_t n_tiles = 0, tiles_per_block = 1;
  if (mode != kSlc) {
    if (tid == 0) tile_key_range(ri, R, s_union_lo, s_union_hi);
    __syncthreads();
    if (s_union_hi > s_union_lo) n_tiles = (s_union_hi - s_union_lo + kBN - 1) / kBN;
  } else {
    const int64_t n = c.n;
    const int entries = static_cast<int>(R * n);
    int pow2 = 1;
    while (pow2 < entries) pow2 <<= 1;
    for (int e = tid; e < pow2; e += kThreads) {
      int64_t val = INT64_MAX;
      if (e < entries) {
        const int r = static_cast<int>(e / n);
        const int64_t row = ri.row[r];
        if (row >= 0) {
          const int64_t j = idx[(row * c.h_kv + g) * n + e % n];
          if (j >= 0 && j < ri.n_cand[r]) val = ri.base[r] + j * c.lp;
        }
      }
      starts[e] = val;
      if (e < entries) ent[e] = val;
    }
    __syncthreads();
    bitonic_sort(starts, pow2, tid, kThreads, [] { __syncthreads(); });
    if (warp == 0) {
      const int count = unique_sorted(starts, pow2);
      if (lane == 0) s_nb = count;
    }
    __syncthreads();
    tiles_per_block = (c.lp + kBN - 1) / kBN;
    n_tiles = s_nb * tiles_per_block;
  }

  auto tile_start = [&](int64_t i) -> int64_t {
    if (mode != kSlc) return s_union_lo + i * kBN;
    return starts[i / tiles_per_block] + (i % tiles_per_block) * kBN;
  };
  auto tile_block_end = [&](int64_t i) -> int64_t {
    if (mode != kSlc) return s_union_hi;
    return starts[i / tiles_per_block] + c.lp;
  };
  // Selection: multiplicity of tile i's block for each row, into stage st.
  auto tile_counts = [&](int64_t i, int st) {
    if (mode != kSlc || tid >= BM) return;
    const int r = tid;
    int cnt = 0;
    if (ri.row[r] >= 0) {
      const int64_t blk = starts[i / tiles_per_block];
      const int64_t* list = ent + r * c.n;  // this row's entries as absolute block starts
      for (int64_t s = 0; s < c.n; ++s) cnt += list[s] == blk;
      if (c.policy != 2 && cnt > 1) cnt = 1;
    }
    ri.cnt[st][r] = cnt;
  };
  auto load_tile = [&](int64_t i, int st) {
    const int64_t start = tile_start(i);
    copy_rows<T, DK, kBN, kThreads>(Ks + st * kBN * S::kQs, S::kQs, k, start, key_rows, c.h_kv, g,
                                    tid);
    if (!PROBS)
      copy_rows<T, DV, kBN, kThreads>(Vs + st * kBN * S::kVs, S::kVs, v, start, key_rows, c.h_kv, g,
                                      tid);
    tile_counts(i, st);
  };

  // ---- Q tile ------------------------------------------------------------------------------
  {
    constexpr int kc = DK / 8;
    for (int e = tid; e < BM * kc; e += kThreads) {
      const int m = e / kc, cc = e % kc;
      const int r = static_cast<int>(m / G);
      const bool ok = m < R * G && r < BM && ri.row[r] >= 0;
      const int64_t h = g * G + m % G;
      cp16(Qs + m * S::kQs + cc * 8, ok ? q + (ri.row[r] * c.h_q + h) * DK + cc * 8 : q, ok);
    }
  }
  if (n_tiles > 0) load_tile(0, 0);
  cp_commit();

  // This lane's rows: in m16 block mb of its warp, vectors m_a and m_a + 8.
  int m_a[MW], m_b[MW], r_a[MW], r_b[MW];
  bool v_a[MW], v_b[MW];  // vector exists in the tile (m < R G); its row may still be padding
#pragma unroll
  for (int mb = 0; mb < MW; ++mb) {
    m_a[mb] = (warp * MW + mb) * 16 + (lane >> 2);
    m_b[mb] = m_a[mb] + 8;
    r_a[mb] = static_cast<int>(m_a[mb] / G);
    r_b[mb] = static_cast<int>(m_b[mb] / G);
    v_a[mb] = m_a[mb] < R * G;
    v_b[mb] = m_b[mb] < R * G;
  }
  const bool warp_live = warp * MW * 16 < R * G;
  const float qk_scale = c.scale;
  // The probs pass skips the split: its scores only rank blocks, and the comparator judges the
  // ranking tie-aware (no index failure in 4139 + 553 fuzz cases run without the split).
  const bool qk_split = c.qk_split != 0 && !PROBS;
  float lse_a[MW], lse_b[MW];  // probs mode: the known lse (natural units)
#pragma unroll
  for (int mb = 0; mb < MW; ++mb) {
    lse_a[mb] = lse_b[mb] = 0.f;
    if (PROBS) {
      if (v_a[mb] && ri.row[r_a[mb]] >= 0)
        lse_a[mb] = lse[ri.row[r_a[mb]] * c.h_q + g * G + m_a[mb] % G];
      if (v_b[mb] && ri.row[r_b[mb]] >= 0)
        lse_b[mb] = lse[ri.row[r_b[mb]] * c.h_q + g * G + m_b[mb] % G];
    }
  }

  float acc[MW][DV / 8][4];
#pragma unroll
  for (int mb = 0; mb < MW; ++mb)
#pragma unroll
    for (int j = 0; j < DV / 8; ++j)
      acc[mb][j][0] = acc[mb][j][1] = acc[mb][j][2] = acc[mb][j][3] = 0.f;
  SoftmaxRows sm[MW];
  const QShared<T> qa{Qs + warp * MW * 16 * S::kQs, S::kQs};

  for (int64_t i = 0; i < n_tiles; ++i) {
    const int st = static_cast<int>(i & 1);
    if (i + 1 < n_tiles) {
      load_tile(i + 1, st ^ 1);
      cp_commit();
      cp_wait<1>();
    } else {
      cp_wait<0>();
    }
    __syncthreads();
    const int64_t start = tile_start(i), blk_end = tile_block_end(i);
    // Key columns [sub, sub + width) of this lane's rows (none: row padded or not selecting).
    auto row_cols = [&](bool v, int r, float w, int64_t sub, int width) {
      if (!v || ri.row[r] < 0 || !(w > 0.f)) return TileCols();
      return mode == kSlc ? TileCols(max(start, ri.lo[r]), min(blk_end, ri.hi[r]), sub, width)
                          : TileCols(ri.lo[r], ri.hi[r], sub, width);
    };
    auto row_weight = [&](bool v, int r) {
      if (!v || ri.row[r] < 0) return 0.f;
      return mode == kSlc ? static_cast<float>(ri.cnt[st][r]) : 1.f;
    };
    // Columns of every real row kept (padded vectors: zero Q, never written, may keep any).
    auto all_kept = [&](bool v, int r, TileCols cols, int width) {
      return !v || ri.row[r] < 0 || cols.all(width);
    };
    float w_a[MW], w_b[MW];
    bool any_w = false;
#pragma unroll
    for (int mb = 0; mb < MW; ++mb) {
      w_a[mb] = row_weight(v_a[mb], r_a[mb]);
      w_b[mb] = row_weight(v_b[mb], r_b[mb]);
      any_w = any_w || w_a[mb] > 0.f || w_b[mb] > 0.f;
    }
    // Selection: a warp none of whose rows selected this block skips it (the tile was loaded
    // for the other warps' rows); its softmax state is unchanged.
    const bool warp_needed = warp_live && (mode != kSlc || __any_sync(0xffffffffu, any_w));
    // Columns [sub, sub + width) of this lane's rows; returns (warp-uniform) whether every real
    // row keeps every column.
    auto step_cols = [&](int64_t sub, int width, TileCols(&ca)[MW], TileCols(&cb)[MW]) {
      bool all_full = true;
#pragma unroll
      for (int mb = 0; mb < MW; ++mb) {
        ca[mb] = row_cols(v_a[mb], r_a[mb], w_a[mb], sub, width);
        cb[mb] = row_cols(v_b[mb], r_b[mb], w_b[mb], sub, width);
        all_full = all_full && all_kept(v_a[mb], r_a[mb], ca[mb], width) &&
                   all_kept(v_b[mb], r_b[mb], cb[mb], width);
      }
      return __all_sync(0xffffffffu, all_full);
    };
    if (warp_needed && PROBS) {
      TileCols ca[MW], cb[MW];
      const bool full = step_cols(start, kBN, ca, cb);
      float s[MW][8][4];
      qk_tile<T, DK, 8, MW>(s, qa, Ks + st * kBN * S::kQs, S::kQs, qk_split);
#pragma unroll
      for (int mb = 0; mb < MW; ++mb) {
        float tmax_a, tmax_b;
        scale_mask_tile<8>(s[mb], qk_scale, full, ca[mb], cb[mb], tmax_a, tmax_b);
        probs_block(s[mb], lse_a[mb], lse_b[mb], G, m_a[mb], m_b[mb], r_a[mb], r_b[mb], ca[mb],
                    cb[mb], ri, c, row0, g, start, pg, Ps);
      }
    } else if (warp_needed) {
      // Attention: the tile in steps of kStep keys; with two m16 blocks per warp their
      // accumulators take the registers a 64-key step of scores would need.
      constexpr int kNt = MW == 2 ? 4 : 8, kStep = 8 * kNt;
#pragma unroll
      for (int h = 0; h < kBN / kStep; ++h) {
        const int64_t sub = start + h * kStep;
        TileCols ca[MW], cb[MW];
        const bool full = step_cols(sub, kStep, ca, cb);
        float s[MW][kNt][4];
        qk_tile<T, DK, kNt, MW>(s, qa, Ks + (st * kBN + h * kStep) * S::kQs, S::kQs, qk_split);
#pragma unroll
        for (int mb = 0; mb < MW; ++mb) {
          float tmax_a, tmax_b;
          scale_mask_tile<kNt>(s[mb], qk_scale, full, ca[mb], cb[mb], tmax_a, tmax_b);
          softmax_update<kNt, DV>(s[mb], tmax_a, tmax_b, w_a[mb], w_b[mb], sm[mb], acc[mb]);
        }
        pv_tile<T, DV, kNt, MW>(s, acc, Vs + (st * kBN + h * kStep) * S::kVs, S::kVs);
      }
    }
    if (PROBS && !probs_heads_in_lanes(G)) {
      __syncthreads();
      probs_reduce_staged(Ps, ri, R, G, c, row0, g, start, pg, tid, kThreads);
    }
    __syncthreads();  // stage st is overwritten by the next prefetch
  }
  if (PROBS) return;

  // ---- epilogue ----------------------------------------------------------------------------
  if (!warp_live) return;
#pragma unroll
  for (int mb = 0; mb < MW; ++mb) {
    const bool out_a = v_a[mb] && ri.row[r_a[mb]] >= 0, out_b = v_b[mb] && ri.row[r_b[mb]] >= 0;
    const int64_t at_a = out_a ? ri.row[r_a[mb]] * c.h_q + g * G + m_a[mb] % G : 0;
    const int64_t at_b = out_b ? ri.row[r_b[mb]] * c.h_q + g * G + m_b[mb] % G : 0;
    write_rows<T, DV>(sm[mb], acc[mb], out_a ? o + at_a * DV : nullptr,
                      out_b ? o + at_b * DV : nullptr, out_a ? lse + at_a : nullptr,
                      out_b ? lse + at_b : nullptr);
  }
}

template <class T, int DK, int DV, int MW, bool PROBS>
void launch_tile(int mode, const DevCfg& c, int64_t row0, int64_t rows, const T* q, const T* k,
                 const T* v, const int32_t* idx, T* o, float* lse, float* pg, cudaStream_t stream,
                 const std::string& ctx) {
  constexpr int BM = 64 * MW;
  const int G = static_cast<int>(c.group);
  int R = BM / G;
  if (mode == kSlc) R = static_cast<int>(std::min<int64_t>(R, kMaxSelEntries / c.n));
  // The largest launch (selection) sets the attribute; every launch states what it uses.
  const size_t smem = Smem<T, DK, DV, BM>::sel_off + 2 * sizeof(int64_t) * kMaxSelEntries;
  static bool configured = false;  // per instantiation
  if (!configured) {
    check(cudaFuncSetAttribute(attn_mma_kernel<T, DK, DV, MW, PROBS>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
          "attn_mma_kernel (shared memory)", ctx);
    // All of the SM's unified memory as shared memory: the occupancy of 2 or 3 CTAs per SM
    // counts on it.
    check(cudaFuncSetAttribute(attn_mma_kernel<T, DK, DV, MW, PROBS>,
                               cudaFuncAttributePreferredSharedMemoryCarveout,
                               cudaSharedmemCarveoutMaxShared),
          "attn_mma_kernel (shared memory carveout)", ctx);
    configured = true;
  }
  // Only the selection pass needs the block-start lists at the end of shared memory, and a probs
  // pass summing heads in registers needs no V region either.
  const bool heads_in_lanes = probs_heads_in_lanes(G);
  const size_t bytes = mode == kSlc              ? smem
                       : PROBS && heads_in_lanes ? Smem<T, DK, DV, BM>::v_off
                                                 : Smem<T, DK, DV, BM>::sel_off;
  const int64_t tiles = (rows + R - 1) / R;
  attn_mma_kernel<T, DK, DV, MW, PROBS>
      <<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(c.h_kv)), kThreads, bytes,
         stream>>>(c, mode, R, row0, rows, q, k, v, idx, o, lse, pg);
  check_launch(mode == kCmp   ? "attn_mma_kernel<cmp>"
               : mode == kSlc ? "attn_mma_kernel<slc>"
               : mode == kWin ? "attn_mma_kernel<win>"
                              : "attn_mma_kernel<probs>",
               ctx);
}

// Two m16 blocks per warp (128-vector tiles) where two such CTAs fit in an SM's shared memory
// (every d_k of 64 and 128); one block per warp (64-vector tiles) for d_k = 192 and 256.
template <class T, int DK, int DV>
void launch_dims(int mode, const DevCfg& c, int64_t row0, int64_t rows, const T* q, const T* k,
                 const T* v, const int32_t* idx, T* o, float* lse, float* pg, cudaStream_t stream,
                 const std::string& ctx) {
  constexpr size_t kTwoPerSm = 113 * 1024;
  constexpr int kMw = Smem<T, DK, DV, 128>::sel_off <= kTwoPerSm ? 2 : 1;
  if (mode == kProbs)
    launch_tile<T, DK, DV, kMw, true>(mode, c, row0, rows, q, k, v, idx, o, lse, pg, stream, ctx);
  else
    launch_tile<T, DK, DV, kMw, false>(mode, c, row0, rows, q, k, v, idx, o, lse, pg, stream, ctx);
}

template <class T>
bool dispatch(int mode, const DevCfg& c, int64_t row0, int64_t rows, const T* q, const T* k,
              const T* v, const int32_t* idx, T* o, float* lse, float* pg, cudaStream_t stream,
              const std::string& ctx) {
  if (c.group > kMaxGroup || c.h_kv > 65535) return false;
  if (mode == kSlc && (c.n > kMaxSelEntries || c.n < 1)) return false;
  if (rows <= 0) return true;
  return with_head_dims(c.d_k, c.d_v, [&](auto dk, auto dv) {
    launch_dims<T, decltype(dk)::value, decltype(dv)::value>(mode, c, row0, rows, q, k, v, idx, o,
                                                             lse, pg, stream, ctx);
  });
}

}  // namespace

template <class T>
bool launch_attend_mma(int branch, const DevCfg& c, const T* q, const T* k, const T* v,
                       const int32_t* idx, T* o, float* lse, cudaStream_t stream,
                       const std::string& ctx) {
  if constexpr (std::is_same_v<T, float>) {
    return false;  // fp32 keeps full precision on the simple path
  } else {
    if (branch == kSlc && launch_slc_warp<T>(c, q, k, v, idx, o, lse, stream, ctx)) return true;
    if (branch != kSlc && launch_attend_wgmma<T>(branch, c, q, k, v, o, lse, stream, ctx))
      return true;
    return dispatch<T>(branch, c, 0, c.total_q, q, k, v, idx, o, lse, nullptr, stream, ctx);
  }
}

template <class T>
bool launch_probs_mma(const DevCfg& c, int64_t row0, int64_t rows, const T* q, const T* kc,
                      const float* lse_cmp, float* pg, cudaStream_t stream,
                      const std::string& ctx) {
  if constexpr (std::is_same_v<T, float>) {
    return false;
  } else {
    if (launch_probs_wgmma<T>(c, row0, rows, q, kc, lse_cmp, pg, stream, ctx)) return true;
    return dispatch<T>(kProbs, c, row0, rows, q, kc, nullptr, nullptr, nullptr,
                       const_cast<float*>(lse_cmp), pg, stream, ctx);
  }
}

#define NSA_INST(T)                                                                      \
  template bool launch_attend_mma<T>(int, const DevCfg&, const T*, const T*, const T*,   \
                                     const int32_t*, T*, float*, cudaStream_t,           \
                                     const std::string&);                                \
  template bool launch_probs_mma<T>(const DevCfg&, int64_t, int64_t, const T*, const T*, \
                                    const float*, float*, cudaStream_t, const std::string&);
NSA_INST(float)
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
