// Selection attention with one independent warp per 16 query vectors (the NSA paper's
// group-centric loop at warp granularity). The warp's 16 MMA rows are the G heads of one query
// row (a slice of 16 of them when G > 16) or, when G < 16, the heads of 16 / G consecutive rows.
// The warp walks its own rows' selected blocks only: the sorted union of their index lists, each
// block weighted per row by its multiplicity (multiset: a block listed twice counts twice;
// otherwise once) and clipped causally. Keys stream through the warp's own shared memory in
// sub-tiles of 16 (cp.async, two stages by default) with no block-wide barrier, so warps whose rows
// chose different blocks never wait for each other. The CTA-wide union kernel (attention_mma.cu)
// instead walks the union of 64 MW / G rows in lockstep; with independent selections (random
// inputs) that union is ~3.4x the blocks any one row needs at G = 16, n = 16.
// The tile arithmetic is that of attention_mma.cu (mma_softmax.cuh): natural-unit running max,
// Q.K^T summed slice by slice in fp32, P rounded to the operand dtype for P.V, the denominator
// from the unrounded weights.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "attention_tile.cuh"  // AttnMode
#include "block_union.cuh"

namespace nsa::cuda::detail {

namespace {

constexpr int kWarpEntries = 256;  // (rows per warp) x n: the warp's index entries
constexpr int kMaxWarps = 10;      // warps per CTA (fewer when shared memory is short)
constexpr size_t kSmemLimit = 227 * 1024;

// SUB: keys per sub-tile; NST: sub-tiles in flight (stages). Measured on the H200 (T = 65536,
// H_q = 64, G = 16, d = 128, bf16, selection branch): with Q staged apart, SUB = 16 with 8 warps
// per SM took 38.0 ms against 54.2 ms for SUB = 32 (4 warps) and 61.6 ms for the CTA-wide union
// kernel; later, 2 stages (8 warps) 28.1 ms against 36.0 for 3 and 42.0 for 4 (fewer warps).
template <class T, int DK, int DV, int SUB, int NST>
struct WarpSmem {
  static constexpr int kQs = DK + 8, kVs = DV + 8;          // padded row strides (bank spread)
  static constexpr size_t k_bytes = sizeof(T) * SUB * kQs;  // one stage
  static constexpr size_t v_bytes = sizeof(T) * SUB * kVs;
  static constexpr size_t list_bytes = sizeof(int64_t) * kWarpEntries;
  // NST K and V stages, the rows' entries and the sorted union of block starts. Q passes through
  // the last K stage on its way into registers (it holds 16 rows of d_k), which leaves room for
  // 10 warps per SM at d = 128.
  static constexpr size_t per_warp = NST * (k_bytes + v_bytes) + 2 * list_bytes;
  static_assert(SUB >= 16, "Q (16 rows) is staged in a K stage");
  static_assert(k_bytes % 16 == 0 && v_bytes % 16 == 0, "cp.async alignment");
  // Warps per CTA (one CTA per SM): as many as shared memory holds, at most kMaxWarps.
  static constexpr int warps =
      kSmemLimit / per_warp < kMaxWarps ? static_cast<int>(kSmemLimit / per_warp) : kMaxWarps;
};

// Where a packed query row stands: position t, first key row of its sequence, end of its
// selectable keys (causal cap) and number of candidate blocks.
struct RowGeom {
  int64_t t, base, hi, n_cand;
};

__device__ RowGeom row_geom(const DevCfg& c, int64_t row) {
  const DevSeq sq = c.seqs[seq_of(c.cu_q, c.num_seqs, row)];
  const int64_t t = sq.t_k - sq.t_q + (row - sq.q_begin);
  return {t, sq.k_begin, sq.k_begin + (c.slc_causal == 0 ? t + 1 : sq.t_k), t / c.lp + 1};
}

template <class T, int DK, int DV, int SUB, int NST>
__global__ void __launch_bounds__(WarpSmem<T, DK, DV, SUB, NST>::warps * 32)
    attn_slc_warp_kernel(DevCfg c, int64_t items, DecodeArgs dec, const T* __restrict__ q,
                         const T* __restrict__ k, const T* __restrict__ v,
                         const int32_t* __restrict__ idx, T* __restrict__ o,
                         float* __restrict__ lse) {
  using S = WarpSmem<T, DK, DV, SUB, NST>;
  constexpr int kN8 = SUB / 8;  // n8 tiles of S per sub-tile
  extern __shared__ __align__(16) unsigned char smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // Decode items (dec.items set): rows of one sequence, this warp one chunk of their union.
  const bool decode = dec.items != nullptr;
  const int64_t chunk = decode ? blockIdx.z * static_cast<int64_t>(blockDim.x >> 5) + warp : 0;
  const int64_t item =
      decode ? blockIdx.x : static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + warp;
  // Whole warps only; nothing below synchronizes across warps.
  if (decode ? chunk >= dec.chunks[kSlc] : item >= items) return;
  unsigned char* base_ptr = smem + warp * S::per_warp;
  T* Ks = reinterpret_cast<T*>(base_ptr);
  T* Vs = reinterpret_cast<T*>(base_ptr + NST * S::k_bytes);
  T* Qs = Ks + (NST - 1) * SUB * S::kQs;  // first filled with keys at iteration 0
  int64_t* ent = reinterpret_cast<int64_t*>(base_ptr + NST * (S::k_bytes + S::v_bytes));
  int64_t* uni = ent + kWarpEntries;

  const int64_t G = c.group, g = blockIdx.y, n = c.n;
  // MMA row m (0..15) -> (packed query row, query head).
  const bool wide = G >= 16;  // one row per warp, a 16-head slice of its group
  const int64_t slices = wide ? G / 16 : 1, rows_here = wide ? 1 : 16 / G;
  int64_t first_row = wide ? item / slices : item * rows_here, row_end = c.total_q;
  if (decode) {  // G <= 16: one slice
    const DecodeItem it = dec.items[item];
    first_row = it.row0;
    row_end = it.row0 + it.rows;
  }
  auto row_of = [&](int m) { return wide ? first_row : first_row + m / G; };
  auto head_of = [&](int m) { return wide ? g * G + (item % slices) * 16 + m : g * G + m % G; };
  auto local_of = [&](int m) { return wide ? 0 : m / static_cast<int>(G); };

  // ---- the rows' entries as absolute block starts, and their sorted union -------------------
  // A decode item's rows only (its padding rows have no entries to sort).
  const int entries =
      static_cast<int>((decode ? min(rows_here, row_end - first_row) : rows_here) * n);
  int pow2 = 1;
  while (pow2 < entries) pow2 <<= 1;
  for (int e = lane; e < pow2; e += 32) {
    int64_t val = INT64_MAX;
    if (e < entries) {
      const int64_t row = first_row + e / n;
      if (row < row_end) {
        const RowGeom rg = row_geom(c, row);
        const int64_t j = idx[(row * c.h_kv + g) * n + e % n];
        if (j >= 0 && j < rg.n_cand) val = rg.base + j * c.lp;
      }
      ent[e] = val;
    }
    uni[e] = val;
  }
  __syncwarp();
  bitonic_sort(uni, pow2, lane, 32, [] { __syncwarp(); });
  const int nb = unique_sorted(uni, pow2);

  // ---- this lane's two rows: vectors m_a and m_a + 8 ---------------------------------------
  const int m_a = lane >> 2, m_b = m_a + 8;
  const int64_t row_a = row_of(m_a), row_b = row_of(m_b);
  const bool v_a = row_a < row_end, v_b = row_b < row_end;
  const int64_t hi_a = v_a ? row_geom(c, row_a).hi : 0, hi_b = v_b ? row_geom(c, row_b).hi : 0;
  const int64_t* list_a = ent + local_of(m_a) * n;
  const int64_t* list_b = ent + local_of(m_b) * n;
  auto weight = [&](const int64_t* list, bool valid, int64_t start) {
    if (!valid) return 0.f;
    int cnt = 0;
    for (int64_t s = 0; s < n; ++s) cnt += list[s] == start;
    if (c.policy != 2 && cnt > 1) cnt = 1;
    return static_cast<float>(cnt);
  };

  // ---- Q of the 16 vectors, then the key sub-tiles -----------------------------------------
  {
    constexpr int kc = DK / 8;
    for (int e = lane; e < 16 * kc; e += 32) {
      const int m = e / kc, cc = e % kc;
      const int64_t row = row_of(m);
      const bool ok = row < row_end;
      cp16(Qs + m * S::kQs + cc * 8, ok ? q + (row * c.h_q + head_of(m)) * DK + cc * 8 : q, ok);
    }
  }
  // The blocks [b0, b1) of the union this warp walks: all, or a decode chunk of them.
  const int64_t b0 = decode ? min(static_cast<int64_t>(nb), chunk * dec.chunk[kSlc]) : 0;
  const int64_t b1 = decode ? min(static_cast<int64_t>(nb), b0 + dec.chunk[kSlc]) : nb;
  const int64_t per_block = (c.lp + SUB - 1) / SUB, n_sub = (b1 - b0) * per_block;
  const int64_t key_rows = c.total_k;
  auto sub_start = [&](int64_t i) { return uni[b0 + i / per_block] + (i % per_block) * SUB; };
  auto load_sub = [&](int64_t i, int st) {
    const int64_t start = sub_start(i);
    copy_rows<T, DK, SUB, 32>(Ks + st * SUB * S::kQs, S::kQs, k, start, key_rows, c.h_kv, g, lane);
    copy_rows<T, DV, SUB, 32>(Vs + st * SUB * S::kVs, S::kVs, v, start, key_rows, c.h_kv, g, lane);
  };
  // Sub-tiles 0 .. NST - 2 in flight before the loop; one group committed per iteration (some
  // empty) keeps cp_wait's count of pending groups exact.
#pragma unroll
  for (int p = 0; p < NST - 1; ++p) {
    if (p < n_sub) load_sub(p, p);
    cp_commit();
  }
  cp_wait<NST - 2>();  // the first group: Q and sub-tile 0
  __syncwarp();
  QFrags<T, DK> qf;
  qf.load(Qs, S::kQs);
  __syncwarp();  // Q's stage is refilled at iteration 0

  const float qk_scale = c.scale;
  const bool qk_split = c.qk_split != 0;
  float acc[1][DV / 8][4];
#pragma unroll
  for (int j = 0; j < DV / 8; ++j) acc[0][j][0] = acc[0][j][1] = acc[0][j][2] = acc[0][j][3] = 0.f;
  SoftmaxRows sm;
  float w_a = 0.f, w_b = 0.f;

  for (int64_t i = 0; i < n_sub; ++i) {
    const int st = static_cast<int>(i % NST);
    // The stage refilled here is the one sub-tile i - 1 used (finished: __syncwarp below).
    if (i + NST - 1 < n_sub) load_sub(i + NST - 1, static_cast<int>((i + NST - 1) % NST));
    cp_commit();
    cp_wait<NST - 1>();
    __syncwarp();
    const int64_t blk = uni[b0 + i / per_block];
    if (i % per_block == 0) {
      w_a = weight(list_a, v_a, blk);
      w_b = weight(list_b, v_b, blk);
    }
    const int64_t start = sub_start(i), blk_end = blk + c.lp;
    const TileCols ca = w_a > 0.f ? TileCols(start, min(blk_end, hi_a), start, SUB) : TileCols();
    const TileCols cb = w_b > 0.f ? TileCols(start, min(blk_end, hi_b), start, SUB) : TileCols();
    const bool full = __all_sync(0xffffffffu, ca.all(SUB) && cb.all(SUB));

    float s[1][kN8][4];
    qk_tile<T, DK, kN8, 1>(s, qf, Ks + st * SUB * S::kQs, S::kQs, qk_split);
    float tmax_a, tmax_b;
    scale_mask_tile<kN8>(s[0], qk_scale, full, ca, cb, tmax_a, tmax_b);
    softmax_update<kN8, DV>(s[0], tmax_a, tmax_b, w_a, w_b, sm, acc[0]);
    pv_tile<T, DV, kN8, 1>(s, acc, Vs + st * SUB * S::kVs, S::kVs);
    __syncwarp();  // stage st is refilled by a later iteration's prefetch
  }

  // ---- epilogue: the output, or a decode chunk's partial ------------------------------------
  if (decode && dec.chunks[kSlc] > 1) {
    const int64_t slot = ((item * c.h_kv + g) * dec.chunks[kSlc] + chunk) * 16;
    write_partial_rows<DV>(sm, acc[0], v_a ? dec.part_o + (slot + m_a) * DV : nullptr,
                           v_b ? dec.part_o + (slot + m_b) * DV : nullptr,
                           v_a ? dec.part_lse + slot + m_a : nullptr,
                           v_b ? dec.part_lse + slot + m_b : nullptr);
    return;
  }
  const int64_t at_a = v_a ? row_a * c.h_q + head_of(m_a) : 0;
  const int64_t at_b = v_b ? row_b * c.h_q + head_of(m_b) : 0;
  write_rows<T, DV>(sm, acc[0], v_a ? o + at_a * DV : nullptr, v_b ? o + at_b * DV : nullptr,
                    v_a ? lse + at_a : nullptr, v_b ? lse + at_b : nullptr);
}

template <class T, int DK, int DV, int SUB, int NST>
void launch_sub(const DevCfg& c, const T* q, const T* k, const T* v, const int32_t* idx, T* o,
                float* lse, cudaStream_t stream, const std::string& ctx, const DecodeArgs* dec) {
  using S = WarpSmem<T, DK, DV, SUB, NST>;
  constexpr int warps = S::warps;
  const size_t smem = warps * S::per_warp;
  static bool configured = false;  // per instantiation
  if (!configured) {
    check(cudaFuncSetAttribute(attn_slc_warp_kernel<T, DK, DV, SUB, NST>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
          "attn_slc_warp_kernel (shared memory)", ctx);
    configured = true;
  }
  if (dec) {
    const int64_t z = (dec->chunks[kSlc] + warps - 1) / warps;
    attn_slc_warp_kernel<T, DK, DV, SUB, NST>
        <<<dim3(static_cast<unsigned>(dec->n_items), static_cast<unsigned>(c.h_kv),
                static_cast<unsigned>(z)),
           warps * 32, smem, stream>>>(c, dec->n_items, *dec, q, k, v, idx, o, lse);
    check_launch("attn_slc_warp_kernel<decode>", ctx);
    if (dec->chunks[kSlc] > 1) launch_decode_merge<T>(kSlc, c, *dec, o, lse, stream, ctx);
    return;
  }
  const int64_t G = c.group;
  const int64_t items = G >= 16 ? c.total_q * (G / 16) : (c.total_q + 16 / G - 1) / (16 / G);
  const int64_t ctas = (items + warps - 1) / warps;
  attn_slc_warp_kernel<T, DK, DV, SUB, NST>
      <<<dim3(static_cast<unsigned>(ctas), static_cast<unsigned>(c.h_kv)), warps * 32, smem,
         stream>>>(c, items, DecodeArgs{}, q, k, v, idx, o, lse);
  check_launch("attn_slc_warp_kernel", ctx);
}

template <class T, int DK, int DV>
void launch_dims(const DevCfg& c, const T* q, const T* k, const T* v, const int32_t* idx, T* o,
                 float* lse, cudaStream_t stream, const std::string& ctx, const DecodeArgs* dec) {
  if (c.slc_stages == 3)
    launch_sub<T, DK, DV, 16, 3>(c, q, k, v, idx, o, lse, stream, ctx, dec);
  else if (c.slc_stages == 4)
    launch_sub<T, DK, DV, 16, 4>(c, q, k, v, idx, o, lse, stream, ctx, dec);
  else
    launch_sub<T, DK, DV, 16, 2>(c, q, k, v, idx, o, lse, stream, ctx, dec);
}

}  // namespace

template <class T>
bool launch_slc_warp(const DevCfg& c, const T* q, const T* k, const T* v, const int32_t* idx, T* o,
                     float* lse, cudaStream_t stream, const std::string& ctx,
                     const DecodeArgs* dec) {
  if constexpr (std::is_same_v<T, float>) {
    return false;  // fp32 keeps full precision on the simple path
  } else {
    const int64_t G = c.group;
    const bool layout_ok = (G >= 16 && G % 16 == 0 && G <= 64) || (G < 16 && 16 % G == 0);
    const int64_t rows_here = G >= 16 ? 1 : 16 / G;
    if (!layout_ok || c.n < 1 || rows_here * c.n > kWarpEntries || c.h_kv > 65535 ||
        c.slc_union != 0)
      return false;
    if (dec &&
        (G > 16 || dec->n_items > INT32_MAX || dec->chunks[kSlc] < 1 || dec->chunk[kSlc] < 1))
      return false;
    if (c.total_q == 0) return true;
    const int64_t items = G >= 16 ? c.total_q * (G / 16) : (c.total_q + rows_here - 1) / rows_here;
    if (items > INT32_MAX) return false;  // grid.x bound even at one warp per CTA
    return with_head_dims(c.d_k, c.d_v, [&](auto dk, auto dv) {
      launch_dims<T, decltype(dk)::value, decltype(dv)::value>(c, q, k, v, idx, o, lse, stream, ctx,
                                                               dec);
    });
  }
}

#define NSA_INST(T)                                                                             \
  template bool launch_slc_warp<T>(const DevCfg&, const T*, const T*, const T*, const int32_t*, \
                                   T*, float*, cudaStream_t, const std::string&,                \
                                   const DecodeArgs*);
NSA_INST(float)
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
