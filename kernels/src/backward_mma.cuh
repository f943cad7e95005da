// Shared pieces of the tensor-core backward (backward_mma_query.cu, backward_mma_keys.cu): the
// arguments of one branch's launch, which keys a query position sees per branch, and the weights
// and score gradients of one tile of scores, all in the layout of mma_softmax.cuh (lane l holds
// rows l / 4 and l / 4 + 8 and columns 2 (l % 4) + {0, 1} of each n8 tile).
//
// Numerics are those of the backward baseline (docs/tolerance.md, "Gradients"): S recomputed on
// tensor cores, P = exp(z - lse) in fp32 from the forward's fp32 lse, dP = dO_b V^T with dO_b
// = g_b dO rounded to the dtype, D = rowsum(dO_b o_b) from the forward's stored o_b, dS = P (dP -
// D); P and dS rounded to the dtype where they enter an MMA, fp32 accumulation.
#pragma once

#include "backward_mma_launch.hpp"
#include "mma_softmax.cuh"

namespace nsa::cuda::detail {

// The sequence of CTA item blockIdx.x and the item's index inside it (a.cu_items: the
// per-sequence prefix of items).
template <class T>
__device__ __forceinline__ bwd::Seq item_seq(const MmaBwdArgs<T>& a, int64_t& local) {
  const int64_t s = bwd::seq_index(a.cu_items, a.c.num_seqs, blockIdx.x);
  local = blockIdx.x - a.cu_items[s];
  return a.c.seqs[s];
}

// Zeroes an accumulator of N n8 tiles.
template <int N>
__device__ __forceinline__ void zero_frags(float (&acc)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
}

// Keys a query position t sees in branch B (0 cmp, 1 slc, 2 win), key indices relative to the
// branch's base in the sequence. For the selection the block test is the list's; here only the
// causal cap inside a block remains.
template <int B>
__device__ __forceinline__ bool bwd_visible(const bwd::Shape& c, int64_t key, int64_t t) {
  if constexpr (B == 0) {
    return key * c.d + c.l - 1 + c.visibility <= t;
  } else if constexpr (B == 1) {
    return c.slc_causal != 0 || key <= t;
  } else {
    const int64_t span = c.window_keys == 0 ? c.w : c.w + 1;
    return key <= t && key > t - span;
  }
}

// p = P (exp2 of z log2 e - lse log2 e, 0 where not kept) and dS = P (dP - D) of one element.
__device__ __forceinline__ void bwd_weight(float& s, float& dp, float scale_log2, float lse2,
                                           float D, bool keep) {
  const float p = keep ? exp2_ftz(s * scale_log2 - lse2) : 0.f;
  s = p;
  dp = p * (dp - D);
}

// The 16 x DK fp32 dq accumulator of a warp's vectors, scaled and added to dq (rows a and b of
// this lane at element offsets at_a / at_b, negative: not a vector).
template <int DK>
__device__ __forceinline__ void add_dq(const float (&acc)[DK / 8][4], float scale, float* dq,
                                       int64_t at_a, int64_t at_b) {
  const int c0 = (threadIdx.x & 3) * 2;
#pragma unroll
  for (int j = 0; j < DK / 8; ++j) {
    if (at_a >= 0) {
      dq[at_a + j * 8 + c0] += scale * acc[j][0];
      dq[at_a + j * 8 + c0 + 1] += scale * acc[j][1];
    }
    if (at_b >= 0) {
      dq[at_b + j * 8 + c0] += scale * acc[j][2];
      dq[at_b + j * 8 + c0 + 1] += scale * acc[j][3];
    }
  }
}

// Writes a warp's 16 keys' dK (scaled) and dV (fp32 sums, stored as fp64): this lane's keys
// a and b, columns 2 (l % 4) + {0, 1} of every n8 tile.
template <int DK, int DV, class T>
__device__ __forceinline__ void write_keys(const MmaBwdArgs<T>& a, const float (&dk)[DK / 8][4],
                                           const float (&dv)[DV / 8][4], int64_t base,
                                           int64_t k_end, int64_t key_a, int64_t key_b, int64_t g) {
  const int c0 = (threadIdx.x & 3) * 2;
#pragma unroll
  for (int hb = 0; hb < 2; ++hb) {
    const int64_t key = hb ? key_b : key_a;
    if (key >= k_end) continue;
    double* dkr = a.dk + ((base + key) * a.c.h_kv + g) * DK;
    double* dvr = a.dv + ((base + key) * a.c.h_kv + g) * DV;
#pragma unroll
    for (int j = 0; j < DK / 8; ++j) {
      dkr[j * 8 + c0] = static_cast<double>(a.scale * dk[j][2 * hb]);
      dkr[j * 8 + c0 + 1] = static_cast<double>(a.scale * dk[j][2 * hb + 1]);
    }
#pragma unroll
    for (int j = 0; j < DV / 8; ++j) {
      dvr[j * 8 + c0] = static_cast<double>(dv[j][2 * hb]);
      dvr[j * 8 + c0 + 1] = static_cast<double>(dv[j][2 * hb + 1]);
    }
  }
}

// A split's partial sums of its 64 keys, [64][DK + DV] (dK unscaled, then dV): this lane's rows
// r_a and r_a + 8 of them.
template <int DK, int DV>
__device__ __forceinline__ void store_partial(float* part, const float (&dk)[DK / 8][4],
                                              const float (&dv)[DV / 8][4], int r_a) {
  const int lane = threadIdx.x & 31, c0 = (lane & 3) * 2;
#pragma unroll
  for (int hb = 0; hb < 2; ++hb) {
    float* row = part + (r_a + 8 * hb) * (DK + DV);
#pragma unroll
    for (int j = 0; j < DK / 8; ++j) {
      __stcg(row + j * 8 + c0, dk[j][2 * hb]);
      __stcg(row + j * 8 + c0 + 1, dk[j][2 * hb + 1]);
    }
#pragma unroll
    for (int j = 0; j < DV / 8; ++j) {
      __stcg(row + DK + j * 8 + c0, dv[j][2 * hb]);
      __stcg(row + DK + j * 8 + c0 + 1, dv[j][2 * hb + 1]);
    }
  }
}

// The last split of a key tile to finish: the splits' partial sums of keys [k0, k_end) added in
// split order (the same order whichever CTA it is) and written, by `threads` threads.
template <int DK, int DV, class T>
__device__ __forceinline__ void add_partials(const MmaBwdArgs<T>& a, const float* part,
                                             int64_t used, int64_t k0, int64_t k_end, int64_t base,
                                             int64_t g, int tid, int threads) {
  constexpr int kT = kMmaBwdTile;
  for (int e = tid; e < kT * (DK + DV); e += threads) {
    const int r = e / (DK + DV), col = e % (DK + DV);
    const int64_t key = k0 + r;
    if (key >= k_end) continue;
    float sum = 0.f;
    for (int64_t z = 0; z < used; ++z) sum += __ldcg(part + z * kT * (DK + DV) + e);
    if (col < DK)
      a.dk[((base + key) * a.c.h_kv + g) * DK + col] = static_cast<double>(a.scale * sum);
    else
      a.dv[((base + key) * a.c.h_kv + g) * DV + col - DK] = static_cast<double>(sum);
  }
}

// Loads the 16-byte chunks of `rows` gathered vectors (row r at element offset off(r), r < rows,
// zero-filled where off(r) < 0) of width D into shared memory (row stride `stride`) with the
// CTA's threads.
template <class T, int D, int ROWS, int NTHR, class Off>
__device__ __forceinline__ void gather_rows(T* dst, int stride, const T* src, Off&& off, int tid) {
  constexpr int kc = D / 8;
  for (int e = tid; e < ROWS * kc; e += NTHR) {
    const int r = e / kc, cc = e % kc;
    const int64_t o = off(r);
    cp16(dst + r * stride + cc * 8, o >= 0 ? src + o + cc * 8 : src, o >= 0);
  }
}

}  // namespace nsa::cuda::detail
