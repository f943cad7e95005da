// Query side of the tensor-core backward: dq, and the per-row quantities every side needs.
//
// - bwd_prep_kernel: per (row, query head) and branch, dO_b = g_b dO rounded to the dtype, D_b =
//   rowsum(dO_b o_b), the gate gradient <dO, o_b> (rounded once) and lse_b log2 e.
// - bwd_dq_rows_kernel (compression, window): a CTA takes 64 consecutive vectors (row, head of
//   the KV group) of one sequence, whose key sets are prefixes (compression) or windows of
//   neighbouring positions, and walks the union of their keys in tiles of 64 shared by its 4
//   warps: S = Q K^T, dP = dO_b V^T, dS, dq += dS K.
// - bwd_dq_slc_kernel (selection): one warp per (row, 16 heads of its group), walking the row's
//   listed blocks in sub-tiles of 16 keys through its own shared memory (no CTA barrier), a
//   block listed twice under the multiset policy walked twice.
// Every branch adds its share to one fp32 dq in launch order (deterministic); bwd_dq_finish
// rounds it once.
#include "backward_launch.hpp"
#include "backward_mma.cuh"
#include "backward_mma_launch.hpp"
#include "device.cuh"

namespace nsa::cuda::detail {

namespace {

template <class T>
struct P3 {
  T* p[3];
};

template <class T>
__global__ void bwd_prep_kernel(bwd::Shape c, const T* d_o, P3<const T> gate, P3<const T> o,
                                P3<const float> lse, P3<T> dob, P3<float> dd, P3<float> lse2,
                                P3<T> dg) {
  const int lane = threadIdx.x & 31;
  const int64_t items = c.total_q * c.h_q;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t it = blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5);
       it < items; it += warps) {
    for (int b = 0; b < 3; ++b) {
      if (!c.enable[b]) continue;
      const float gb = to_f(gate.p[b][it]);
      float D = 0.f, dgs = 0.f;
      for (int64_t e = lane; e < c.d_v; e += 32) {
        const float up = to_f(d_o[it * c.d_v + e]), ob = to_f(o.p[b][it * c.d_v + e]);
        const T r = from_f<T>(gb * up);
        dob.p[b][it * c.d_v + e] = r;
        D += to_f(r) * ob;
        dgs += up * ob;
      }
      D = warp_sum(D);
      dgs = warp_sum(dgs);
      if (lane == 0) {
        const float l = lse.p[b][it];
        dd.p[b][it] = D;
        lse2.p[b][it] = l == -INFINITY ? INFINITY : l * kLog2e;
        dg.p[b][it] = from_f<T>(dgs);
      }
    }
  }
}

template <class T>
__global__ void bwd_dq_finish_kernel(int64_t count, const float* dq32, T* dq) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dq[i] = from_f<T>(dq32[i]);
}

template <int DK, int DV>
struct RowsSmem {
  static constexpr int kQs = DK + 8, kVs = DV + 8;  // padded row strides (bank spread)
  static constexpr int kT = kMmaBwdTile;
  template <class T>
  static constexpr size_t bytes() {
    return sizeof(T) * kT * (3 * kQs + 3 * kVs);  // Q, dO_b, two stages of K and V
  }
};

template <class T, int DK, int DV, int B>
__global__ void __launch_bounds__(kMmaBwdThreads) bwd_dq_rows_kernel(MmaBwdArgs<T> a) {
  using L = RowsSmem<DK, DV>;
  constexpr int kT = L::kT, kQs = L::kQs, kVs = L::kVs;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Qs = reinterpret_cast<T*>(smem);
  T* Ds = Qs + kT * kQs;
  T* Ks = Ds + kT * kVs;      // 2 stages
  T* Vs = Ks + 2 * kT * kQs;  // 2 stages
  const bwd::Shape& c = a.c;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  int64_t chunk;
  const bwd::Seq sq = item_seq(a, chunk);
  const int64_t G = c.group, g = blockIdx.y;
  const int64_t nvec = sq.t_q * G, f0 = chunk * kT;
  const int64_t first_t = sq.t_k - sq.t_q;
  auto vec_at = [&](int64_t f) {  // element offset of vector f's row of Q (in units of heads)
    return (sq.q_begin + f / G) * c.h_q + g * G + f % G;
  };
  gather_rows<T, DK, kT, kMmaBwdThreads>(
      Qs, kQs, a.q, [&](int r) { return f0 + r < nvec ? vec_at(f0 + r) * DK : int64_t{-1}; }, tid);
  gather_rows<T, DV, kT, kMmaBwdThreads>(
      Ds, kVs, a.dob, [&](int r) { return f0 + r < nvec ? vec_at(f0 + r) * DV : int64_t{-1}; },
      tid);
  cp_commit();

  // The union of the vectors' key sets.
  const int64_t f_last = (f0 + kT < nvec ? f0 + kT : nvec) - 1;
  const int64_t t_lo = first_t + f0 / G, t_hi = first_t + f_last / G;
  const int64_t span = c.window_keys == 0 ? c.w : c.w + 1;
  const int64_t key_rows = B == 0 ? bwd::cmp_blocks(c, sq.t_k) : sq.t_k;
  const int64_t k_lo = B == 0 ? 0 : (t_lo - span + 1 > 0 ? t_lo - span + 1 : 0);
  const int64_t k_hi = B == 0 ? bwd::cmp_blocks(c, c.visibility == 0 ? t_hi + 1 : t_hi) : t_hi + 1;
  const int64_t tiles = k_hi > k_lo ? (k_hi - k_lo + kT - 1) / kT : 0;
  const int64_t base = B == 0 ? sq.c_begin : sq.k_begin;
  const T* kb = a.k + base * c.h_kv * DK;
  const T* vb = a.v + base * c.h_kv * DV;
  auto load_tile = [&](int64_t i, int st) {
    copy_rows<T, DK, kT, kMmaBwdThreads>(Ks + st * kT * kQs, kQs, kb, k_lo + i * kT, key_rows,
                                         c.h_kv, g, tid);
    copy_rows<T, DV, kT, kMmaBwdThreads>(Vs + st * kT * kVs, kVs, vb, k_lo + i * kT, key_rows,
                                         c.h_kv, g, tid);
  };
  if (tiles > 0) load_tile(0, 0);
  cp_commit();
  cp_wait<1>();
  __syncthreads();
  QFrags<T, DK> qf;
  qf.load(Qs + warp * 16 * kQs, kQs);
  QFrags<T, DV> df;
  df.load(Ds + warp * 16 * kVs, kVs);

  // This lane's rows a and b.
  const int64_t fa = f0 + warp * 16 + (lane >> 2), fb = fa + 8;
  const bool va = fa < nvec, vb_ok = fb < nvec;
  const int64_t ra = va ? vec_at(fa) : 0, rb = vb_ok ? vec_at(fb) : 0;
  const int64_t ta = first_t + fa / G, tb = first_t + fb / G;
  const float lse_a = va ? a.lse2[ra] : INFINITY, lse_b = vb_ok ? a.lse2[rb] : INFINITY;
  const float d_a = va ? a.dd[ra] : 0.f, d_b = vb_ok ? a.dd[rb] : 0.f;

  float acc[1][DK / 8][4];
  zero_frags(acc[0]);
  const int c0 = (lane & 3) * 2;
  for (int64_t i = 0; i < tiles; ++i) {
    const int st = static_cast<int>(i & 1);
    if (i + 1 < tiles) load_tile(i + 1, st ^ 1);
    cp_commit();
    cp_wait<1>();
    __syncthreads();
    const int64_t start = k_lo + i * kT;
    // Every key of the tile seen by every vector: no per-element test.
    const bool full = B == 0 ? start + kT <= bwd::cmp_blocks(c, c.visibility == 0 ? t_lo + 1 : t_lo)
                             : start > t_hi - span && start + kT - 1 <= t_lo;
    float s[1][8][4], dp[1][8][4];
    qk_tile<T, DK, 8, 1>(s, qf, Ks + st * kT * kQs, kQs, false);
    qk_tile<T, DV, 8, 1>(dp, df, Vs + st * kT * kVs, kVs, false);
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t key = start + j * 8 + c0 + (e & 1);
        const bool hi = e >= 2;
        const bool keep = full || bwd_visible<B>(c, key, hi ? tb : ta);
        bwd_weight(s[0][j][e], dp[0][j][e], a.scale_log2, hi ? lse_b : lse_a, hi ? d_b : d_a, keep);
      }
    pv_tile<T, DK, 8, 1>(dp, acc, Ks + st * kT * kQs, kQs);
    __syncthreads();  // stage st is refilled by the next iteration's prefetch
  }
  add_dq<DK>(acc[0], a.scale, a.dq, va ? ra * DK : -1, vb_ok ? rb * DK : -1);
}

constexpr int kSlcSub = 16;  // keys per sub-tile of the selection warp kernel
constexpr int kSlcListInts = kMmaBwdSlcMaxList + 4;  // the count first; a multiple of 16 bytes

template <int DK, int DV>
struct SlcSmem {
  static constexpr int kQs = DK + 8, kVs = DV + 8;
  // Two stages of K and V (Q and dO_b pass through them on their way into registers) and the
  // warp's list of block starts.
  template <class T>
  static constexpr size_t per_warp() {
    return sizeof(T) * 2 * kSlcSub * (kQs + kVs) + sizeof(int32_t) * kSlcListInts;
  }
};

template <class T, int DK, int DV>
__global__ void __launch_bounds__(kMmaBwdThreads)
    bwd_dq_slc_kernel(MmaBwdArgs<T> a, int64_t items) {
  using L = SlcSmem<DK, DV>;
  constexpr int kQs = L::kQs, kVs = L::kVs;
  static_assert(kSlcSub * 2 >= 16, "Q and dO_b (16 rows) are staged in the two stages");
  extern __shared__ __align__(16) unsigned char smem[];
  const bwd::Shape& c = a.c;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * (kMmaBwdThreads / 32) + warp;
  if (item >= items) return;  // whole warps; nothing below synchronizes across warps
  unsigned char* mine = smem + warp * L::template per_warp<T>();
  T* Ks = reinterpret_cast<T*>(mine);
  T* Vs = Ks + 2 * kSlcSub * kQs;
  int32_t* list = reinterpret_cast<int32_t*>(Vs + 2 * kSlcSub * kVs);
  const int64_t G = c.group, g = blockIdx.y, slices = (G + 15) / 16;
  const int64_t row = item / slices, h0 = (item % slices) * 16;
  const bwd::Seq sq = c.seqs[bwd::seq_index(c.cu_q, c.num_seqs, row)];
  const int64_t t = bwd::position(sq, row);
  const int64_t cap = c.slc_causal == 0 ? t + 1 : sq.t_k;  // keys [0, cap) selectable

  // The row's blocks in list order: invalid entries dropped, repeats dropped unless multiset.
  if (lane == 0) {
    const int32_t* li = a.idx + (row * c.h_kv + g) * c.n;
    int nb = 0;
    for (int64_t s = 0; s < c.n; ++s)
      if (bwd::slc_slot_walked(c, li, s, t)) list[1 + nb++] = li[s];
    list[0] = nb;
  }
  // Q and dO_b of the 16 vectors (heads h0 .. h0 + 15 of the group, beyond G zero).
  auto off = [&](int m, int dim) {
    return h0 + m < G ? (row * c.h_q + g * G + h0 + m) * dim : int64_t{-1};
  };
  gather_rows<T, DK, 16, 32>(
      Ks, kQs, a.q, [&](int m) { return off(m, DK); }, lane);
  gather_rows<T, DV, 16, 32>(
      Vs, kVs, a.dob, [&](int m) { return off(m, DV); }, lane);
  cp_commit();
  cp_wait<0>();
  __syncwarp();
  QFrags<T, DK> qf;
  qf.load(Ks, kQs);
  QFrags<T, DV> df;
  df.load(Vs, kVs);
  const int nb = list[0];
  __syncwarp();

  const int ma = lane >> 2, mb = ma + 8;
  const int64_t ra = h0 + ma < G ? row * c.h_q + g * G + h0 + ma : -1;
  const int64_t rb = h0 + mb < G ? row * c.h_q + g * G + h0 + mb : -1;
  const float lse_a = ra >= 0 ? a.lse2[ra] : INFINITY, lse_b = rb >= 0 ? a.lse2[rb] : INFINITY;
  const float d_a = ra >= 0 ? a.dd[ra] : 0.f, d_b = rb >= 0 ? a.dd[rb] : 0.f;

  const int64_t per_block = (c.lp + kSlcSub - 1) / kSlcSub, n_sub = nb * per_block;
  const T* kb = a.k + sq.k_begin * c.h_kv * DK;
  const T* vb = a.v + sq.k_begin * c.h_kv * DV;
  auto sub_start = [&](int64_t i) {
    return static_cast<int64_t>(list[1 + i / per_block]) * c.lp + (i % per_block) * kSlcSub;
  };
  auto sub_end = [&](int64_t i) {  // end of the sub-tile's block, capped
    const int64_t e = static_cast<int64_t>(list[1 + i / per_block]) * c.lp + c.lp;
    return e < cap ? e : cap;
  };
  auto load_sub = [&](int64_t i, int st) {
    copy_rows<T, DK, kSlcSub, 32>(Ks + st * kSlcSub * kQs, kQs, kb, sub_start(i), sub_end(i),
                                  c.h_kv, g, lane);
    copy_rows<T, DV, kSlcSub, 32>(Vs + st * kSlcSub * kVs, kVs, vb, sub_start(i), sub_end(i),
                                  c.h_kv, g, lane);
  };
  float acc[1][DK / 8][4];
  zero_frags(acc[0]);
  if (n_sub > 0) load_sub(0, 0);
  cp_commit();
  const int c0 = (lane & 3) * 2;
  constexpr int kN8 = kSlcSub / 8;
  for (int64_t i = 0; i < n_sub; ++i) {
    const int st = static_cast<int>(i & 1);
    if (i + 1 < n_sub) load_sub(i + 1, st ^ 1);
    cp_commit();
    cp_wait<1>();
    __syncwarp();
    const int64_t start = sub_start(i), end = sub_end(i);
    if (start < end) {  // warp-uniform
      float s[1][kN8][4], dp[1][kN8][4];
      qk_tile<T, DK, kN8, 1>(s, qf, Ks + st * kSlcSub * kQs, kQs, false);
      qk_tile<T, DV, kN8, 1>(dp, df, Vs + st * kSlcSub * kVs, kVs, false);
#pragma unroll
      for (int j = 0; j < kN8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const bool hi = e >= 2;
          const bool keep = start + j * 8 + c0 + (e & 1) < end;
          bwd_weight(s[0][j][e], dp[0][j][e], a.scale_log2, hi ? lse_b : lse_a, hi ? d_b : d_a,
                     keep);
        }
      pv_tile<T, DK, kN8, 1>(dp, acc, Ks + st * kSlcSub * kQs, kQs);
    }
    __syncwarp();
  }
  add_dq<DK>(acc[0], a.scale, a.dq, ra >= 0 ? ra * DK : -1, rb >= 0 ? rb * DK : -1);
}

template <class K>
void set_smem(K kernel, size_t bytes, const std::string& ctx) {
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(bytes)),
        "cudaFuncSetAttribute", ctx);
}

}  // namespace

template <class T>
void launch_bwd_prep(const bwd::Shape& c, const T* d_o, const T* const gate[3], const T* const o[3],
                     const float* const lse[3], T* const dob[3], float* const dd[3],
                     float* const lse2[3], T* const dg[3], cudaStream_t stream,
                     const std::string& ctx) {
  const int64_t items = c.total_q * c.h_q;
  if (items == 0) return;
  const int64_t want = (items + 3) / 4;
  const unsigned grid = static_cast<unsigned>(want < (1 << 20) ? want : (1 << 20));
  bwd_prep_kernel<T><<<grid, 128, 0, stream>>>(
      c, d_o, P3<const T>{{gate[0], gate[1], gate[2]}}, P3<const T>{{o[0], o[1], o[2]}},
      P3<const float>{{lse[0], lse[1], lse[2]}}, P3<T>{{dob[0], dob[1], dob[2]}},
      P3<float>{{dd[0], dd[1], dd[2]}}, P3<float>{{lse2[0], lse2[1], lse2[2]}},
      P3<T>{{dg[0], dg[1], dg[2]}});
  check_launch("bwd_prep_kernel", ctx);
}

template <class T>
void launch_bwd_dq_finish(int64_t count, const float* dq32, T* dq, cudaStream_t stream,
                          const std::string& ctx) {
  if (count == 0) return;
  bwd_dq_finish_kernel<T><<<bwd_grid(count), 128, 0, stream>>>(count, dq32, dq);
  check_launch("bwd_dq_finish_kernel", ctx);
}

template <class T>
bool launch_bwd_dq_mma(int b, const MmaBwdArgs<T>& a, int64_t items, cudaStream_t stream,
                       const std::string& ctx) {
  return with_bwd_head_dims(a.c.d_k, a.c.d_v, [&](auto dk, auto dv) {
    constexpr int DK = decltype(dk)::value, DV = decltype(dv)::value;
    if (items == 0 || a.c.h_kv == 0) return;
    const dim3 grid(static_cast<unsigned>(b == 1 ? (items + 3) / 4 : items),
                    static_cast<unsigned>(a.c.h_kv));
    if (b == 1) {
      const size_t bytes = 4 * SlcSmem<DK, DV>::template per_warp<T>();
      set_smem(bwd_dq_slc_kernel<T, DK, DV>, bytes, ctx);
      bwd_dq_slc_kernel<T, DK, DV><<<grid, kMmaBwdThreads, bytes, stream>>>(a, items);
      check_launch("bwd_dq_slc_kernel", ctx);
    } else {
      const size_t bytes = RowsSmem<DK, DV>::template bytes<T>();
      auto kernel = b == 0 ? bwd_dq_rows_kernel<T, DK, DV, 0> : bwd_dq_rows_kernel<T, DK, DV, 2>;
      set_smem(kernel, bytes, ctx);
      kernel<<<grid, kMmaBwdThreads, bytes, stream>>>(a);
      check_launch(b == 0 ? "bwd_dq_rows_kernel<cmp>" : "bwd_dq_rows_kernel<win>", ctx);
    }
  });
}

#define NSA_INST(T)                                                                             \
  template void launch_bwd_prep<T>(const bwd::Shape&, const T*, const T* const[3],              \
                                   const T* const[3], const float* const[3], T* const[3],       \
                                   float* const[3], float* const[3], T* const[3], cudaStream_t, \
                                   const std::string&);                                         \
  template void launch_bwd_dq_finish<T>(int64_t, const float*, T*, cudaStream_t,                \
                                        const std::string&);                                    \
  template bool launch_bwd_dq_mma<T>(int, const MmaBwdArgs<T>&, int64_t, cudaStream_t,          \
                                     const std::string&);
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
