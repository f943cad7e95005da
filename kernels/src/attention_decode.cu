// Split-K attention for decode-shaped batches: the compressed and window branches and the probs
// pass of the importance scores where every sequence has at most kDecodeMaxRows query rows.
//
// The CTA-wide kernels (attention_mma.cu, attention_wgmma.cu) pack consecutive rows into a tile
// and walk the union of their key ranges; in a decode batch those rows belong to different
// sequences, so that union spans whole sequences of keys that every row masks away, and one CTA
// per tile leaves most SMs idle. Here an item is the G heads of up to 16 / G consecutive rows of
// one sequence (one m16 block of query vectors, as in attention_slc_warp.cu), its key range is
// that of its own rows only, and the range is cut into chunks that independent warps walk
// (sub-tiles of 16 keys through the warp's own shared memory ring, no block-wide barrier).
// Each chunk leaves a normalized fp32 partial output and its lse; decode_merge_kernel combines
// an item's chunks in chunk order (deterministic, no atomics). With one chunk per item the warp
// writes the output directly. The probs pass needs no merge: with the lse known, each key's
// weight p = exp(z - lse) is final, so chunks write their own columns of pg. Cheaper still, the
// compressed branch can store its scores z (DecodeArgs::z) for probs_from_scores_kernel, which
// then reads 4 bytes per (row, head, block) instead of the compressed keys again. The selection's
// decode chunks are a mode of attention_slc_warp.cu; they share the merge kernel here.
// The tile arithmetic is that of the other tensor-core kernels (mma_softmax.cuh).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "attention_tile.cuh"  // AttnMode

namespace nsa::cuda::detail {

namespace {

constexpr int kSub = 16;       // keys per sub-tile
constexpr int kWarps = 4;      // warps (chunks) per CTA
constexpr int kMerge = 4;      // vectors (one warp each) per CTA of the merge kernel
constexpr int kPsStride = 20;  // probs staging row stride in floats (16 keys, bank spread)

// STAGES sub-tiles per warp's ring: STAGES - 1 of them in flight while one is computed.
template <class T, int DK, int DV, int STAGES>
struct DecodeSmem {
  static constexpr int kQs = DK + 8, kVs = DV + 8;  // padded row strides (bank spread)
  static constexpr size_t k_bytes = sizeof(T) * kSub * kQs;
  static constexpr size_t v_bytes = sizeof(T) * kSub * kVs;
  static constexpr size_t per_warp = STAGES * (k_bytes + v_bytes);
  static_assert(STAGES >= 2, "one sub-tile computed while the next loads");
  static_assert(k_bytes % 16 == 0 && v_bytes % 16 == 0, "cp.async alignment");
  static_assert(v_bytes >= sizeof(float) * 16 * kPsStride, "probs staging fits a V stage");
};

// The compressed and window kernels keep three sub-tiles per warp where two CTAs' rings fit in
// an SM's shared memory (227 KB; at d_k = d_v = 128 registers allow two CTAs anyway): two
// sub-tiles in flight per warp instead of one. On the H200 that measured the same as two stages
// (B = 16, G = 16, T_k = 65536: 0.1194 against 0.1190 ms a step; bytes in flight were not the
// limit), and it costs only shared memory nothing else uses. The probs pass (which loads no V)
// and the three-CTA build keep two.
template <class T, int DK, int DV>
constexpr int deep_stages() {
  return 2 * kWarps * DecodeSmem<T, DK, DV, 3>::per_warp + 2 * 1024 <= 227 * 1024 ? 3 : 2;
}

// MMA row m of an item (G <= 16): tile row m / G, head m % G; vectors past the item's rows pad.
struct ItemRows {
  int64_t G, rows;
  __device__ bool valid(int m) const { return m < decode_rows_per_item(G) * G && m / G < rows; }
};

// Key range [lo, hi) of row position t of a sequence (absolute rows; compressed rows for the
// compressed branch and the probs pass), as setup_tile_row defines them.
__device__ __forceinline__ void row_range(const DevCfg& c, int mode, const DevSeq& sq, int64_t t,
                                          int64_t& lo, int64_t& hi) {
  if (mode == kWin) {
    const int64_t span = c.window_keys == 0 ? c.w : c.w + 1;
    lo = sq.k_begin + (t - span + 1 > 0 ? t - span + 1 : 0);
    hi = sq.k_begin + t + 1;
  } else {
    lo = sq.c_begin;
    hi = sq.c_begin + visible_cmp(c, t);
  }
}

// MINB = 3 asks for three resident CTAs (12 warps) per SM, at most 168 registers a thread: the
// compressed and window branches at d_k = d_v = 128 use 190 otherwise, which leaves room for two.
template <class T, int DK, int DV, bool PROBS, int MINB, int STAGES>
__global__ void __launch_bounds__(kWarps * 32, MINB)
    attn_decode_kernel(DevCfg c, int mode, DecodeArgs a, int64_t row0, int64_t row_end,
                       const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                       T* __restrict__ o, float* __restrict__ lse, float* __restrict__ pg) {
  using S = DecodeSmem<T, DK, DV, STAGES>;
  extern __shared__ __align__(16) unsigned char smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int b = mode == kProbs ? kCmp : mode;
  // Constant indices keep DecodeArgs in the parameter space (no local copy).
  const int64_t chunks = b == kCmp ? a.chunks[kCmp] : a.chunks[kWin];
  const int64_t chunk_keys = b == kCmp ? a.chunk[kCmp] : a.chunk[kWin];
  const int64_t chunk = blockIdx.z * static_cast<int64_t>(kWarps) + warp, g = blockIdx.y;
  if (chunk >= chunks) return;  // whole warps only; nothing below synchronizes across warps
  unsigned char* base_ptr = smem + warp * S::per_warp;
  T* Ks = reinterpret_cast<T*>(base_ptr);
  T* Vs = reinterpret_cast<T*>(base_ptr + STAGES * S::k_bytes);
  T* Qs = Ks + (STAGES - 1) * kSub * S::kQs;  // first filled with keys at iteration 0
  float* Ps = reinterpret_cast<float*>(Vs);   // probs: [16][kPsStride] (no V there)

  const DecodeItem it = a.items[blockIdx.x];
  const DevSeq sq = c.seqs[it.seq];
  const int64_t G = c.group;
  const ItemRows ir{G, it.rows};
  auto row_of = [&](int m) { return it.row0 + m / G; };
  auto head_of = [&](int m) { return g * G + m % G; };
  auto pos_of = [&](int64_t row) { return sq.t_k - sq.t_q + (row - sq.q_begin); };
  // A vector takes part when it exists and (probs) its row lies in this pass's rows.
  auto live = [&](int m) {
    if (!ir.valid(m)) return false;
    const int64_t row = row_of(m);
    return !PROBS || (row >= row0 && row < row_end);
  };

  // The item's key range (rows are consecutive: the first has the lowest start, the last the
  // highest end), and this chunk of it.
  int64_t lo_first, hi_first, lo_last, hi_last;
  row_range(c, b, sq, pos_of(it.row0), lo_first, hi_first);
  row_range(c, b, sq, pos_of(it.row0 + it.rows - 1), lo_last, hi_last);
  const int64_t span_lo = lo_first, span_hi = hi_last;
  const int64_t c_lo = span_lo + chunk * chunk_keys;
  const int64_t c_hi = min(span_hi, c_lo + chunk_keys);
  const int64_t n_sub = c_hi > c_lo ? (c_hi - c_lo + kSub - 1) / kSub : 0;

  // This lane's vectors m_a, m_b and their rows' key ranges clipped to the chunk.
  const int m_a = lane >> 2, m_b = m_a + 8;
  const bool v_a = live(m_a), v_b = live(m_b);
  int64_t lo_a = 0, hi_a = 0, lo_b = 0, hi_b = 0;
  if (v_a) row_range(c, b, sq, pos_of(row_of(m_a)), lo_a, hi_a);
  if (v_b) row_range(c, b, sq, pos_of(row_of(m_b)), lo_b, hi_b);
  lo_a = max(lo_a, c_lo);
  hi_a = min(hi_a, c_hi);
  lo_b = max(lo_b, c_lo);
  hi_b = min(hi_b, c_hi);
  // The same relative to the chunk's first key, in [0, c_hi - c_lo]: 32-bit per sub-tile
  // (a chunk holds at most chunk_keys keys; the launchers decline chunks of 2^31 or more).
  auto rel = [&](int64_t x) {
    return static_cast<int>(min(max(x - c_lo, int64_t{0}), c_hi - c_lo));
  };
  const int la = rel(lo_a), ha = rel(hi_a), lb = rel(lo_b), hb = rel(hi_b);

  // ---- Q of the 16 vectors, then the key sub-tiles -----------------------------------------
  {
    constexpr int kc = DK / 8;
    for (int e = lane; e < 16 * kc; e += 32) {
      const int m = e / kc, cc = e % kc;
      const bool ok = live(m);
      cp16(Qs + m * S::kQs + cc * 8, ok ? q + (row_of(m) * c.h_q + head_of(m)) * DK + cc * 8 : q,
           ok);
    }
  }
  // A sub-tile's copy as copy_rows lays it out (each pass of the warp reads 512 contiguous bytes
  // of whole rows: 4 cache lines per instruction at d = 128), but cheaper to address: the pass
  // offsets are 32-bit (16 rows of h_kv <= 65535 heads of d <= 256 elements stay below 2^28)
  // from one 64-bit row pointer per lane, and sub-tiles wholly inside the key tensor (all but
  // possibly the last) skip the per-row bound checks. copy_rows spends a 64-bit address and bound
  // check per copy: ~160 of the loop's ~600 SASS instructions a sub-tile at d = 128. (Rows per
  // lane pair with immediate offsets took fewer instructions still but 16 cache lines per
  // instruction, and the branch slowed from 55 to 73 us under Nsight Compute on the H200.)
  const int64_t key_rows = b == kCmp ? c.total_c : c.total_k;
  auto copy_sub = [&](auto dim, T* dst, int stride, const T* src, int64_t start) {
    constexpr int D = decltype(dim)::value, kc = D / 8;
    if constexpr (32 % kc == 0) {
      constexpr int per = 32 / kc;  // rows per pass
      const int rr = lane / kc, cc = (lane % kc) * 8;
      // Bytes between passes; a 32 x 32 -> 64-bit multiply-add per copy (one IMAD.WIDE.U32).
      const uint32_t pass = static_cast<uint32_t>(per * c.h_kv * D * sizeof(T));
      const char* row = reinterpret_cast<const char*>(src + ((start + rr) * c.h_kv + g) * D + cc);
      T* d0 = dst + rr * stride + cc;
      auto at = [&](int p) { return row + static_cast<uint64_t>(pass) * static_cast<uint32_t>(p); };
      if (start + kSub <= key_rows) {
#pragma unroll
        for (int p = 0; p < kSub / per; ++p) cp16(d0 + p * per * stride, at(p), true);
      } else {
#pragma unroll
        for (int p = 0; p < kSub / per; ++p) {
          const bool ok = start + rr + p * per < key_rows;
          cp16(d0 + p * per * stride, ok ? static_cast<const void*>(at(p)) : src, ok);
        }
      }
    } else {
      copy_rows<T, D, kSub, 32>(dst, stride, src, start, key_rows, c.h_kv, g, lane);
    }
  };
  auto load_sub = [&](int64_t i, int st) {
    const int64_t start = c_lo + i * kSub;
    copy_sub(std::integral_constant<int, DK>{}, Ks + st * kSub * S::kQs, S::kQs, k, start);
    if (!PROBS)
      copy_sub(std::integral_constant<int, DV>{}, Vs + st * kSub * S::kVs, S::kVs, v, start);
  };
  // Sub-tiles 0 .. STAGES - 2 in flight, the first with Q; one group committed per stage and per
  // iteration keeps cp_wait's count exact.
#pragma unroll
  for (int i = 0; i < STAGES - 1; ++i) {
    if (i < n_sub) load_sub(i, i);
    cp_commit();
  }
  cp_wait<STAGES - 2>();
  __syncwarp();
  QFrags<T, DK> qf;
  qf.load(Qs, S::kQs);
  __syncwarp();  // Q's stage is refilled at iteration kStages - 1

  const float qk_scale = c.scale;
  // As in attention_mma.cu: the probs pass ranks blocks only and skips the split.
  const bool qk_split = c.qk_split != 0 && !PROBS;
  float lse_a = 0.f, lse_b = 0.f;  // probs: the known lse (natural units)
  if (PROBS) {
    if (v_a) lse_a = lse[row_of(m_a) * c.h_q + head_of(m_a)];
    if (v_b) lse_b = lse[row_of(m_b) * c.h_q + head_of(m_b)];
  }
  float acc[1][DV / 8][4];
#pragma unroll
  for (int j = 0; j < DV / 8; ++j) acc[0][j][0] = acc[0][j][1] = acc[0][j][2] = acc[0][j][3] = 0.f;
  SoftmaxRows sm;
  const int64_t rows_here = decode_rows_per_item(G);
  // Compressed branch with a.z: this lane's rows of the stored scores, indexed by key row.
  const bool store_z = !PROBS && b == kCmp && a.z;
  const int64_t z_off_a = v_a ? (row_of(m_a) * c.h_q + head_of(m_a)) * c.nc_max - sq.c_begin : 0;
  const int64_t z_off_b = v_b ? (row_of(m_b) * c.h_q + head_of(m_b)) * c.nc_max - sq.c_begin : 0;

  // st: sub-tile i's stage; ahead: that of sub-tile i + STAGES - 1, loaded now.
  int st = 0, ahead = STAGES - 1;
  for (int64_t i = 0; i < n_sub; ++i) {
    if (i + STAGES - 1 < n_sub) load_sub(i + STAGES - 1, ahead);
    cp_commit();
    cp_wait<STAGES - 1>();
    __syncwarp();
    const int64_t start = c_lo + i * kSub;
    const int off = static_cast<int>(i) * kSub;
    const TileCols ca = v_a ? TileCols::relative(la - off, ha - off, kSub) : TileCols();
    const TileCols cb = v_b ? TileCols::relative(lb - off, hb - off, kSub) : TileCols();
    const bool full = __all_sync(0xffffffffu, (!v_a || ca.all(kSub)) && (!v_b || cb.all(kSub)));
    float s[1][kSub / 8][4];
    qk_tile<T, DK, kSub / 8, 1>(s, qf, Ks + st * kSub * S::kQs, S::kQs, qk_split);
    float tmax_a, tmax_b;
    // Padded vectors (zero Q, never written or summed) may keep any column.
    scale_mask_tile<kSub / 8>(s[0], qk_scale, full, ca, cb, tmax_a, tmax_b);
    if (store_z) {  // the scores for the probs pass, visible columns only
      const int c0 = (lane & 3) * 2;
      float* za = a.z + z_off_a + start + c0;
      float* zb = a.z + z_off_b + start + c0;
      if (full) {  // every column of every live vector: no compares (a row of nc_max floats
                   // need not be 8-byte aligned, so no float2 either)
#pragma unroll
        for (int j = 0; j < kSub / 8; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            if (v_a) za[j * 8 + e] = s[0][j][e];
            if (v_b) zb[j * 8 + e] = s[0][j][2 + e];
          }
      } else {
#pragma unroll
        for (int j = 0; j < kSub / 8; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int col = j * 8 + c0 + e;
            if (v_a && col >= ca.lo && col < ca.hi) za[j * 8 + e] = s[0][j][e];
            if (v_b && col >= cb.lo && col < cb.hi) zb[j * 8 + e] = s[0][j][2 + e];
          }
      }
    }
    if (PROBS) {
      // p = exp(z - lse) per vector, staged, then summed over the G heads of each row.
      const int c0 = (lane & 3) * 2;
#pragma unroll
      for (int j = 0; j < kSub / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          Ps[m_a * kPsStride + j * 8 + c0 + e] = exp2_ftz((s[0][j][e] - lse_a) * kLog2e);
          Ps[m_b * kPsStride + j * 8 + c0 + e] = exp2_ftz((s[0][j][2 + e] - lse_b) * kLog2e);
        }
      __syncwarp();
      for (int e = lane; e < rows_here * kSub; e += 32) {
        const int r = e / kSub, col = e % kSub, m0 = r * static_cast<int>(G);
        if (!live(m0)) continue;
        const int64_t row = row_of(m0), u = start + col;
        int64_t lo_r, hi_r;
        row_range(c, kCmp, sq, pos_of(row), lo_r, hi_r);
        if (u < max(lo_r, c_lo) || u >= min(hi_r, c_hi)) continue;
        float total = 0.f;
        for (int64_t h = 0; h < G; ++h) total += Ps[(m0 + h) * kPsStride + col];
        pg[((row - row0) * c.h_kv + g) * c.nc_max + (u - sq.c_begin)] = total;
      }
    } else {
      softmax_update<kSub / 8, DV>(s[0], tmax_a, tmax_b, 1.f, 1.f, sm, acc[0]);
      pv_tile<T, DV, kSub / 8, 1>(s, acc, Vs + st * kSub * S::kVs, S::kVs);
    }
    __syncwarp();  // stage st (and the probs staging) is refilled by a later iteration
    st = st + 1 == STAGES ? 0 : st + 1;
    ahead = ahead + 1 == STAGES ? 0 : ahead + 1;
  }
  if (PROBS) return;

  // ---- epilogue: the output itself (one chunk) or this chunk's partial ----------------------
  if (chunks == 1) {
    const int64_t at_a = v_a ? row_of(m_a) * c.h_q + head_of(m_a) : 0;
    const int64_t at_b = v_b ? row_of(m_b) * c.h_q + head_of(m_b) : 0;
    write_rows<T, DV>(sm, acc[0], v_a ? o + at_a * DV : nullptr, v_b ? o + at_b * DV : nullptr,
                      v_a ? lse + at_a : nullptr, v_b ? lse + at_b : nullptr);
    return;
  }
  const int64_t slot = ((static_cast<int64_t>(blockIdx.x) * c.h_kv + g) * chunks + chunk) * 16;
  write_partial_rows<DV>(sm, acc[0], v_a ? a.part_o + (slot + m_a) * DV : nullptr,
                         v_b ? a.part_o + (slot + m_b) * DV : nullptr,
                         v_a ? a.part_lse + slot + m_a : nullptr,
                         v_b ? a.part_lse + slot + m_b : nullptr);
}

// The merged lse of one vector's chunk partials (slot0: its first, 16 apart), natural units, in
// every lane: the lanes read the chunks side by side, and the maximum and the sum of the weights
// exp(lse_c - max) are butterfly reductions (a fixed order). The merge kernel and the probs pass
// both take it from here, so the lse that the probs pass uses is the branch's own, bit for bit.
// Chunks without keys (lse_c = -inf) weigh 0; -inf when no chunk has a key.
struct ChunkLse {
  float mx, total;  // the maximum chunk lse and the sum of the weights relative to it
  __device__ float weight(float l) const {
    return l == -INFINITY ? 0.f : exp2_ftz((l - mx) * kLog2e);
  }
  __device__ float lse() const { return total > 0.f ? mx + logf(total) : -INFINITY; }
};
__device__ __forceinline__ ChunkLse chunk_lse(const float* __restrict__ part_lse, int64_t slot0,
                                              int64_t chunks) {
  const int lane = threadIdx.x & 31;
  // Up to 32 chunks (one per lane) each lane keeps its lse in a register for the second pass.
  const float mine = lane < chunks ? part_lse[slot0 + lane * 16] : -INFINITY;
  ChunkLse r{mine, 0.f};
  for (int64_t ci = lane + 32; ci < chunks; ci += 32) r.mx = fmaxf(r.mx, part_lse[slot0 + ci * 16]);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1)
    r.mx = fmaxf(r.mx, __shfl_xor_sync(0xffffffffu, r.mx, off));
  if (r.mx == -INFINITY) return r;
  float part = r.weight(mine);
  for (int64_t ci = lane + 32; ci < chunks; ci += 32) part += r.weight(part_lse[slot0 + ci * 16]);
  r.total = warp_sum(part);
  return r;
}

// Packed query row `row` of sequence `s` in the decode items: its item and its row in that item.
__device__ __forceinline__ void item_of_row(const DecodeArgs& a, const DevSeq& sq, int64_t s,
                                            int64_t row, int64_t G, int64_t& item,
                                            int64_t& row_in_item) {
  const int64_t local = row - sq.q_begin, rb = decode_rows_per_item(G);
  item = a.seq_item[s] + local / rb;
  row_in_item = local % rb;
}

// One CTA per (row, KV head) and 1024 compressed blocks (grid x: rows * h_kv, y: blocks / 1024):
// pg = sum over the G heads of exp(z - lse), for the row's visible blocks (the others are not read
// by the score mapping). The row's position and its heads' lse are found once per CTA, not per
// thread from a flat index (64-bit divisions and a sequence lookup per element). With several
// chunks the lse is merged here from the partials (chunk_lse), so the branch's own merge need not
// run first; CTAs of 1024 blocks merge it a quarter as often as CTAs of 256, which took 17.1 us
// under Nsight Compute at B = 16, G = 16, T_k = 65536 on the H200 (17 MB of scores) when each
// thread loaded eight heads' scores at a time: the pass is bound by the loads in flight, so each
// thread now loads all its scores (every head of its kCols blocks) before it merges the lse,
// which does not depend on them, then sums them in head order. HMAX bounds G, so that small
// groups keep few registers (and more CTAs per SM) for their fewer loads. With p_cmp
// ([total_q, h_q, nc_max], kept scores) it also writes each head's term, 0 past the visible blocks.
constexpr int kCols = 4;  // compressed blocks per thread (1024 per CTA: each CTA merges the lse)
template <int HMAX>
__global__ void __launch_bounds__(256)
    probs_from_scores_kernel(DevCfg c, DecodeArgs a, int64_t row0, int64_t rows,
                             const float* __restrict__ lse, float* __restrict__ pg,
                             float* __restrict__ p_cmp) {
  __shared__ float lse_s[16];  // G <= 16 (decode_fits)
  const int64_t i0 = blockIdx.y * static_cast<int64_t>(blockDim.x) * kCols + threadIdx.x;
  const int warp = threadIdx.x >> 5;
  const float* __restrict__ z = a.z;
  for (int64_t local = blockIdx.x; local < rows * c.h_kv; local += gridDim.x) {
    const int64_t row = row0 + local / c.h_kv, g = local % c.h_kv;
    const int64_t s = seq_of(c.cu_q, c.num_seqs, row);
    const DevSeq sq = c.seqs[s];
    const int64_t h0 = row * c.h_q + g * c.group;
    const int64_t vis = visible_cmp(c, sq.t_k - sq.t_q + (row - sq.q_begin));
    float zs[kCols][HMAX];  // G <= HMAX
#pragma unroll
    for (int k = 0; k < kCols; ++k) {
      const int64_t i = i0 + k * static_cast<int64_t>(blockDim.x);
#pragma unroll
      for (int h = 0; h < HMAX; ++h)
        zs[k][h] = h < c.group && i < vis ? z[(h0 + h) * c.nc_max + i] : 0.f;
    }
    __syncthreads();  // lse_s of the previous row is no longer read
    if (a.chunks[kCmp] > 1) {
      int64_t item, r;
      item_of_row(a, sq, s, row, c.group, item, r);
      for (int64_t h = warp; h < c.group; h += blockDim.x / 32) {
        const int64_t slot0 = (item * c.h_kv + g) * a.chunks[kCmp] * 16 + r * c.group + h;
        const float l = chunk_lse(a.part_lse, slot0, a.chunks[kCmp]).lse();
        if ((threadIdx.x & 31) == 0) lse_s[h] = l;
      }
    } else if (threadIdx.x < c.group) {
      lse_s[threadIdx.x] = lse[h0 + threadIdx.x];
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kCols; ++k) {
      const int64_t i = i0 + k * static_cast<int64_t>(blockDim.x);
      if (i >= c.nc_max) break;
      if (i >= vis) {
        if (p_cmp)
          for (int64_t h = 0; h < c.group; ++h) p_cmp[(h0 + h) * c.nc_max + i] = 0.f;
        continue;
      }
      float total_p = 0.f;
#pragma unroll
      for (int h = 0; h < HMAX; ++h)
        if (h < c.group) {
          const float p = exp2_ftz((zs[k][h] - lse_s[h]) * kLog2e);
          total_p += p;
          if (p_cmp) p_cmp[(h0 + h) * c.nc_max + i] = p;
        }
      pg[local * c.nc_max + i] = total_p;
    }
  }
}

// One warp per (item, KV head, vector): lse = log sum_c exp(lse_c) (chunk_lse), o = sum_c
// exp(lse_c - lse) o_c over the chunks in order (chunks without keys, lse_c = -inf, take no
// part), rounded once. Each step of the sum loads kMergeUnroll chunks before it adds them in
// order, instead of one load per chunk and step: the merge of 22 chunks at B = 16, G = 16,
// T_k = 65536 went from 14.7 to 10.0 us under Nsight Compute on the H200.
template <class T, int DV>
__global__ void __launch_bounds__(kMerge * 32)
    decode_merge_kernel(DevCfg c, int mode, DecodeArgs a, T* __restrict__ o,
                        float* __restrict__ lse) {
  constexpr int kMergeUnroll = 8;
  const int lane = threadIdx.x & 31;
  const int64_t vec = static_cast<int64_t>(blockIdx.x) * kMerge + (threadIdx.x >> 5);
  if (vec >= a.n_items * c.h_kv * 16) return;
  const int m = static_cast<int>(vec % 16);
  const int64_t g = (vec / 16) % c.h_kv, item = vec / (16 * c.h_kv);
  const DecodeItem it = a.items[item];
  const ItemRows ir{c.group, it.rows};
  if (!ir.valid(m)) return;
  const int64_t chunks = mode == kCmp   ? a.chunks[kCmp]
                         : mode == kSlc ? a.chunks[kSlc]
                                        : a.chunks[kWin];
  const int64_t slot0 = (item * c.h_kv + g) * chunks * 16 + m;
  const ChunkLse cl = chunk_lse(a.part_lse, slot0, chunks);
  const int64_t at = (it.row0 + m / c.group) * c.h_q + g * c.group + m % c.group;
  float2 out[DV / 64];
#pragma unroll
  for (int j = 0; j < DV / 64; ++j) out[j] = make_float2(0.f, 0.f);
  if (cl.total > 0.f)
    for (int64_t c0 = 0; c0 < chunks; c0 += kMergeUnroll) {
      float l[kMergeUnroll];
      float2 x[kMergeUnroll][DV / 64];
#pragma unroll
      for (int u = 0; u < kMergeUnroll; ++u) {
        const int64_t ci = c0 + u;
        l[u] = ci < chunks ? a.part_lse[slot0 + ci * 16] : -INFINITY;
        const float* src = a.part_o + (slot0 + (ci < chunks ? ci : 0) * 16) * DV;
#pragma unroll
        for (int j = 0; j < DV / 64; ++j)
          x[u][j] = *reinterpret_cast<const float2*>(src + j * 64 + lane * 2);
      }
#pragma unroll
      for (int u = 0; u < kMergeUnroll; ++u) {
        if (l[u] == -INFINITY) continue;
        const float w = cl.weight(l[u]);
#pragma unroll
        for (int j = 0; j < DV / 64; ++j) {
          out[j].x += w * x[u][j].x;
          out[j].y += w * x[u][j].y;
        }
      }
    }
  const float total = cl.total;
  const float inv = total > 0.f ? 1.f / total : 0.f;
#pragma unroll
  for (int j = 0; j < DV / 64; ++j)
    *reinterpret_cast<uint32_t*>(o + at * DV + j * 64 + lane * 2) =
        pack2<T>(out[j].x * inv, out[j].y * inv);
  if (lane == 0) lse[at] = cl.lse();
}

template <class T, int DV>
void merge_dv(int mode, const DevCfg& c, const DecodeArgs& a, T* o, float* lse, cudaStream_t stream,
              const std::string& ctx) {
  const int64_t vecs = a.n_items * c.h_kv * 16;
  decode_merge_kernel<T, DV>
      <<<blocks_for(vecs, kMerge), kMerge * 32, 0, stream>>>(c, mode, a, o, lse);
  check_launch("decode_merge_kernel", ctx);
}

// Sets the kernel's shared memory limit once per instantiation; returns its dynamic bytes.
template <class T, int DK, int DV, bool PROBS, int MINB, int STAGES>
size_t configure_chunks(const std::string& ctx) {
  const size_t smem = kWarps * DecodeSmem<T, DK, DV, STAGES>::per_warp;
  static bool configured = false;  // per instantiation
  if (!configured) {
    check(cudaFuncSetAttribute(attn_decode_kernel<T, DK, DV, PROBS, MINB, STAGES>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
          "attn_decode_kernel (shared memory)", ctx);
    configured = true;
  }
  return smem;
}

template <class T, int DK, int DV, bool PROBS, int MINB, int STAGES>
void launch_chunks(int mode, const DevCfg& c, const DecodeArgs& a, int64_t row0, int64_t row_end,
                   const T* q, const T* k, const T* v, T* o, float* lse, float* pg, bool merge,
                   cudaStream_t stream, const std::string& ctx) {
  const size_t smem = configure_chunks<T, DK, DV, PROBS, MINB, STAGES>(ctx);
  const int b = mode == kProbs ? kCmp : mode;
  const dim3 grid(static_cast<unsigned>(a.n_items), static_cast<unsigned>(c.h_kv),
                  static_cast<unsigned>((a.chunks[b] + kWarps - 1) / kWarps));
  attn_decode_kernel<T, DK, DV, PROBS, MINB, STAGES>
      <<<grid, kWarps * 32, smem, stream>>>(c, mode, a, row0, row_end, q, k, v, o, lse, pg);
  check_launch(mode == kCmp   ? "attn_decode_kernel<cmp>"
               : mode == kWin ? "attn_decode_kernel<win>"
                              : "attn_decode_kernel<probs>",
               ctx);
  if (!PROBS && merge && a.chunks[b] > 1) merge_dv<T, DV>(mode, c, a, o, lse, stream, ctx);
}

// The compressed / window kernel that DecodeArgs asks for: f(MINB, STAGES) as integral
// constants. The deep ring by default; three CTAs per SM (min_blocks = 3) or the two-stage ring
// (stages = 2) at d_k, d_v <= 128 only, which keeps the instantiations few.
template <class T, int DK, int DV, class F>
void with_variant(const DecodeArgs& a, F&& f) {
  using std::integral_constant;
  constexpr int deep = deep_stages<T, DK, DV>();
  if constexpr (DK <= 128 && DV <= 128) {
    if (a.min_blocks == 3) return f(integral_constant<int, 3>{}, integral_constant<int, 2>{});
    if constexpr (deep > 2)
      if (a.stages == 2) return f(integral_constant<int, 1>{}, integral_constant<int, 2>{});
  }
  f(integral_constant<int, 1>{}, integral_constant<int, deep>{});
}

}  // namespace

template <class T>
bool decode_fits(const DevCfg& c) {
  if constexpr (std::is_same_v<T, float>) {
    return false;  // fp32 keeps full precision on the simple path
  } else {
    bool dims = false;
    with_head_dims(c.d_k, c.d_v, [&](auto, auto) { dims = true; });
    return dims && c.group >= 1 && c.group <= 16 && c.h_kv <= 65535;
  }
}

template <class T>
int decode_resident_warps(const DevCfg& c, const DecodeArgs& a, const std::string& ctx) {
  int warps = 0;
  if constexpr (!std::is_same_v<T, float>) {
    with_head_dims(c.d_k, c.d_v, [&](auto dk, auto dv) {
      constexpr int DK = decltype(dk)::value, DV = decltype(dv)::value;
      auto query = [&](auto kernel, size_t smem) {
        int blocks = 0;
        check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kWarps * 32, smem),
              "cudaOccupancyMaxActiveBlocksPerMultiprocessor (attn_decode_kernel)", ctx);
        warps = blocks * kWarps;
      };
      with_variant<T, DK, DV>(a, [&](auto minb, auto stages) {
        constexpr int MINB = decltype(minb)::value, STAGES = decltype(stages)::value;
        query(attn_decode_kernel<T, DK, DV, false, MINB, STAGES>,
              configure_chunks<T, DK, DV, false, MINB, STAGES>(ctx));
      });
    });
  }
  return warps;
}

template <class T>
bool launch_attend_decode(int branch, const DevCfg& c, const DecodeArgs& a, const T* q, const T* k,
                          const T* v, T* o, float* lse, cudaStream_t stream, const std::string& ctx,
                          bool merge) {
  if constexpr (std::is_same_v<T, float>) {
    return false;
  } else {
    if (branch == kSlc || !decode_fits<T>(c) || a.n_items > INT32_MAX || a.chunks[branch] < 1 ||
        a.chunk[branch] > INT32_MAX)  // chunk-relative key offsets are 32-bit
      return false;
    if (a.n_items == 0) return true;
    return with_head_dims(c.d_k, c.d_v, [&](auto dk, auto dv) {
      constexpr int DK = decltype(dk)::value, DV = decltype(dv)::value;
      with_variant<T, DK, DV>(a, [&](auto minb, auto stages) {
        launch_chunks<T, DK, DV, false, decltype(minb)::value, decltype(stages)::value>(
            branch, c, a, 0, c.total_q, q, k, v, o, lse, nullptr, merge, stream, ctx);
      });
    });
  }
}

template <class T>
void launch_decode_merge(int branch, const DevCfg& c, const DecodeArgs& a, T* o, float* lse,
                         cudaStream_t stream, const std::string& ctx) {
  if constexpr (!std::is_same_v<T, float>) {
    if (a.n_items == 0) return;
    if (c.d_v == 64)
      merge_dv<T, 64>(branch, c, a, o, lse, stream, ctx);
    else if (c.d_v == 128)
      merge_dv<T, 128>(branch, c, a, o, lse, stream, ctx);
    else
      throw_cuda_error("decode_merge_kernel: d_v = " + std::to_string(c.d_v) +
                       " has no instantiation [" + ctx + "]");
  }
}

void launch_probs_from_scores(const DevCfg& c, const DecodeArgs& a, int64_t row0, int64_t rows,
                              const float* lse_cmp, float* pg, float* p_cmp, cudaStream_t stream,
                              const std::string& ctx) {
  const int64_t items = rows * c.h_kv, cols = (c.nc_max + 256 * kCols - 1) / (256 * kCols);
  if (items <= 0 || cols <= 0) return;
  if (cols > 65535)
    throw_cuda_error("probs_from_scores_kernel: nc_max = " + std::to_string(c.nc_max) +
                     " needs more than 65535 CTAs per row [" + ctx + "]");
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>(items, int64_t{1} << 30)),
                  static_cast<unsigned>(cols));
  // G <= 16 (decode_fits): the smallest power of two that holds it.
  auto launch = [&](auto kernel) {
    kernel<<<grid, 256, 0, stream>>>(c, a, row0, rows, lse_cmp, pg, p_cmp);
  };
  if (c.group <= 1)
    launch(probs_from_scores_kernel<1>);
  else if (c.group <= 2)
    launch(probs_from_scores_kernel<2>);
  else if (c.group <= 4)
    launch(probs_from_scores_kernel<4>);
  else if (c.group <= 8)
    launch(probs_from_scores_kernel<8>);
  else
    launch(probs_from_scores_kernel<16>);
  check_launch("probs_from_scores_kernel", ctx);
}

template <class T>
bool launch_probs_decode(const DevCfg& c, const DecodeArgs& a, int64_t row0, int64_t rows,
                         const T* q, const T* kc, const float* lse_cmp, float* pg,
                         cudaStream_t stream, const std::string& ctx) {
  if constexpr (std::is_same_v<T, float>) {
    return false;
  } else {
    if (!decode_fits<T>(c) || a.n_items > INT32_MAX || a.chunks[kCmp] < 1 ||
        a.chunk[kCmp] > INT32_MAX)
      return false;
    if (a.n_items == 0 || rows <= 0) return true;
    return with_head_dims(c.d_k, c.d_v, [&](auto dk, auto dv) {
      launch_chunks<T, decltype(dk)::value, decltype(dv)::value, true, 1, 2>(
          kProbs, c, a, row0, row0 + rows, q, kc, nullptr, nullptr, const_cast<float*>(lse_cmp), pg,
          false, stream, ctx);
    });
  }
}

#define NSA_INST(T)                                                                                \
  template bool decode_fits<T>(const DevCfg&);                                                     \
  template int decode_resident_warps<T>(const DevCfg&, const DecodeArgs&, const std::string&);     \
  template bool launch_attend_decode<T>(int, const DevCfg&, const DecodeArgs&, const T*, const T*, \
                                        const T*, T*, float*, cudaStream_t, const std::string&,    \
                                        bool);                                                     \
  template void launch_decode_merge<T>(int, const DevCfg&, const DecodeArgs&, T*, float*,          \
                                       cudaStream_t, const std::string&);                          \
  template bool launch_probs_decode<T>(const DevCfg&, const DecodeArgs&, int64_t, int64_t,         \
                                       const T*, const T*, const float*, float*, cudaStream_t,     \
                                       const std::string&);
NSA_INST(float)
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
