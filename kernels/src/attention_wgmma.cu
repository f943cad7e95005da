// Hopper attention for the compressed and window branches and the probs pass of the importance
// scores: warpgroup MMAs (wgmma, sm_90a) with Q, K and V in 128-byte-swizzled shared memory
// (wgmma.cuh). Same semantics and tile bookkeeping as the mma.sync kernel (attention_mma.cu,
// attention_tile.cuh); what differs is who feeds the tensor cores:
//
// - A CTA of two consumer warpgroups owns BM = 128 query vectors (R = 128 / G rows x G heads);
//   each computes S = Q K^T for its 64 vectors against a 64-key tile with wgmma reading
//   both operands straight from shared memory (no ldmatrix, no register copies of Q), then the
//   online softmax in registers (mma_softmax.cuh, the same code as the mma.sync kernels), then
//   O += P V with P from registers and V from shared memory (transposed B).
// - q.k slice by slice (DevCfg::qk_split): each 16-wide slice of d_k is its own wgmma into a
//   fresh accumulator (two alternate, so one slice computes while the previous one is added),
//   added to S in IEEE fp32 in slice order, as the mma.sync kernel does; docs/kernels.md
//   "Numerics" says why.
// - A third, producer warpgroup streams the key tiles: one thread issues TMA loads into three
//   stages guarded by mbarriers (full / empty), so the consumers never meet at a CTA barrier and
//   neither waits for the other's softmax. setmaxnreg hands the producer's registers to them.
// - The P V of tile i - 1 runs while the softmax of tile i does; in the probs pass, tile i - 1's
//   probabilities are formed while tile i's Q K^T runs.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "attention_tile.cuh"
#include "tensor_map.hpp"
#include "wgmma.cuh"

namespace nsa::cuda::detail {

namespace {

constexpr int kWgThreads = 256;                  // two consumer warpgroups
constexpr int kWgAllThreads = kWgThreads + 128;  // and a producer warpgroup
// Registers per thread after setmaxnreg. Attention, one CTA per SM: 128 x 40 + 256 x 232 fit the
// SM's 65536. The probs pass (no P V accumulators), two CTAs per SM: 2 (128 x 24 + 256 x 104).
template <bool PROBS>
constexpr int kProducerRegs = PROBS ? 24 : 40;
template <bool PROBS>
constexpr int kConsumerRegs = PROBS ? 104 : 232;
constexpr int kWgBM = 128;  // query vectors per CTA: 64 per warpgroup
constexpr int kWgMaxGroup = 64;
constexpr int kWgStages = 3;  // key tiles in shared memory: loading, in Q K^T, in P V
static_assert(kMapBoxRows == kTileKeys && kMapBoxCols == kSwAtomCols, "a TMA box is one tile atom");

template <class T, int DK, int DV, bool PROBS>
struct WgSmem {
  static constexpr size_t q_bytes = sizeof(T) * kWgBM * DK;
  static constexpr size_t k_bytes = sizeof(T) * kTileKeys * DK;
  static constexpr size_t v_bytes = sizeof(T) * kTileKeys * DV;
  static constexpr size_t k_off = q_bytes;
  // Layout: Q | K stages | RowInfo | V stages or the probs staging. A probs pass that sums heads
  // in registers leaves out the last region.
  static constexpr size_t row_off = k_off + kWgStages * k_bytes;
  static constexpr size_t v_off = row_off + sizeof(RowInfo<kWgBM>);
  static constexpr size_t v_region =
      PROBS ? sizeof(float) * kWgBM * kProbStride : kWgStages * v_bytes;
  // Swizzle atoms need 1024-byte alignment; the dynamic base is aligned by hand.
  static constexpr size_t launch_bytes = v_off + v_region + 1024;
  static constexpr size_t launch_bytes_no_v = v_off + 1024;
  static_assert(k_off % 1024 == 0 && v_off % 1024 == 0 && k_bytes % 1024 == 0 &&
                    v_bytes % 1024 == 0 && row_off % 16 == 0,
                "swizzle atoms on 1024-byte boundaries");
};

// S = Q K^T for a warpgroup's 64 vectors and a 64-key tile: qd, kd the descriptors of the Q
// rows' and the K tile's first k16 slice (desc_at gives slice kk's).
template <int ROWS>
__device__ __forceinline__ uint64_t desc_at(uint64_t d0, int kk) {
  return desc_add(d0, (kk >> 2) * ROWS * 128 + (kk & 3) * 32);
}

template <class T, int DK>
__device__ __forceinline__ void qk_wgmma(float (&s)[8][4], float (&t)[2][8][4], uint64_t qd,
                                         uint64_t kd, bool split) {
  constexpr int NS = DK / 16;
  auto issue = [&](float(&d)[8][4], int kk, bool acc) {
    wgmma_64x64_ss<T>(d, desc_at<kWgBM>(qd, kk), desc_at<kTileKeys>(kd, kk), acc);
  };
  wgmma_fence();
  if (!split) {
#pragma unroll
    for (int kk = 0; kk < NS; ++kk) issue(s, kk, kk > 0);
    wgmma_commit();
    wgmma_wait<0>();
    fence_regs(s);
    return;
  }
  // Slice 0 into S, slice j > 0 into t[(j - 1) % 2]; two slices in flight while one is added.
  issue(s, 0, false);
  wgmma_commit();
  issue(t[0], 1, false);
  wgmma_commit();
  if constexpr (NS > 2) {
    issue(t[1], 2, false);
    wgmma_commit();
  }
#pragma unroll
  for (int kk = 1; kk < NS; ++kk) {
    if (kk + 1 < NS)
      wgmma_wait<1>();
    else
      wgmma_wait<0>();
    float(&tk)[8][4] = t[(kk - 1) & 1];
    fence_regs(tk);
    if (kk == 1) fence_regs(s);
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[j][e] += tk[j][e];
    if (kk + 2 < NS) {
      wgmma_fence();
      issue(tk, kk + 2, false);
      wgmma_commit();
    }
  }
}

template <class T, int DK, int DV, bool PROBS>
__global__ void __launch_bounds__(kWgAllThreads, PROBS ? 2 : 1)
    attn_wgmma_kernel(DevCfg c, int mode, int R, int64_t row0, int64_t rows,
                      const T* __restrict__ q, const __grid_constant__ CUtensorMap k_map,
                      const __grid_constant__ CUtensorMap v_map, T* __restrict__ o,
                      float* __restrict__ lse, float* __restrict__ pg) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using S = WgSmem<T, DK, DV, PROBS>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (__cvta_generic_to_shared(smem_raw) & 1023)) & 1023);
  unsigned char* Qs = smem;
  unsigned char* Ks = smem + S::k_off;
  unsigned char* Vs = smem + S::v_off;
  float* Ps = reinterpret_cast<float*>(Vs);  // probs mode: [BM][kProbStride] (no V there)
  RowInfo<kWgBM>& ri = *reinterpret_cast<RowInfo<kWgBM>*>(smem + S::row_off);
  __shared__ int64_t s_lo, s_hi;
  // full[st]: stage st holds its tile (the producer's TMA landed); empty[st]: every consumer
  // thread is done reading it.
  __shared__ __align__(8) uint64_t full[kWgStages], empty[kWgStages];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  const int64_t G = c.group, g = blockIdx.y;
  // Last row tiles first: under causal masks they see the most keys.
  const int64_t first_row = row0 + static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * R;

  if (tid < kWgBM) setup_tile_row(c, mode, ri, first_row, R, row0 + rows, tid);
  if (tid == kWgThreads) {
    for (int st = 0; st < kWgStages; ++st) {
      mbar_init(&full[st], 1);
      mbar_init(&empty[st], kWgThreads);
    }
    mbar_init_fence();
  }
  __syncthreads();
  if (tid == 0) tile_key_range(ri, R, s_lo, s_hi);
  __syncthreads();
  const int64_t lo = s_lo, hi = s_hi;
  const int64_t n_tiles = hi > lo ? (hi - lo + kTileKeys - 1) / kTileKeys : 0;

  // Q tile: vector m = r G + head; vectors past R G and padding rows are zero-filled.
  {
    constexpr int kc = DK / 8;
    for (int e = tid; e < kWgBM * kc && tid < kWgThreads; e += kWgThreads) {
      const int m = e / kc, cc = e % kc;
      const int r = static_cast<int>(m / G);
      const bool ok = m < R * G && ri.row[r] >= 0;
      const int64_t h = g * G + m % G;
      cp16(Qs + sw128_offset<kWgBM>(m, cc), ok ? q + (ri.row[r] * c.h_q + h) * DK + cc * 8 : q, ok);
    }
  }
  cp_commit();
  cp_wait<0>();
  fence_async_shared();  // Q (cp.async) is read by wgmma through the async proxy
  __syncthreads();

  // ---- consumer warpgroups ----------------------------------------------------------------
  auto consume = [&] {
    const int m_a = warp * 16 + (lane >> 2), m_b = m_a + 8;
    const int r_a = static_cast<int>(m_a / G), r_b = static_cast<int>(m_b / G);
    const bool v_a = m_a < R * G, v_b = m_b < R * G;
    const bool wg_live = wg * 64 < R * G;          // uniform in the warpgroup, as wgmma needs
    const bool split = c.qk_split != 0 && !PROBS;  // the probs pass only ranks blocks
    float lse_a = 0.f, lse_b = 0.f;
    if (PROBS) {
      if (v_a && ri.row[r_a] >= 0) lse_a = lse[ri.row[r_a] * c.h_q + g * G + m_a % G];
      if (v_b && ri.row[r_b] >= 0) lse_b = lse[ri.row[r_b] * c.h_q + g * G + m_b % G];
    }
    float acc[DV / 8][4];
#pragma unroll
    for (int j = 0; j < DV / 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
    float t[2][8][4];  // the split's slice accumulators
#pragma unroll
    for (int x = 0; x < 2; ++x)
#pragma unroll
      for (int j = 0; j < 8; ++j) t[x][j][0] = t[x][j][1] = t[x][j][2] = t[x][j][3] = 0.f;
    SoftmaxRows sm;
    float s[8][4];
    // Attention: P of the previous tile, whose P V runs while this tile's softmax does. Probs:
    // the previous tile's scores, turned into probabilities while this tile's S = Q K^T runs.
    uint32_t pa[4][4];
    float s_prev[8][4];
    // Descriptors of the warpgroup's Q rows and of stage 0's K and V tiles; a stage is a fixed
    // byte offset from them.
    const uint64_t q_desc = sw128_desc(Qs + wg * 64 * 128, 16, 1024);
    const uint64_t k_desc = sw128_desc(Ks, 16, 1024);
    const uint64_t v_desc = sw128_desc(Vs, kTileKeys * 128, 1024);
    auto pv_issue = [&](int stage) {
      const uint64_t vd = desc_add(v_desc, stage * static_cast<int>(S::v_bytes));
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma_rs_tb<T, DV / 8>(acc, pa[kk], desc_add(vd, kk * 2048));
      wgmma_commit();
    };
    // This lane's rows' key ranges as offsets from the first tile's start (32-bit: a tile range
    // spans fewer than 2^31 keys). Padded vectors mask every column but never hold back the
    // unmasked path (their Q is zero and they are never written).
    const bool real_a = v_a && ri.row[r_a] >= 0, real_b = v_b && ri.row[r_b] >= 0;
    const int a_lo = real_a ? static_cast<int>(ri.lo[r_a] - lo) : 0;
    const int a_hi = real_a ? static_cast<int>(ri.hi[r_a] - lo) : 0;
    const int b_lo = real_b ? static_cast<int>(ri.lo[r_b] - lo) : 0;
    const int b_hi = real_b ? static_cast<int>(ri.hi[r_b] - lo) : 0;
    auto cols = [](bool real, int k_lo, int k_hi, int off) {
      TileCols tc;
      if (real) {
        tc.lo = min(max(k_lo - off, 0), kTileKeys);
        tc.hi = min(max(k_hi - off, 0), kTileKeys);
      }
      return tc;
    };
    // Tiles [full_lo, full_hi) keep every column of every real row of this warp.
    const int n_t = static_cast<int>(n_tiles);
    int full_lo = 0, full_hi = n_t;
    if (real_a) {
      full_lo = max(full_lo, (a_lo + kTileKeys - 1) / kTileKeys);
      full_hi = min(full_hi, a_hi / kTileKeys);
    }
    if (real_b) {
      full_lo = max(full_lo, (b_lo + kTileKeys - 1) / kTileKeys);
      full_hi = min(full_hi, b_hi / kTileKeys);
    }
    full_lo = __reduce_max_sync(0xffffffffu, full_lo);
    full_hi = __reduce_min_sync(0xffffffffu, full_hi);
    auto probs_of = [&](int tile) {
      const int off = tile * kTileKeys;
      const TileCols ca = cols(real_a, a_lo, a_hi, off), cb = cols(real_b, b_lo, b_hi, off);
      float tmax_a, tmax_b;
      scale_mask_tile<8>(s_prev, c.scale, tile >= full_lo && tile < full_hi, ca, cb, tmax_a,
                         tmax_b);
      probs_block(s_prev, lse_a, lse_b, G, m_a, m_b, r_a, r_b, ca, cb, ri, c, row0, g, lo + off, pg,
                  Ps);
    };
    const bool staged = PROBS && !probs_heads_in_lanes(G);
    const float w_a = real_a ? 1.f : 0.f, w_b = real_b ? 1.f : 0.f;

    // ---- consumers: tile i in stage st (i % 3, use parity ph). Attention releases a stage once
    // the P V that reads it (issued one tile later) has completed; probs once its Q K^T has.
    int st = 0, prev_st = 0;
    uint32_t ph = 0;
    for (int i = 0; i < n_t; ++i) {
      mbar_wait(&full[st], ph);
      const uint64_t kd = desc_add(k_desc, st * static_cast<int>(S::k_bytes));
      if (wg_live) {
        if constexpr (PROBS) {
          wgmma_fence();
#pragma unroll
          for (int kk = 0; kk < DK / 16; ++kk)
            wgmma_64x64_ss<T>(s, desc_at<kWgBM>(q_desc, kk), desc_at<kTileKeys>(kd, kk), kk > 0);
          wgmma_commit();
          if (i > 0) probs_of(i - 1);
          wgmma_wait<0>();
          fence_regs(s);
#pragma unroll
          for (int j = 0; j < 8; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) s_prev[j][e] = s[j][e];
          mbar_arrive(&empty[st]);
        } else {
          qk_wgmma<T, DK>(s, t, q_desc, kd, split);
          if (i > 0) pv_issue(prev_st);
          const int off = i * kTileKeys;
          const TileCols ca = cols(real_a, a_lo, a_hi, off), cb = cols(real_b, b_lo, b_hi, off);
          float tmax_a, tmax_b, corr_a, corr_b;
          scale_mask_tile<8>(s, c.scale, i >= full_lo && i < full_hi, ca, cb, tmax_a, tmax_b);
          softmax_weights<8>(s, tmax_a, tmax_b, w_a, w_b, sm, corr_a, corr_b);
          wgmma_wait<0>();
          fence_regs(acc);
          if (i > 0) mbar_arrive(&empty[prev_st]);
          rescale_rows<DV>(acc, corr_a, corr_b);
#pragma unroll
          for (int kk = 0; kk < 4; ++kk) {
            pa[kk][0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
            pa[kk][1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
            pa[kk][2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[kk][3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
          }
        }
      } else {
        mbar_arrive(&empty[st]);
      }
      if (staged && i > 0) {
        named_sync(kWgThreads);
        probs_reduce_staged(Ps, ri, R, G, c, row0, g, lo + (i - 1) * kTileKeys, pg, tid,
                            kWgThreads);
        named_sync(kWgThreads);  // Ps is written again for this tile
      }
      prev_st = st;
      if (++st == kWgStages) {
        st = 0;
        ph ^= 1;
      }
    }
    // The last tile: its probabilities, or its P V.
    if (n_t > 0) {
      if (wg_live) {
        if constexpr (PROBS) {
          probs_of(n_t - 1);
        } else {
          pv_issue(prev_st);
          wgmma_wait<0>();
          fence_regs(acc);
        }
      }
      if (staged) {
        named_sync(kWgThreads);
        probs_reduce_staged(Ps, ri, R, G, c, row0, g, lo + (n_t - 1) * kTileKeys, pg, tid,
                            kWgThreads);
      }
    }
    if constexpr (!PROBS) {
      if (!wg_live) return;
      const bool out_a = v_a && ri.row[r_a] >= 0, out_b = v_b && ri.row[r_b] >= 0;
      const int64_t at_a = out_a ? ri.row[r_a] * c.h_q + g * G + m_a % G : 0;
      const int64_t at_b = out_b ? ri.row[r_b] * c.h_q + g * G + m_b % G : 0;
      write_rows<T, DV>(sm, acc, out_a ? o + at_a * DV : nullptr, out_b ? o + at_b * DV : nullptr,
                        out_a ? lse + at_a : nullptr, out_b ? lse + at_b : nullptr);
    }
  };

  // ---- producer warpgroup: one thread streams K (and V) tiles with TMA; the group hands its
  // registers to the consumers (setmaxnreg: one if/else, each role a warpgroup).
  if (tid >= kWgThreads) {
    set_max_regs_dec<kProducerRegs<PROBS>>();
    if (tid != kWgThreads) return;
    constexpr uint32_t kBytes = sizeof(T) * kTileKeys * (PROBS ? DK : DK + DV);
    int st = 0;
    uint32_t ph = 0;  // parity of stage st's current use
    for (int i = 0; i < static_cast<int>(n_tiles); ++i) {
      if (i >= kWgStages) mbar_wait(&empty[st], ph ^ 1);  // its previous use, released
      mbar_arrive_expect_tx(&full[st], kBytes);
      const int row = static_cast<int>(lo + i * kTileKeys), head = static_cast<int>(g);
#pragma unroll
      for (int a = 0; a < DK / kSwAtomCols; ++a)
        tma_load_3d(Ks + st * S::k_bytes + a * kTileKeys * 128, &k_map, a * kSwAtomCols, head, row,
                    &full[st]);
      if constexpr (!PROBS) {
#pragma unroll
        for (int a = 0; a < DV / kSwAtomCols; ++a)
          tma_load_3d(Vs + st * S::v_bytes + a * kTileKeys * 128, &v_map, a * kSwAtomCols, head,
                      row, &full[st]);
      }
      if (++st == kWgStages) {
        st = 0;
        ph ^= 1;
      }
    }
  } else {
    set_max_regs_inc<kConsumerRegs<PROBS>>();
    consume();
  }

#else
  __trap();  // built without sm_90a: the launcher never selects this kernel
#endif
}

template <class T, int DK, int DV, bool PROBS>
void launch_wg(int mode, const DevCfg& c, int64_t row0, int64_t rows, const T* q, const T* k,
               const T* v, T* o, float* lse, float* pg, cudaStream_t stream,
               const std::string& ctx) {
  using S = WgSmem<T, DK, DV, PROBS>;
  static bool configured = false;  // per instantiation
  if (!configured) {
    check(cudaFuncSetAttribute(attn_wgmma_kernel<T, DK, DV, PROBS>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(S::launch_bytes)),
          "attn_wgmma_kernel (shared memory)", ctx);
    check(cudaFuncSetAttribute(attn_wgmma_kernel<T, DK, DV, PROBS>,
                               cudaFuncAttributePreferredSharedMemoryCarveout,
                               cudaSharedmemCarveoutMaxShared),
          "attn_wgmma_kernel (shared memory carveout)", ctx);
    configured = true;
  }
  const int R = kWgBM / static_cast<int>(c.group);
  const size_t bytes =
      PROBS && probs_heads_in_lanes(c.group) ? S::launch_bytes_no_v : S::launch_bytes;
  const int64_t tiles = (rows + R - 1) / R;
  const int64_t key_rows = mode == kWin ? c.total_k : c.total_c;
  const CUtensorMap k_map = key_tile_map(k, q, key_rows, c.h_kv, DK, ctx);
  const CUtensorMap v_map = PROBS ? k_map : key_tile_map(v, q, key_rows, c.h_kv, DV, ctx);
  attn_wgmma_kernel<T, DK, DV, PROBS>
      <<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(c.h_kv)), kWgAllThreads, bytes,
         stream>>>(c, mode, R, row0, rows, q, k_map, v_map, o, lse, pg);
  check_launch(mode == kCmp   ? "attn_wgmma_kernel<cmp>"
               : mode == kWin ? "attn_wgmma_kernel<win>"
                              : "attn_wgmma_kernel<probs>",
               ctx);
}

template <class T>
bool dispatch_wg(int mode, const DevCfg& c, int64_t row0, int64_t rows, const T* q, const T* k,
                 const T* v, T* o, float* lse, float* pg, cudaStream_t stream,
                 const std::string& ctx) {
  if (c.wgmma == 0 || mode == kSlc || c.group > kWgMaxGroup || c.h_kv > 65535) return false;
  // TMA coordinates are 32-bit: key rows past 2^31 stay on the mma.sync kernel.
  if ((mode == kWin ? c.total_k : c.total_c) >= (int64_t{1} << 31) - kTileKeys) return false;
  if (rows <= 0) return true;
  return with_head_dims(c.d_k, c.d_v, [&](auto dk, auto dv) {
    constexpr int DK = decltype(dk)::value, DV = decltype(dv)::value;
    if (mode == kProbs)
      launch_wg<T, DK, DV, true>(mode, c, row0, rows, q, k, v, o, lse, pg, stream, ctx);
    else
      launch_wg<T, DK, DV, false>(mode, c, row0, rows, q, k, v, o, lse, pg, stream, ctx);
  });
}

}  // namespace

// fp16 and bf16 only: fp32 stays on the simple path (launch_attend_mma never asks).
template <class T>
bool launch_attend_wgmma(int branch, const DevCfg& c, const T* q, const T* k, const T* v, T* o,
                         float* lse, cudaStream_t stream, const std::string& ctx) {
  return dispatch_wg<T>(branch, c, 0, c.total_q, q, k, v, o, lse, nullptr, stream, ctx);
}

template <class T>
bool launch_probs_wgmma(const DevCfg& c, int64_t row0, int64_t rows, const T* q, const T* kc,
                        const float* lse_cmp, float* pg, cudaStream_t stream,
                        const std::string& ctx) {
  return dispatch_wg<T>(kProbs, c, row0, rows, q, kc, nullptr, nullptr, const_cast<float*>(lse_cmp),
                        pg, stream, ctx);
}

template bool launch_attend_wgmma<__half>(int, const DevCfg&, const __half*, const __half*,
                                          const __half*, __half*, float*, cudaStream_t,
                                          const std::string&);
template bool launch_attend_wgmma<__nv_bfloat16>(int, const DevCfg&, const __nv_bfloat16*,
                                                 const __nv_bfloat16*, const __nv_bfloat16*,
                                                 __nv_bfloat16*, float*, cudaStream_t,
                                                 const std::string&);
template bool launch_probs_wgmma<__half>(const DevCfg&, int64_t, int64_t, const __half*,
                                         const __half*, const float*, float*, cudaStream_t,
                                         const std::string&);
template bool launch_probs_wgmma<__nv_bfloat16>(const DevCfg&, int64_t, int64_t,
                                                const __nv_bfloat16*, const __nv_bfloat16*,
                                                const float*, float*, cudaStream_t,
                                                const std::string&);

}  // namespace nsa::cuda::detail
