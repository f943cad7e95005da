// dq of the compressed and window branches on Hopper's warpgroup MMA (wgmma, sm_90a): the
// query side of the tensor-core backward (backward_mma_query.cu) with the data flow of the
// forward's wgmma kernel (attention_wgmma.cu).
//
// - A CTA owns 128 consecutive vectors (row, head of the KV group) of one sequence, 64 per
//   consumer warpgroup, with Q and dO_b in 128-byte-swizzled shared memory (wgmma.cuh). It walks
//   the union of its vectors' key sets (a prefix of the compressed blocks, or the windows of
//   neighbouring positions) in tiles of 64 keys.
// - A producer warpgroup streams the key tiles: one thread issues TMA loads of K and V into three
//   stages guarded by mbarriers (full / empty); setmaxnreg hands its registers to the consumers.
// - Per tile: S = Q K^T and dP = dO_b V^T (both operands from shared memory), dS = P (dP - D) in
//   registers (backward_mma.cuh, the same arithmetic as the mma.sync kernels), then dq += dS K
//   with dS from registers and K as the transposed B operand. The dq product of tile i - 1 runs
//   while tile i's S and dP are turned into dS.
// - The CTA adds its fp32 dq to a.dq (each vector by one thread, branches in launch order:
//   deterministic).
#include <cstdint>

#include "backward_mma.cuh"
#include "backward_mma_launch.hpp"
#include "tensor_map.hpp"
#include "wgmma.cuh"

namespace nsa::cuda::detail {

namespace {

constexpr int kBwgVectors = kWgmmaBwdVectors;     // 64 per consumer warpgroup
constexpr int kBwgConsumers = 256;                // two consumer warpgroups
constexpr int kBwgThreads = kBwgConsumers + 128;  // and a producer warpgroup
constexpr int kBwgKeys = kMapBoxRows;             // keys per tile (one TMA box of rows)
constexpr int kBwgStages = 3;                     // loading, in S / dP, in the dq product
constexpr int kBwgProducerRegs = 40, kBwgConsumerRegs = 232;  // 128 x 40 + 256 x 232 <= 65536
static_assert(kMapBoxCols == kSwAtomCols, "a TMA box fills one swizzle atom");
static_assert(kBwgVectors == 2 * 64 && kBwgKeys == 64, "the tile shapes of wgmma.cuh");

template <class T, int DK, int DV>
struct BwgSmem {
  static constexpr size_t q_bytes = sizeof(T) * kBwgVectors * DK;
  static constexpr size_t o_bytes = sizeof(T) * kBwgVectors * DV;
  static constexpr size_t k_bytes = sizeof(T) * kBwgKeys * DK;
  static constexpr size_t v_bytes = sizeof(T) * kBwgKeys * DV;
  static constexpr size_t o_off = q_bytes;  // Q | dO_b | K stages | V stages
  static constexpr size_t k_off = o_off + o_bytes;
  static constexpr size_t v_off = k_off + kBwgStages * k_bytes;
  // Swizzle atoms need 1024-byte alignment; the dynamic base is aligned by hand.
  static constexpr size_t launch_bytes = v_off + kBwgStages * v_bytes + 1024;
  static_assert(o_off % 1024 == 0 && k_off % 1024 == 0 && v_off % 1024 == 0 &&
                    k_bytes % 1024 == 0 && v_bytes % 1024 == 0,
                "swizzle atoms on 1024-byte boundaries");
};

// Descriptor of k16 slice kk of a K-major operand of ROWS rows (wgmma.cuh's layout).
template <int ROWS>
__device__ __forceinline__ uint64_t slice_desc(uint64_t d0, int kk) {
  return desc_add(d0, (kk >> 2) * ROWS * 128 + (kk & 3) * 32);
}

// d = A B^T for a warpgroup's 64 vectors and a 64-key tile, both K-major in shared memory.
template <class T, int D>
__device__ __forceinline__ void rows_x_keys(float (&d)[8][4], uint64_t ad, uint64_t bd) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    wgmma_64x64_ss<T>(d, slice_desc<kBwgVectors>(ad, kk), slice_desc<kBwgKeys>(bd, kk), kk > 0);
}

template <class T, int DK, int DV, int B>
__global__ void __launch_bounds__(kBwgThreads, 1)
    bwd_dq_wgmma_kernel(MmaBwdArgs<T> a, const __grid_constant__ CUtensorMap k_map,
                        const __grid_constant__ CUtensorMap v_map) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using S = BwgSmem<T, DK, DV>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (__cvta_generic_to_shared(smem_raw) & 1023)) & 1023);
  unsigned char* Qs = smem;
  unsigned char* Os = smem + S::o_off;
  unsigned char* Ks = smem + S::k_off;
  unsigned char* Vs = smem + S::v_off;
  // full[st]: stage st holds its tile; empty[st]: every consumer thread is done reading it.
  __shared__ __align__(8) uint64_t full[kBwgStages], empty[kBwgStages];

  const bwd::Shape& c = a.c;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  int64_t chunk;
  const bwd::Seq sq = item_seq(a, chunk);
  const int64_t G = c.group, g = blockIdx.y;
  const int64_t nvec = sq.t_q * G, f0 = chunk * kBwgVectors;
  const int64_t first_t = sq.t_k - sq.t_q;
  auto vec_at = [&](int64_t f) {  // (row, head) slot of vector f
    return (sq.q_begin + f / G) * c.h_q + g * G + f % G;
  };

  // The union of the vectors' key sets, [k_lo, k_hi) relative to the branch's base.
  const int64_t f_last = (f0 + kBwgVectors < nvec ? f0 + kBwgVectors : nvec) - 1;
  const int64_t t_lo = first_t + f0 / G, t_hi = first_t + f_last / G;
  const int64_t span = c.window_keys == 0 ? c.w : c.w + 1;
  const int64_t k_lo = B == 0 ? 0 : (t_lo - span + 1 > 0 ? t_lo - span + 1 : 0);
  const int64_t k_hi = B == 0 ? bwd::cmp_blocks(c, c.visibility == 0 ? t_hi + 1 : t_hi) : t_hi + 1;
  const int n_tiles = k_hi > k_lo ? static_cast<int>((k_hi - k_lo + kBwgKeys - 1) / kBwgKeys) : 0;
  const int64_t base = B == 0 ? sq.c_begin : sq.k_begin;

  if (tid == kBwgConsumers) {
    for (int st = 0; st < kBwgStages; ++st) {
      mbar_init(&full[st], 1);
      mbar_init(&empty[st], kBwgConsumers);
    }
    mbar_init_fence();
  }
  // Q and dO_b of the 128 vectors; vectors past the sequence's are zero-filled.
  if (tid < kBwgConsumers) {
    for (int e = tid; e < kBwgVectors * (DK / 8); e += kBwgConsumers) {
      const int m = e / (DK / 8), cc = e % (DK / 8);
      const bool ok = f0 + m < nvec;
      cp16(Qs + sw128_offset<kBwgVectors>(m, cc), ok ? a.q + vec_at(f0 + m) * DK + cc * 8 : a.q,
           ok);
    }
    for (int e = tid; e < kBwgVectors * (DV / 8); e += kBwgConsumers) {
      const int m = e / (DV / 8), cc = e % (DV / 8);
      const bool ok = f0 + m < nvec;
      cp16(Os + sw128_offset<kBwgVectors>(m, cc), ok ? a.dob + vec_at(f0 + m) * DV + cc * 8 : a.dob,
           ok);
    }
  }
  cp_commit();
  cp_wait<0>();
  fence_async_shared();  // Q and dO_b (cp.async) are read by wgmma through the async proxy
  __syncthreads();

  // ---- producer warpgroup: one thread streams K and V tiles with TMA --------------------------
  if (tid >= kBwgConsumers) {
    set_max_regs_dec<kBwgProducerRegs>();
    if (tid != kBwgConsumers) return;
    constexpr uint32_t kBytes = sizeof(T) * kBwgKeys * (DK + DV);
    int st = 0;
    uint32_t ph = 0;  // parity of stage st's current use
    for (int i = 0; i < n_tiles; ++i) {
      if (i >= kBwgStages) mbar_wait(&empty[st], ph ^ 1);  // its previous use, released
      mbar_arrive_expect_tx(&full[st], kBytes);
      // 32-bit coordinates: the launcher declines key tensors of 2^31 rows or more.
      const int row = static_cast<int>(base + k_lo + static_cast<int64_t>(i) * kBwgKeys);
      const int head = static_cast<int>(g);
#pragma unroll
      for (int at = 0; at < DK / kSwAtomCols; ++at)
        tma_load_3d(Ks + st * S::k_bytes + at * kBwgKeys * 128, &k_map, at * kSwAtomCols, head, row,
                    &full[st]);
#pragma unroll
      for (int at = 0; at < DV / kSwAtomCols; ++at)
        tma_load_3d(Vs + st * S::v_bytes + at * kBwgKeys * 128, &v_map, at * kSwAtomCols, head, row,
                    &full[st]);
      if (++st == kBwgStages) {
        st = 0;
        ph ^= 1;
      }
    }
    return;
  }
  set_max_regs_inc<kBwgConsumerRegs>();

  // ---- consumer warpgroups --------------------------------------------------------------------
  // This lane's vectors a and b (rows 16 (warp % 4) + lane / 4, + 8 of its warpgroup's 64).
  const int64_t fa = f0 + wg * 64 + (warp & 3) * 16 + (lane >> 2), fb = fa + 8;
  const bool va = fa < nvec, vb = fb < nvec;
  const bool wg_live = f0 + wg * 64 < nvec;  // uniform in the warpgroup, as wgmma needs
  const int64_t ra = va ? vec_at(fa) : 0, rb = vb ? vec_at(fb) : 0;
  const float lse_a = va ? a.lse2[ra] : INFINITY, lse_b = vb ? a.lse2[rb] : INFINITY;
  const float d_a = va ? a.dd[ra] : 0.f, d_b = vb ? a.dd[rb] : 0.f;
  // The keys a vector sees, as offsets [lo, hi) from k_lo (32-bit: within the key tensor).
  auto key_range = [&](bool ok, int64_t f, int& lo, int& hi) {
    lo = hi = 0;
    if (!ok) return;
    const int64_t t = first_t + f / G;
    const int64_t l = B == 0 ? 0 : (t - span + 1 > 0 ? t - span + 1 : 0);
    const int64_t h = B == 0 ? bwd::cmp_blocks(c, c.visibility == 0 ? t + 1 : t) : t + 1;
    if (h > l) {
      lo = static_cast<int>(l - k_lo);
      hi = static_cast<int>(h - k_lo);
    }
  };
  int a_lo, a_hi, b_lo, b_hi;
  key_range(va, fa, a_lo, a_hi);
  key_range(vb, fb, b_lo, b_hi);
  // Tiles [full_lo, full_hi) lie inside every real vector's range of this warp: no mask there.
  int full_lo = 0, full_hi = n_tiles;
  if (va) {
    full_lo = max(full_lo, (a_lo + kBwgKeys - 1) / kBwgKeys);
    full_hi = min(full_hi, a_hi / kBwgKeys);
  }
  if (vb) {
    full_lo = max(full_lo, (b_lo + kBwgKeys - 1) / kBwgKeys);
    full_hi = min(full_hi, b_hi / kBwgKeys);
  }
  full_lo = __reduce_max_sync(0xffffffffu, full_lo);
  full_hi = __reduce_min_sync(0xffffffffu, full_hi);

  float acc[DK / 8][4];
  zero_frags(acc);
  float s[8][4], dp[8][4];
  uint32_t pa[4][4];  // dS of the previous tile, the A operand of its dq product
  const uint64_t q_desc = sw128_desc(Qs + wg * 64 * 128, 16, 1024);
  const uint64_t o_desc = sw128_desc(Os + wg * 64 * 128, 16, 1024);
  const uint64_t k_desc = sw128_desc(Ks, 16, 1024);               // K-major (S = Q K^T)
  const uint64_t v_desc = sw128_desc(Vs, 16, 1024);               // K-major (dP = dO V^T)
  const uint64_t kt_desc = sw128_desc(Ks, kBwgKeys * 128, 1024);  // MN-major (dq = dS K)
  auto dq_issue = [&](int stage) {
    const uint64_t kd = desc_add(kt_desc, stage * static_cast<int>(S::k_bytes));
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_rs_tb<T, DK / 8>(acc, pa[kk], desc_add(kd, kk * 2048));
    wgmma_commit();
  };
  const int c0 = (lane & 3) * 2;
  int st = 0, prev_st = 0;
  uint32_t ph = 0;
  for (int i = 0; i < n_tiles; ++i) {
    mbar_wait(&full[st], ph);
    if (wg_live) {
      wgmma_fence();
      rows_x_keys<T, DK>(s, q_desc, desc_add(k_desc, st * static_cast<int>(S::k_bytes)));
      rows_x_keys<T, DV>(dp, o_desc, desc_add(v_desc, st * static_cast<int>(S::v_bytes)));
      wgmma_commit();
      if (i > 0) {
        dq_issue(prev_st);
        wgmma_wait<1>();  // S and dP of tile i (the dq product of tile i - 1 may still run)
      } else {
        wgmma_wait<0>();
      }
      fence_regs(s);
      fence_regs(dp);
      const bool full_tile = i >= full_lo && i < full_hi;
      const int off = i * kBwgKeys;
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = off + j * 8 + c0 + (e & 1);
          const bool hi = e >= 2;
          const bool keep =
              full_tile || (hi ? col >= b_lo && col < b_hi : col >= a_lo && col < a_hi);
          bwd_weight(s[j][e], dp[j][e], a.scale_log2, hi ? lse_b : lse_a, hi ? d_b : d_a, keep);
        }
      wgmma_wait<0>();
      fence_regs(acc);
      if (i > 0) mbar_arrive(&empty[prev_st]);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        pa[kk][0] = pack2<T>(dp[2 * kk][0], dp[2 * kk][1]);
        pa[kk][1] = pack2<T>(dp[2 * kk][2], dp[2 * kk][3]);
        pa[kk][2] = pack2<T>(dp[2 * kk + 1][0], dp[2 * kk + 1][1]);
        pa[kk][3] = pack2<T>(dp[2 * kk + 1][2], dp[2 * kk + 1][3]);
      }
    } else {
      mbar_arrive(&empty[st]);
    }
    prev_st = st;
    if (++st == kBwgStages) {
      st = 0;
      ph ^= 1;
    }
  }
  if (!wg_live) return;
  if (n_tiles > 0) {
    dq_issue(prev_st);
    wgmma_wait<0>();
    fence_regs(acc);
  }
  add_dq<DK>(acc, a.scale, a.dq, va ? ra * DK : -1, vb ? rb * DK : -1);
#else
  __trap();  // built without sm_90a: the launcher is never asked on such a device
#endif
}

template <class T, int DK, int DV, int B>
void launch_bwg(const MmaBwdArgs<T>& a, int64_t items, cudaStream_t stream,
                const std::string& ctx) {
  using S = BwgSmem<T, DK, DV>;
  static bool configured = false;  // per instantiation
  if (!configured) {
    check(cudaFuncSetAttribute(bwd_dq_wgmma_kernel<T, DK, DV, B>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(S::launch_bytes)),
          "bwd_dq_wgmma_kernel (shared memory)", ctx);
    configured = true;
  }
  const int64_t rows = B == 0 ? a.c.total_c : a.c.total_k;
  const CUtensorMap k_map = key_tile_map(a.k, a.q, rows, a.c.h_kv, DK, ctx);
  const CUtensorMap v_map = key_tile_map(a.v, a.q, rows, a.c.h_kv, DV, ctx);
  bwd_dq_wgmma_kernel<T, DK, DV, B>
      <<<dim3(static_cast<unsigned>(items), static_cast<unsigned>(a.c.h_kv)), kBwgThreads,
         S::launch_bytes, stream>>>(a, k_map, v_map);
  check_launch(B == 0 ? "bwd_dq_wgmma_kernel<cmp>" : "bwd_dq_wgmma_kernel<win>", ctx);
}

}  // namespace

template <class T>
bool launch_bwd_dq_wgmma(int b, const MmaBwdArgs<T>& a, int64_t items, cudaStream_t stream,
                         const std::string& ctx) {
  if (b == 1 || a.c.h_kv > 65535 || items > INT32_MAX) return false;
  // TMA coordinates are 32-bit: key tensors of 2^31 rows or more stay on mma.sync.
  if ((b == 0 ? a.c.total_c : a.c.total_k) >= (int64_t{1} << 31) - kBwgKeys) return false;
  return with_bwd_head_dims(a.c.d_k, a.c.d_v, [&](auto dk, auto dv) {
    constexpr int DK = decltype(dk)::value, DV = decltype(dv)::value;
    if (items == 0 || a.c.h_kv == 0) return;
    if (b == 0)
      launch_bwg<T, DK, DV, 0>(a, items, stream, ctx);
    else
      launch_bwg<T, DK, DV, 2>(a, items, stream, ctx);
  });
}

template bool launch_bwd_dq_wgmma<__half>(int, const MmaBwdArgs<__half>&, int64_t, cudaStream_t,
                                          const std::string&);
template bool launch_bwd_dq_wgmma<__nv_bfloat16>(int, const MmaBwdArgs<__nv_bfloat16>&, int64_t,
                                                 cudaStream_t, const std::string&);

}  // namespace nsa::cuda::detail
