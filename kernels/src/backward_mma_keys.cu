// Key side of the tensor-core backward: dK and dV of one branch. A CTA owns 64 keys of one KV
// head (compressed blocks, window tokens, or the tokens of one selected block) and walks the
// vectors (query row, head of the group) that attend them in chunks of 64, two chunks in flight:
// S^T = K Q^T, P^T, dP^T = V dO_b^T, dS^T, then dV += P^T dO_b and dK += dS^T Q with each warp's
// 16 keys as MMA rows. The vectors of a key tile are
// - compression: every position from the tile's first visible one to the end of the sequence;
// - window: the positions within the window span after the tile's keys;
// - selection: the inverted index's entries of the block (rows in list order, a multiset listing
//   once per listing), each with the G heads of its group.
// Each key's gradient is written by exactly one thread, in one order: deterministic, no atomics.
#include "backward_mma.cuh"
#include "backward_mma_launch.hpp"
#include "device.cuh"

namespace nsa::cuda::detail {

namespace {

template <int DK, int DV>
struct KeysSmem {
  static constexpr int kQs = DK + 8, kVs = DV + 8;
  static constexpr int kT = kMmaBwdTile;
  // K and V of the tile, two stages of Q and dO_b chunks, and per stage the vectors' lse, D,
  // positions and (row, head) slots.
  template <class T>
  static constexpr size_t bytes() {
    return sizeof(T) * kT * (3 * kQs + 3 * kVs) +
           2 * kT * (2 * sizeof(float) + 2 * sizeof(int64_t));
  }
};

// The vectors of a key tile: count, and for flat vector f its packed query row, head and
// position.
struct TileVectors {
  int64_t count = 0;
  int64_t t_first = 0;  // compression / window: position of vector 0
  int64_t e_lo = 0;     // selection: first index entry
};

template <class T, int DK, int DV, int B>
__global__ void __launch_bounds__(kMmaBwdThreads) bwd_dkv_kernel(MmaBwdArgs<T> a) {
  using L = KeysSmem<DK, DV>;
  constexpr int kT = L::kT, kQs = L::kQs, kVs = L::kVs;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Ks = reinterpret_cast<T*>(smem);
  T* Vs = Ks + kT * kQs;
  T* Qc = Vs + kT * kVs;                                       // 2 stages
  T* Dc = Qc + 2 * kT * kQs;                                   // 2 stages
  float* m_lse = reinterpret_cast<float*>(Dc + 2 * kT * kVs);  // [2][kT]
  float* m_d = m_lse + 2 * kT;                                 // [2][kT]
  int64_t* m_t = reinterpret_cast<int64_t*>(m_d + 2 * kT);     // [2][kT]
  int64_t* m_off = m_t + 2 * kT;                               // [2][kT], -1: no vector
  const bwd::Shape& c = a.c;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int64_t tile;
  const bwd::Seq sq = item_seq(a, tile);
  const int64_t G = c.group, g = blockIdx.y;
  const int64_t first_t = sq.t_k - sq.t_q;
  const int64_t span = c.window_keys == 0 ? c.w : c.w + 1;

  // The tile's keys [k0, k_end) relative to the branch's base, and the rows copy_rows may read.
  int64_t k0, k_end, key_rows;
  if (B == 1) {
    const int64_t subs = (c.lp + kT - 1) / kT, j = tile / subs;
    k0 = j * c.lp + (tile % subs) * kT;
    key_rows = j * c.lp + c.lp < sq.t_k ? j * c.lp + c.lp : sq.t_k;
  } else {
    k0 = tile * kT;
    key_rows = B == 0 ? bwd::cmp_blocks(c, sq.t_k) : sq.t_k;
  }
  k_end = k0 + kT < key_rows ? k0 + kT : key_rows;
  const int64_t base = B == 0 ? sq.c_begin : sq.k_begin;
  copy_rows<T, DK, kT, kMmaBwdThreads>(Ks, kQs, a.k + base * c.h_kv * DK, k0, key_rows, c.h_kv, g,
                                       tid);
  copy_rows<T, DV, kT, kMmaBwdThreads>(Vs, kVs, a.v + base * c.h_kv * DV, k0, key_rows, c.h_kv, g,
                                       tid);
  cp_commit();

  TileVectors tv;
  if (B == 1) {
    const uint64_t key = static_cast<uint64_t>(g) * static_cast<uint64_t>(c.total_k) +
                         static_cast<uint64_t>(sq.k_begin + (k0 / c.lp) * c.lp);
    int64_t lo = 0, hi = a.si.entries;  // first entry >= key
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (a.si.keys[mid] < key)
        lo = mid + 1;
      else
        hi = mid;
    }
    int64_t end = lo, top = a.si.entries;  // first entry > key
    while (end < top) {
      const int64_t mid = end + (top - end) / 2;
      if (a.si.keys[mid] <= key)
        end = mid + 1;
      else
        top = mid;
    }
    tv.e_lo = lo;
    tv.count = k_end > k0 ? (end - lo) * G : 0;
  } else {
    int64_t t0, t1;  // positions [t0, t1]
    if (B == 0) {
      t0 = k0 * c.d + c.l - 1 + c.visibility;
      t1 = sq.t_k - 1;
    } else {
      t0 = k0;
      t1 = k_end - 1 + span - 1 < sq.t_k - 1 ? k_end - 1 + span - 1 : sq.t_k - 1;
    }
    if (t0 < first_t) t0 = first_t;
    tv.t_first = t0;
    tv.count = k_end > k0 && t1 >= t0 ? (t1 - t0 + 1) * G : 0;
  }
  // Vector f: its (row, head) slot in [total_q, h_q] and its position.
  auto vec = [&](int64_t f, int64_t& rh, int64_t& t) {
    int64_t row;
    if (B == 1) {
      row = a.si.rows[tv.e_lo + f / G];
      t = first_t + (row - sq.q_begin);
    } else {
      t = tv.t_first + f / G;
      row = sq.q_begin + (t - first_t);
    }
    rh = row * c.h_q + g * G + f % G;
  };
  // This CTA's share of the chunks: split z of a.splits, contiguous.
  const int64_t chunks = (tv.count + kT - 1) / kT;
  const int64_t per = (chunks + a.splits - 1) / a.splits;
  const int64_t c_lo = blockIdx.z * per, c_hi = c_lo + per < chunks ? c_lo + per : chunks;
  // Per vector of chunk ch, by one thread each: its slot, lse, D and position (the divisions by
  // G happen here once, not per copied 16 bytes).
  auto meta = [&](int64_t ch, int st) {
    if (tid < kT) {
      const int64_t f = ch * kT + tid;
      float l2 = INFINITY, dd = 0.f;
      int64_t t = 0, rh = -1;
      if (f < tv.count) {
        vec(f, rh, t);
        l2 = a.lse2[rh];
        dd = a.dd[rh];
      }
      m_lse[st * kT + tid] = l2;
      m_d[st * kT + tid] = dd;
      m_t[st * kT + tid] = t;
      m_off[st * kT + tid] = rh;
    }
  };
  auto issue = [&](int st) {  // after meta(., st) and a barrier
    const int64_t* off = m_off + st * kT;
    gather_rows<T, DK, kT, kMmaBwdThreads>(
        Qc + st * kT * kQs, kQs, a.q, [&](int r) { return off[r] >= 0 ? off[r] * DK : -1; }, tid);
    gather_rows<T, DV, kT, kMmaBwdThreads>(
        Dc + st * kT * kVs, kVs, a.dob, [&](int r) { return off[r] >= 0 ? off[r] * DV : -1; }, tid);
  };
  if (c_lo < c_hi) {
    meta(c_lo, 0);
    __syncthreads();
    issue(0);
  }
  cp_commit();

  float dk[1][DK / 8][4], dv[1][DV / 8][4];
  zero_frags(dk[0]);
  zero_frags(dv[0]);
  const int64_t key_a = k0 + warp * 16 + (lane >> 2), key_b = key_a + 8;
  // The positions [lo, hi) that see key a / b.
  auto seen_by = [&](int64_t key, int64_t& lo, int64_t& hi) {
    lo = INT64_MIN;
    hi = INT64_MAX;
    if (key >= k_end) {
      lo = INT64_MAX;
    } else if (B == 0) {
      lo = key * c.d + c.l - 1 + c.visibility;
    } else if (B == 2) {
      lo = key;
      hi = key + span;
    } else if (c.slc_causal == 0) {
      lo = key;
    }
  };
  int64_t lo_a, hi_a, lo_b, hi_b;
  seen_by(key_a, lo_a, hi_a);
  seen_by(key_b, lo_b, hi_b);
  const int c0 = (lane & 3) * 2;
  for (int64_t ch = c_lo; ch < c_hi; ++ch) {
    const int st = static_cast<int>((ch - c_lo) & 1);
    __syncthreads();  // the other stage's last readers are done
    if (ch + 1 < c_hi) {
      meta(ch + 1, st ^ 1);
      __syncthreads();
      issue(st ^ 1);
    }
    cp_commit();
    cp_wait<1>();
    __syncthreads();
    float s[1][8][4], dp[1][8][4];
    qk_tile<T, DK, 8, 1>(s, QShared<T>{Ks + warp * 16 * kQs, kQs}, Qc + st * kT * kQs, kQs, false);
    qk_tile<T, DV, 8, 1>(dp, QShared<T>{Vs + warp * 16 * kVs, kVs}, Dc + st * kT * kVs, kVs, false);
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = j * 8 + c0 + (e & 1);
        const int64_t t = m_t[st * kT + col];
        const bool keep = e >= 2 ? t >= lo_b && t < hi_b : t >= lo_a && t < hi_a;
        bwd_weight(s[0][j][e], dp[0][j][e], a.scale_log2, m_lse[st * kT + col], m_d[st * kT + col],
                   keep);
      }
    pv_tile<T, DV, 8, 1>(s, dv, Dc + st * kT * kVs, kVs);
    pv_tile<T, DK, 8, 1>(dp, dk, Qc + st * kT * kQs, kQs);
  }
  cp_wait<0>();

  const int64_t used = per > 0 ? (chunks + per - 1) / per : 0;  // splits with chunks
  if (a.splits == 1 || used <= 1) {
    if (blockIdx.z == 0) write_keys<DK, DV>(a, dk[0], dv[0], base, k_end, key_a, key_b, g);
    return;
  }
  // Several splits: each leaves its fp32 partial sums; the last to finish adds them in split
  // order (the same order whichever CTA it is) and writes the keys.
  const int64_t slot = static_cast<int64_t>(blockIdx.x) * gridDim.y + g;
  float* part = a.part + slot * a.splits * kT * (DK + DV);
  if (blockIdx.z < used)
    store_partial<DK, DV>(part + blockIdx.z * kT * (DK + DV), dk[0], dv[0],
                          warp * 16 + (lane >> 2));
  __threadfence();
  __syncthreads();
  __shared__ int last;
  if (tid == 0) last = atomicAdd(a.arrived + slot, 1) == a.splits - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  add_partials<DK, DV>(a, part, used, k0, k_end, base, g, tid, kMmaBwdThreads);
}

}  // namespace

template <class T>
bool launch_bwd_dkv_mma(int b, const MmaBwdArgs<T>& a, int64_t items, cudaStream_t stream,
                        const std::string& ctx) {
  return with_bwd_head_dims(a.c.d_k, a.c.d_v, [&](auto dk, auto dv) {
    constexpr int DK = decltype(dk)::value, DV = decltype(dv)::value;
    if (items == 0 || a.c.h_kv == 0) return;
    const size_t bytes = KeysSmem<DK, DV>::template bytes<T>();
    auto kernel = b == 0   ? bwd_dkv_kernel<T, DK, DV, 0>
                  : b == 1 ? bwd_dkv_kernel<T, DK, DV, 1>
                           : bwd_dkv_kernel<T, DK, DV, 2>;
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(bytes)),
          "cudaFuncSetAttribute", ctx);
    kernel<<<dim3(static_cast<unsigned>(items), static_cast<unsigned>(a.c.h_kv),
                  static_cast<unsigned>(a.splits)),
             kMmaBwdThreads, bytes, stream>>>(a);
    check_launch(b == 0   ? "bwd_dkv_kernel<cmp>"
                 : b == 1 ? "bwd_dkv_kernel<slc>"
                          : "bwd_dkv_kernel<win>",
                 ctx);
  });
}

#define NSA_INST(T)                                                                     \
  template bool launch_bwd_dkv_mma<T>(int, const MmaBwdArgs<T>&, int64_t, cudaStream_t, \
                                      const std::string&);
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
