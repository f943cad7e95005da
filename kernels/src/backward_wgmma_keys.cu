// dK and dV of the compressed and window branches on Hopper's warpgroup MMA (wgmma, sm_90a):
// the key side of the tensor-core backward (backward_mma_keys.cu) with the data flow of the
// wgmma kernels (wgmma.cuh).
//
// - A CTA owns 128 keys of one KV head (two 64-key tiles: compressed blocks or window tokens),
//   one tile per consumer warpgroup, K and V in 128-byte-swizzled shared memory. It walks the
//   vectors (position, head of the group) that see its keys in chunks of 64, the same chunks for
//   both tiles; a warpgroup skips a chunk none of whose vectors sees its tile.
// - The same 256 threads gather the chunks' Q and dO_b rows (cp.async into the swizzle, one
//   chunk ahead) and their vectors' lse, D, positions and slots (two chunks ahead) into three
//   stages, with two CTA barriers per chunk. No producer warpgroup: a 384-thread CTA would cap
//   ptxas at 168 registers, and the dK and dV accumulators (128 at d = 128) with S^T, dP^T and
//   their packed copies need ~230.
// - Per chunk: S^T = K Q^T and dP^T = V dO_b^T, then P^T and dS^T = P^T (dP^T - D) in registers
//   (backward_mma.cuh, the arithmetic of the mma.sync kernels), then dV += P^T dO_b and
//   dK += dS^T Q with P^T and dS^T from registers and the chunk as the transposed B operand. The
//   dV / dK products of chunk i - 1 run while chunk i's weights are formed.
// - Long tiles are split over a.splits CTAs (grid z) as on the mma.sync key side: each leaves
//   fp32 partial sums per 64-key tile and the last to finish adds them in split order.
// Each key's gradient is written by exactly one thread, in one order: deterministic, no atomics.
#include <cstdint>

#include "backward_mma.cuh"
#include "backward_mma_launch.hpp"
#include "wgmma.cuh"

namespace nsa::cuda::detail {

namespace {

constexpr int kBwkKeys = 128;     // keys per CTA: 64 per consumer warpgroup
constexpr int kBwkChunk = 64;     // vectors per chunk
constexpr int kBwkThreads = 256;  // two warpgroups
constexpr int kBwkStages = 3;
static_assert(kBwkChunk == kMmaBwdTile, "partial sums per 64-key tile, chunks of 64 vectors");

template <class T, int DK, int DV>
struct BwkSmem {
  static constexpr size_t k_bytes = sizeof(T) * kBwkKeys * DK;
  static constexpr size_t v_bytes = sizeof(T) * kBwkKeys * DV;
  static constexpr size_t q_bytes = sizeof(T) * kBwkChunk * DK;  // one stage
  static constexpr size_t o_bytes = sizeof(T) * kBwkChunk * DV;
  static constexpr size_t v_off = k_bytes;  // K | V | Q stages | dO_b stages | per-stage vectors
  static constexpr size_t q_off = v_off + v_bytes;
  static constexpr size_t o_off = q_off + kBwkStages * q_bytes;
  static constexpr size_t m_off = o_off + kBwkStages * o_bytes;
  // Per stage and vector: lse log2 e, D (floats), position - t0 (int32), (row, head) slot.
  static constexpr size_t m_bytes = kBwkChunk * (3 * sizeof(float) + sizeof(int64_t));
  static constexpr size_t launch_bytes = m_off + kBwkStages * m_bytes + 1024;
  static_assert(v_off % 1024 == 0 && q_off % 1024 == 0 && o_off % 1024 == 0 &&
                    q_bytes % 1024 == 0 && o_bytes % 1024 == 0,
                "swizzle atoms on 1024-byte boundaries");
};

template <int ROWS>
__device__ __forceinline__ uint64_t slice_desc(uint64_t d0, int kk) {
  return desc_add(d0, (kk >> 2) * ROWS * 128 + (kk & 3) * 32);
}

// d = A B^T: a warpgroup's 64 keys (rows of a ROWS_A-row tile) against a 64-vector chunk.
template <class T, int D>
__device__ __forceinline__ void keys_x_chunk(float (&d)[8][4], uint64_t ad, uint64_t bd) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    wgmma_64x64_ss<T>(d, slice_desc<kBwkKeys>(ad, kk), slice_desc<kBwkChunk>(bd, kk), kk > 0);
}

template <class T, int DK, int DV, int B>
__global__ void __launch_bounds__(kBwkThreads, 1)
    bwd_dkv_wgmma_kernel(MmaBwdArgs<T> a, const int64_t* __restrict__ cu_tiles) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using S = BwkSmem<T, DK, DV>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (__cvta_generic_to_shared(smem_raw) & 1023)) & 1023);
  unsigned char* Ks = smem;
  unsigned char* Vs = smem + S::v_off;
  unsigned char* Qc = smem + S::q_off;
  unsigned char* Oc = smem + S::o_off;
  __shared__ int last[2];

  const bwd::Shape& c = a.c;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  int64_t pair;
  const bwd::Seq sq = item_seq(a, pair);
  const int64_t seq = bwd::seq_index(a.cu_items, c.num_seqs, blockIdx.x);
  const int64_t G = c.group, g = blockIdx.y;
  const int64_t first_t = sq.t_k - sq.t_q;
  const int64_t span = c.window_keys == 0 ? c.w : c.w + 1;
  const int64_t key_rows = B == 0 ? bwd::cmp_blocks(c, sq.t_k) : sq.t_k;
  const int64_t base = B == 0 ? sq.c_begin : sq.k_begin;
  const int64_t k0 = pair * kBwkKeys;
  const int64_t k_end = k0 + kBwkKeys < key_rows ? k0 + kBwkKeys : key_rows;

  // The CTA's vectors: positions [t0, t1] x the G heads, flat f = (t - t0) G + head.
  int64_t t0 = B == 0 ? k0 * c.d + c.l - 1 + c.visibility : k0;
  const int64_t t1 =
      B == 0 ? sq.t_k - 1 : (k_end - 1 + span - 1 < sq.t_k - 1 ? k_end - 1 + span - 1 : sq.t_k - 1);
  if (t0 < first_t) t0 = first_t;
  const int64_t count = k_end > k0 && t1 >= t0 ? (t1 - t0 + 1) * G : 0;
  const int64_t chunks = (count + kBwkChunk - 1) / kBwkChunk;
  const int64_t per = (chunks + a.splits - 1) / a.splits;
  const int64_t c_lo = blockIdx.z * per, c_hi = c_lo + per < chunks ? c_lo + per : chunks;
  const int n_chunks = c_hi > c_lo ? static_cast<int>(c_hi - c_lo) : 0;

  // Stage st's vector data: lse log2 e, D, position and (row, head) slot of each vector.
  auto meta_of = [&](int st, float*& m_lse, float*& m_d, int*& m_t, int64_t*& m_slot) {
    unsigned char* meta = smem + S::m_off + st * S::m_bytes;
    m_lse = reinterpret_cast<float*>(meta);
    m_d = m_lse + kBwkChunk;
    m_t = reinterpret_cast<int*>(m_d + kBwkChunk);
    m_slot = reinterpret_cast<int64_t*>(m_t + kBwkChunk);
  };
  auto meta = [&](int i) {  // chunk i's vector data, by the first 64 threads (one vector each)
    if (i >= n_chunks || tid >= kBwkChunk) return;
    float *m_lse, *m_d;
    int* m_t;
    int64_t* m_slot;
    meta_of(i % kBwkStages, m_lse, m_d, m_t, m_slot);
    const int64_t f = (c_lo + i) * kBwkChunk + tid;
    float l2 = INFINITY, dd = 0.f;
    int t_rel = INT32_MIN;  // no vector: seen by no key
    int64_t rh = -1;
    if (f < count) {
      const int64_t t = t0 + f / G;
      t_rel = static_cast<int>(t - t0);
      rh = (sq.q_begin + (t - first_t)) * c.h_q + g * G + f % G;
      l2 = a.lse2[rh];
      dd = a.dd[rh];
    }
    m_lse[tid] = l2;
    m_d[tid] = dd;
    m_t[tid] = t_rel;
    m_slot[tid] = rh;
  };
  auto issue = [&](int i) {  // chunk i's Q and dO_b rows (its vector data written already)
    if (i >= n_chunks) return;
    const int st = i % kBwkStages;
    float *m_lse, *m_d;
    int* m_t;
    int64_t* m_slot;
    meta_of(st, m_lse, m_d, m_t, m_slot);
    for (int e = tid; e < kBwkChunk * (DK / 8); e += kBwkThreads) {
      const int r = e / (DK / 8), cc = e % (DK / 8);
      const int64_t rh = m_slot[r];
      cp16(Qc + st * S::q_bytes + sw128_offset<kBwkChunk>(r, cc),
           rh >= 0 ? a.q + rh * DK + cc * 8 : a.q, rh >= 0);
    }
    for (int e = tid; e < kBwkChunk * (DV / 8); e += kBwkThreads) {
      const int r = e / (DV / 8), cc = e % (DV / 8);
      const int64_t rh = m_slot[r];
      cp16(Oc + st * S::o_bytes + sw128_offset<kBwkChunk>(r, cc),
           rh >= 0 ? a.dob + rh * DV + cc * 8 : a.dob, rh >= 0);
    }
  };

  // K and V of the 128 keys; rows past the sequence's keys are zero-filled.
  {
    const T* kb = a.k + base * c.h_kv * DK;
    const T* vb = a.v + base * c.h_kv * DV;
    for (int e = tid; e < kBwkKeys * (DK / 8); e += kBwkThreads) {
      const int r = e / (DK / 8), cc = e % (DK / 8);
      const bool ok = k0 + r < key_rows;
      cp16(Ks + sw128_offset<kBwkKeys>(r, cc),
           ok ? kb + ((k0 + r) * c.h_kv + g) * DK + cc * 8 : a.k, ok);
    }
    for (int e = tid; e < kBwkKeys * (DV / 8); e += kBwkThreads) {
      const int r = e / (DV / 8), cc = e % (DV / 8);
      const bool ok = k0 + r < key_rows;
      cp16(Vs + sw128_offset<kBwkKeys>(r, cc),
           ok ? vb + ((k0 + r) * c.h_kv + g) * DV + cc * 8 : a.v, ok);
    }
  }
  meta(0);
  meta(1);
  __syncthreads();
  issue(0);
  cp_commit();  // one group: K, V and chunk 0

  // ---- consumer warpgroups: tile wg's 64 keys ---------------------------------------------------
  const int64_t kw0 = k0 + wg * 64;
  const bool wg_keys = kw0 < k_end;  // uniform in the warpgroup
  const int64_t key_a = kw0 + (warp & 3) * 16 + (lane >> 2), key_b = key_a + 8;
  // Positions [lo, hi) that see key a / b (none for keys past the tile).
  auto seen_by = [&](int64_t key, int64_t& lo, int64_t& hi) {
    if (key >= k_end) {
      lo = INT64_MAX;
      hi = INT64_MIN;
    } else if (B == 0) {
      lo = key * c.d + c.l - 1 + c.visibility;
      hi = INT64_MAX;
    } else {
      lo = key;
      hi = key + span;
    }
  };
  // As 32-bit offsets from t0 (the launcher keeps sequences below 2^31 keys): lo in [-1, 2^31),
  // hi in [-1, 2^31 - 1].
  auto rel = [&](int64_t x) {
    return static_cast<int>(x < t0 ? -1 : (x - t0 >= INT32_MAX ? INT32_MAX : x - t0));
  };
  int lo_a, hi_a, lo_b, hi_b;
  {
    int64_t lo, hi;
    seen_by(key_a, lo, hi);
    lo_a = rel(lo);
    hi_a = rel(hi);
    seen_by(key_b, lo, hi);
    lo_b = rel(lo);
    hi_b = rel(hi);
  }
  // Positions that see some key of the tile: a chunk wholly outside them is skipped.
  const int64_t wk_end = kw0 + 64 < k_end ? kw0 + 64 : k_end;
  const int64_t wt_lo = B == 0 ? kw0 * c.d + c.l - 1 + c.visibility : kw0;
  const int64_t wt_hi = B == 0 ? INT64_MAX : wk_end - 1 + span - 1;

  float dk[DK / 8][4], dv[DV / 8][4];
  zero_frags(dk);
  zero_frags(dv);
  float s[8][4], dp[8][4];
  uint32_t pp[4][4], pd[4][4];  // P^T and dS^T of the previous chunk: A operands of dV and dK
  const uint64_t k_desc = sw128_desc(Ks + wg * 64 * 128, 16, 1024);
  const uint64_t v_desc = sw128_desc(Vs + wg * 64 * 128, 16, 1024);
  const uint64_t q_desc = sw128_desc(Qc, 16, 1024);  // K-major (S^T = K Q^T)
  const uint64_t o_desc = sw128_desc(Oc, 16, 1024);
  const uint64_t qt_desc = sw128_desc(Qc, kBwkChunk * 128, 1024);  // MN-major (dK += dS^T Q)
  const uint64_t ot_desc = sw128_desc(Oc, kBwkChunk * 128, 1024);
  auto kv_issue = [&](int stage) {
    const uint64_t od = desc_add(ot_desc, stage * static_cast<int>(S::o_bytes));
    const uint64_t qd = desc_add(qt_desc, stage * static_cast<int>(S::q_bytes));
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_rs_tb<T, DV / 8>(dv, pp[kk], desc_add(od, kk * 2048));
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_rs_tb<T, DK / 8>(dk, pd[kk], desc_add(qd, kk * 2048));
    wgmma_commit();
  };
  const int c0 = (lane & 3) * 2;
  int st = 0, prev_st = 0;
  bool pending = false;  // the dV / dK products of stage prev_st are not issued yet
  for (int i = 0; i < n_chunks; ++i) {
    // Stage (i + 2) % 3 was last read by chunk i - 1's weights and (i + 1) % 3 by chunk i - 2's
    // products, which have completed: every thread is past them at this barrier.
    __syncthreads();
    meta(i + 2);
    issue(i + 1);
    cp_commit();
    cp_wait<1>();          // this thread's copies of chunk i
    fence_async_shared();  // they are read by wgmma through the async proxy
    __syncthreads();
    float *m_lse, *m_d;
    int* m_t;
    int64_t* m_slot;
    meta_of(st, m_lse, m_d, m_t, m_slot);
    // Chunk positions [m_t[0], last real one]; f grows with t, so the first and last bound them.
    const int64_t f_first = (c_lo + i) * kBwkChunk;
    const int64_t f_last = (f_first + kBwkChunk < count ? f_first + kBwkChunk : count) - 1;
    const int64_t ct_lo = t0 + f_first / G, ct_hi = t0 + f_last / G;
    const bool live = wg_keys && ct_hi >= wt_lo && ct_lo <= wt_hi;
    if (live) {
      wgmma_fence();
      keys_x_chunk<T, DK>(s, k_desc, desc_add(q_desc, st * static_cast<int>(S::q_bytes)));
      keys_x_chunk<T, DV>(dp, v_desc, desc_add(o_desc, st * static_cast<int>(S::o_bytes)));
      wgmma_commit();
      if (pending) {
        kv_issue(prev_st);
        wgmma_wait<1>();  // S^T and dP^T of this chunk (the previous chunk's products may run)
      } else {
        wgmma_wait<0>();
      }
      fence_regs(s);
      fence_regs(dp);
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = j * 8 + c0 + (e & 1);
          const int t = m_t[col];
          // The compression's keys are seen by every later position: no upper bound.
          const bool keep = e >= 2 ? t >= lo_b && (B == 0 || t < hi_b)
                                   : t >= lo_a && (B == 0 || t < hi_a);
          bwd_weight(s[j][e], dp[j][e], a.scale_log2, m_lse[col], m_d[col], keep);
        }
      wgmma_wait<0>();
      fence_regs(dk);
      fence_regs(dv);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        pp[kk][0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
        pp[kk][1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
        pp[kk][2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        pp[kk][3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
        pd[kk][0] = pack2<T>(dp[2 * kk][0], dp[2 * kk][1]);
        pd[kk][1] = pack2<T>(dp[2 * kk][2], dp[2 * kk][3]);
        pd[kk][2] = pack2<T>(dp[2 * kk + 1][0], dp[2 * kk + 1][1]);
        pd[kk][3] = pack2<T>(dp[2 * kk + 1][2], dp[2 * kk + 1][3]);
      }
      pending = true;
      prev_st = st;
    } else if (pending) {  // finish the previous chunk before its stage is refilled
      kv_issue(prev_st);
      wgmma_wait<0>();
      fence_regs(dk);
      fence_regs(dv);
      pending = false;
    }
    if (++st == kBwkStages) st = 0;
  }
  cp_wait<0>();
  if (pending) {
    kv_issue(prev_st);
    wgmma_wait<0>();
    fence_regs(dk);
    fence_regs(dv);
  }

  // ---- this warpgroup's tile: written, or left as a split's partial sums ----------------------
  if (!wg_keys) return;
  const int64_t used = per > 0 ? (chunks + per - 1) / per : 0;  // splits with chunks
  if (a.splits == 1 || used <= 1) {
    if (blockIdx.z == 0) write_keys<DK, DV>(a, dk, dv, base, wk_end, key_a, key_b, g);
    return;
  }
  const int64_t slot = (cu_tiles[seq] + 2 * pair + wg) * gridDim.y + g;
  float* part = a.part + slot * a.splits * kMmaBwdTile * (DK + DV);
  if (blockIdx.z < used)
    store_partial<DK, DV>(part + blockIdx.z * kMmaBwdTile * (DK + DV), dk, dv,
                          (warp & 3) * 16 + (lane >> 2));
  __threadfence();
  named_sync(3 + wg, 128);
  if ((tid & 127) == 0) last[wg] = atomicAdd(a.arrived + slot, 1) == a.splits - 1;
  named_sync(3 + wg, 128);
  if (!last[wg]) return;
  __threadfence();
  add_partials<DK, DV>(a, part, used, kw0, wk_end, base, g, tid & 127, 128);
#else
  __trap();  // built without sm_90a: the launcher is never asked on such a device
#endif
}

template <class T, int DK, int DV, int B>
void launch_bwk(const MmaBwdArgs<T>& a, int64_t items, const int64_t* cu_tiles, cudaStream_t stream,
                const std::string& ctx) {
  using S = BwkSmem<T, DK, DV>;
  static bool configured = false;  // per instantiation
  if (!configured) {
    check(cudaFuncSetAttribute(bwd_dkv_wgmma_kernel<T, DK, DV, B>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(S::launch_bytes)),
          "bwd_dkv_wgmma_kernel (shared memory)", ctx);
    configured = true;
  }
  bwd_dkv_wgmma_kernel<T, DK, DV, B>
      <<<dim3(static_cast<unsigned>(items), static_cast<unsigned>(a.c.h_kv),
              static_cast<unsigned>(a.splits)),
         kBwkThreads, S::launch_bytes, stream>>>(a, cu_tiles);
  check_launch(B == 0 ? "bwd_dkv_wgmma_kernel<cmp>" : "bwd_dkv_wgmma_kernel<win>", ctx);
}

}  // namespace

template <class T>
bool launch_bwd_dkv_wgmma(int b, const MmaBwdArgs<T>& a, int64_t items, const int64_t* cu_tiles,
                          cudaStream_t stream, const std::string& ctx) {
  // 32-bit positions relative to a tile's first vector: key tensors below 2^31 rows.
  if (b == 1 || a.c.h_kv > 65535 || items > INT32_MAX || a.c.total_k >= (int64_t{1} << 31) - 1)
    return false;
  return with_bwd_head_dims(a.c.d_k, a.c.d_v, [&](auto dk, auto dv) {
    constexpr int DK = decltype(dk)::value, DV = decltype(dv)::value;
    if (items == 0 || a.c.h_kv == 0) return;
    if (b == 0)
      launch_bwk<T, DK, DV, 0>(a, items, cu_tiles, stream, ctx);
    else
      launch_bwk<T, DK, DV, 2>(a, items, cu_tiles, stream, ctx);
  });
}

template bool launch_bwd_dkv_wgmma<__half>(int, const MmaBwdArgs<__half>&, int64_t, const int64_t*,
                                           cudaStream_t, const std::string&);
template bool launch_bwd_dkv_wgmma<__nv_bfloat16>(int, const MmaBwdArgs<__nv_bfloat16>&, int64_t,
                                                  const int64_t*, cudaStream_t, const std::string&);

}  // namespace nsa::cuda::detail
