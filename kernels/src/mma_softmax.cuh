// One key tile of flash-style attention for a warp's MW blocks of 16 query vectors on tensor
// cores, shared by the CTA-wide kernel (attention_mma.cu, MW = 2) and the warp selection kernel
// (attention_slc_warp.cu, MW = 1): S = Q K^T over NT n8 tiles (8 NT keys), the online-softmax
// update, P V. In each m16 block lane l holds rows m_a = l / 4 and m_b = m_a + 8 and columns
// 2 (l % 4) + {0, 1} of each n8 tile.
#pragma once

#include "mma.cuh"

namespace nsa::cuda::detail {

// 2^x on the special-function unit, subnormal results flushed to zero: an attention weight below
// 2^-126 of the row maximum's (which is 1) changes neither the denominator nor any output in fp32.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Maximum of a lane's 2 NT values of one row (column pairs e of each n8 tile j, at offset `half`
// 0 for row a, 2 for row b) as a tree, not a chain of dependent fmaxf.
template <int NT>
__device__ __forceinline__ float row_max(const float (&s)[NT][4], int half) {
  float m[NT];
#pragma unroll
  for (int j = 0; j < NT; ++j) m[j] = fmaxf(s[j][half], s[j][half + 1]);
#pragma unroll
  for (int w = 1; w < NT; w *= 2)
#pragma unroll
    for (int j = 0; j + w < NT; j += 2 * w) m[j] = fmaxf(m[j], m[j + w]);
  return m[0];
}

// The warp's 16 x DK query fragments (A operands of every q.k MMA), loaded once from shared
// memory (q: the warp's first Q row, row stride `stride` elements) and kept in registers for
// all key tiles (the warp selection kernel: one m16 block per warp).
template <class T, int DK>
struct QFrags {
  uint32_t a[DK / 16][4];
  __device__ __forceinline__ void load(const T* q, int stride) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int kk = 0; kk < DK / 16; ++kk)
      ldsm_x4(a[kk], q + (lane & 15) * stride + kk * 16 + (lane >> 4) * 8);
  }
  __device__ __forceinline__ void operator()(int, int kk, uint32_t (&f)[4]) const {
#pragma unroll
    for (int e = 0; e < 4; ++e) f[e] = a[kk][e];
  }
};

// The A operands read from shared memory at every use (q: the warp's first Q row, row stride
// `stride`): the CTA-wide kernel, whose registers hold two m16 blocks' accumulators instead.
template <class T>
struct QShared {
  const T* q;
  int stride;
  __device__ __forceinline__ void operator()(int mb, int kk, uint32_t (&f)[4]) const {
    const int lane = threadIdx.x & 31;
    ldsm_x4(f, q + (mb * 16 + (lane & 15)) * stride + kk * 16 + (lane >> 4) * 8);
  }
};

// s[mb] = Q_mb K^T for the warp's MW m16 blocks of query vectors; qa(mb, kk, f) yields block
// mb's A fragment of d_k slice kk. kt: the tile's first key row in shared memory, row stride
// `stride` elements; each K fragment serves all MW blocks. With `split`, each 16-wide slice of
// d_k is one MMA into zeroed registers added to s in IEEE fp32 (docs/kernels.md "Numerics");
// else the MMA accumulates.
template <class T, int DK, int NT, int MW, class QA>
__device__ __forceinline__ void qk_tile(float (&s)[MW][NT][4], const QA& qa, const T* kt,
                                        int stride, bool split) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int mb = 0; mb < MW; ++mb)
#pragma unroll
    for (int j = 0; j < NT; ++j) s[mb][j][0] = s[mb][j][1] = s[mb][j][2] = s[mb][j][3] = 0.f;
#pragma unroll
  for (int kk = 0; kk < DK / 16; ++kk) {
    uint32_t a[MW][4];
#pragma unroll
    for (int mb = 0; mb < MW; ++mb) qa(mb, kk, a[mb]);
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t b[4];
      ldsm_x4(b, kt + (np * 16 + (lane >> 4) * 8 + (lane & 7)) * stride + kk * 16 +
                     ((lane >> 3) & 1) * 8);
#pragma unroll
      for (int mb = 0; mb < MW; ++mb) {
        if (split && kk > 0) {
          float t0[4] = {0.f, 0.f, 0.f, 0.f}, t1[4] = {0.f, 0.f, 0.f, 0.f};
          mma<T>(t0, a[mb], b[0], b[1]);
          mma<T>(t1, a[mb], b[2], b[3]);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            s[mb][2 * np][e] += t0[e];
            s[mb][2 * np + 1][e] += t1[e];
          }
        } else {
          mma<T>(s[mb][2 * np], a[mb], b[0], b[1]);
          mma<T>(s[mb][2 * np + 1], a[mb], b[2], b[3]);
        }
      }
    }
  }
}

// Columns [lo, hi) of a tile of `width` keys starting at key `start` that lie in the key range
// [key_lo, key_hi); 32-bit, so the per-element mask below compares small ints only.
struct TileCols {
  int lo = 0, hi = 0;  // lo >= hi: no column
  __device__ __forceinline__ TileCols() {}
  __device__ __forceinline__ TileCols(int64_t key_lo, int64_t key_hi, int64_t start, int width) {
    const int64_t a = key_lo - start, b = key_hi - start;
    lo = static_cast<int>(a < 0 ? 0 : (a > width ? width : a));
    hi = static_cast<int>(b < 0 ? 0 : (b > width ? width : b));
  }
  // From the range relative to the tile's first key: 32-bit arithmetic where both ends are
  // known to lie within a few billion keys of the tile (the decode kernels' chunks).
  __device__ __forceinline__ static TileCols relative(int key_lo, int key_hi, int width) {
    TileCols t;
    t.lo = min(max(key_lo, 0), width);
    t.hi = min(max(key_hi, 0), width);
    return t;
  }
  __device__ __forceinline__ bool all(int width) const { return lo == 0 && hi == width; }
};

// Scales a tile of q.k sums to natural units (z = scale q.k) and sets every column outside its
// row's TileCols to -inf; tmax_a/b: this lane's maxima. `full` (warp-uniform) says every column of
// every row is kept, the interior tiles that make up most of the work: no compares there.
template <int NT>
__device__ __forceinline__ void scale_mask_tile(float (&s)[NT][4], float scale, bool full,
                                                TileCols ca, TileCols cb, float& tmax_a,
                                                float& tmax_b) {
  if (full) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[j][e] *= scale;
  } else {
    const int c0 = (threadIdx.x & 3) * 2;
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int col = j * 8 + c0 + e;
        s[j][e] = col >= ca.lo && col < ca.hi ? s[j][e] * scale : -INFINITY;
        s[j][2 + e] = col >= cb.lo && col < cb.hi ? s[j][2 + e] * scale : -INFINITY;
      }
  }
  tmax_a = row_max<NT>(s, 0);
  tmax_b = row_max<NT>(s, 2);
}

// Running state of a lane's two rows: max of z (natural units) and the sum of the weights.
struct SoftmaxRows {
  float mx_a = -INFINITY, mx_b = -INFINITY, l_a = 0.f, l_b = 0.f;
};

// Turns a tile of scores s (natural units, -inf where masked; tmax_a/b: this lane's maxima over
// them) into the weights P of rows a and b (times the row weights w_a/w_b, multiplicities) and
// adds them to the running state; corr_a/b: the factors that rescale an accumulator to the new
// maxima (exactly 1 where a maximum did not change). The sums use the unrounded weights.
template <int NT>
__device__ __forceinline__ void softmax_weights(float (&s)[NT][4], float tmax_a, float tmax_b,
                                                float w_a, float w_b, SoftmaxRows& st,
                                                float& corr_a, float& corr_b) {
  tmax_a = fmaxf(tmax_a, __shfl_xor_sync(0xffffffffu, tmax_a, 1));
  tmax_a = fmaxf(tmax_a, __shfl_xor_sync(0xffffffffu, tmax_a, 2));
  tmax_b = fmaxf(tmax_b, __shfl_xor_sync(0xffffffffu, tmax_b, 1));
  tmax_b = fmaxf(tmax_b, __shfl_xor_sync(0xffffffffu, tmax_b, 2));
  const float new_a = fmaxf(st.mx_a, tmax_a), new_b = fmaxf(st.mx_b, tmax_b);
  const float use_a = new_a == -INFINITY ? 0.f : new_a;
  const float use_b = new_b == -INFINITY ? 0.f : new_b;
  corr_a = exp2_ftz((st.mx_a - use_a) * kLog2e);
  corr_b = exp2_ftz((st.mx_b - use_b) * kLog2e);
  st.mx_a = new_a;
  st.mx_b = new_b;
  // Weights are 1 except for blocks a selection lists twice (multiset); skipping the multiply by
  // 1 changes no bit.
  const bool weighted = __any_sync(0xffffffffu, w_a != 1.f || w_b != 1.f);
  float sum_a[2] = {0.f, 0.f}, sum_b[2] = {0.f, 0.f};  // two chains each: shorter dependencies
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      s[j][e] = exp2_ftz((s[j][e] - use_a) * kLog2e);
      s[j][2 + e] = exp2_ftz((s[j][2 + e] - use_b) * kLog2e);
      if (weighted) {
        s[j][e] *= w_a;
        s[j][2 + e] *= w_b;
      }
      sum_a[j & 1] += s[j][e];
      sum_b[j & 1] += s[j][2 + e];
    }
  st.l_a = st.l_a * corr_a + (sum_a[0] + sum_a[1]);
  st.l_b = st.l_b * corr_b + (sum_b[0] + sum_b[1]);
}

// acc *= corr per row; skipped when every lane's factors are exactly 1 (changes no bit).
template <int DV>
__device__ __forceinline__ void rescale_rows(float (&acc)[DV / 8][4], float corr_a, float corr_b) {
  if (__any_sync(0xffffffffu, corr_a != 1.f || corr_b != 1.f)) {
#pragma unroll
    for (int j = 0; j < DV / 8; ++j) {
      acc[j][0] *= corr_a;
      acc[j][1] *= corr_a;
      acc[j][2] *= corr_b;
      acc[j][3] *= corr_b;
    }
  }
}

// softmax_weights, then the accumulator acc rescaled to the new maxima.
template <int NT, int DV>
__device__ __forceinline__ void softmax_update(float (&s)[NT][4], float tmax_a, float tmax_b,
                                               float w_a, float w_b, SoftmaxRows& st,
                                               float (&acc)[DV / 8][4]) {
  float corr_a, corr_b;
  softmax_weights<NT>(s, tmax_a, tmax_b, w_a, w_b, st, corr_a, corr_b);
  rescale_rows<DV>(acc, corr_a, corr_b);
}

// acc[mb] += P_mb V for the warp's MW m16 blocks: P rounded to T (the MMA operand), each V
// fragment (vt: the tile's first V row in shared memory, row stride `stride`) serving all blocks.
template <class T, int DV, int NT, int MW>
__device__ __forceinline__ void pv_tile(const float (&p)[MW][NT][4], float (&acc)[MW][DV / 8][4],
                                        const T* vt, int stride) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int kk = 0; kk < NT / 2; ++kk) {
    uint32_t a[MW][4];
#pragma unroll
    for (int mb = 0; mb < MW; ++mb) {
      a[mb][0] = pack2<T>(p[mb][2 * kk][0], p[mb][2 * kk][1]);
      a[mb][1] = pack2<T>(p[mb][2 * kk][2], p[mb][2 * kk][3]);
      a[mb][2] = pack2<T>(p[mb][2 * kk + 1][0], p[mb][2 * kk + 1][1]);
      a[mb][3] = pack2<T>(p[mb][2 * kk + 1][2], p[mb][2 * kk + 1][3]);
    }
#pragma unroll
    for (int np = 0; np < DV / 16; ++np) {
      uint32_t b[4];
      ldsm_x4_t(b, vt + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * stride + np * 16 +
                       (lane >> 4) * 8);
#pragma unroll
      for (int mb = 0; mb < MW; ++mb) {
        mma<T>(acc[mb][2 * np], a[mb], b[0], b[1]);
        mma<T>(acc[mb][2 * np + 1], a[mb], b[2], b[3]);
      }
    }
  }
}

// Final normalisation of a lane's two rows: sums over the 4 lanes of each row, then o = acc / l
// rounded to T (o_a/o_b null: row not written) and lse = m + log l (-inf for an empty key set).
template <class T, int DV>
__device__ __forceinline__ void write_rows(SoftmaxRows st, const float (&acc)[DV / 8][4], T* o_a,
                                           T* o_b, float* lse_a, float* lse_b) {
  const int lane = threadIdx.x & 31;
  st.l_a += __shfl_xor_sync(0xffffffffu, st.l_a, 1);
  st.l_a += __shfl_xor_sync(0xffffffffu, st.l_a, 2);
  st.l_b += __shfl_xor_sync(0xffffffffu, st.l_b, 1);
  st.l_b += __shfl_xor_sync(0xffffffffu, st.l_b, 2);
  const float inv_a = st.l_a > 0.f ? 1.f / st.l_a : 0.f, inv_b = st.l_b > 0.f ? 1.f / st.l_b : 0.f;
#pragma unroll
  for (int j = 0; j < DV / 8; ++j) {
    const int col = j * 8 + (lane & 3) * 2;
    if (o_a)
      *reinterpret_cast<uint32_t*>(o_a + col) = pack2<T>(acc[j][0] * inv_a, acc[j][1] * inv_a);
    if (o_b)
      *reinterpret_cast<uint32_t*>(o_b + col) = pack2<T>(acc[j][2] * inv_b, acc[j][3] * inv_b);
  }
  if ((lane & 3) == 0) {
    if (lse_a) *lse_a = st.l_a > 0.f ? st.mx_a + logf(st.l_a) : -INFINITY;
    if (lse_b) *lse_b = st.l_b > 0.f ? st.mx_b + logf(st.l_b) : -INFINITY;
  }
}

// The same normalisation into a split-K partial instead (decode kernels): o = acc / l in fp32 at
// part_o_a/b (null: vector not written) and lse = m + log l (-inf where the chunk held no key).
template <int DV>
__device__ __forceinline__ void write_partial_rows(SoftmaxRows st, const float (&acc)[DV / 8][4],
                                                   float* part_o_a, float* part_o_b, float* lse_a,
                                                   float* lse_b) {
  const int lane = threadIdx.x & 31;
  st.l_a += __shfl_xor_sync(0xffffffffu, st.l_a, 1);
  st.l_a += __shfl_xor_sync(0xffffffffu, st.l_a, 2);
  st.l_b += __shfl_xor_sync(0xffffffffu, st.l_b, 1);
  st.l_b += __shfl_xor_sync(0xffffffffu, st.l_b, 2);
  const float inv_a = st.l_a > 0.f ? 1.f / st.l_a : 0.f, inv_b = st.l_b > 0.f ? 1.f / st.l_b : 0.f;
#pragma unroll
  for (int j = 0; j < DV / 8; ++j) {
    const int col = j * 8 + (lane & 3) * 2;
    if (part_o_a)
      *reinterpret_cast<float2*>(part_o_a + col) =
          make_float2(acc[j][0] * inv_a, acc[j][1] * inv_a);
    if (part_o_b)
      *reinterpret_cast<float2*>(part_o_b + col) =
          make_float2(acc[j][2] * inv_b, acc[j][3] * inv_b);
  }
  if ((lane & 3) == 0) {
    if (lse_a) *lse_a = st.l_a > 0.f ? st.mx_a + logf(st.l_a) : -INFINITY;
    if (lse_b) *lse_b = st.l_b > 0.f ? st.mx_b + logf(st.l_b) : -INFINITY;
  }
}

}  // namespace nsa::cuda::detail
