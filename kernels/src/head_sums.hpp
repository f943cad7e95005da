// The head sum of the probs pass (attention_mma.cu) as a reduce-scatter across the lanes of a
// warp. Written once for two callers: the kernel, whose lane exchange is a warp shuffle, and a
// host model of a warp (kernels/tests/test_head_sums.cpp: 32 threads in lockstep), so that the
// exchange pattern is tested on machines without a GPU.
#pragma once

#if defined(__CUDACC__)
#define NSA_HEAD_SUMS_FN __device__ __forceinline__
#define NSA_HEAD_SUMS_UNROLL _Pragma("unroll")
#else
#define NSA_HEAD_SUMS_FN inline
#define NSA_HEAD_SUMS_UNROLL
#endif

namespace nsa::cuda::detail {

// Sums the pairs v[j] (fields x, y: key columns 8 j + 2 (lane % 4) + {0, 1}) over the `bits`
// lane bits 2, 3, ... of `lane` by halving exchanges (a reduce-scatter: 2^bits - 1 fewer
// exchanges than a butterfly). xchg(x, m) returns the x that lane ^ m passed to the same call;
// every lane of the warp must make the same calls. Afterwards v[jj], jj < 8 >> bits, holds the
// sum for column pair j0 + jj; returns j0.
template <class Pair, class Xchg>
NSA_HEAD_SUMS_FN int sum_heads_in_lanes(Pair (&v)[8], int bits, int lane, Xchg&& xchg) {
  int j0 = 0;
  NSA_HEAD_SUMS_UNROLL
  for (int k = 0; k < 3; ++k) {
    if (k >= bits) break;
    constexpr int kHalf[3] = {4, 2, 1};
    const int half = kHalf[k];
    const bool hi = (lane >> (2 + k)) & 1;
    NSA_HEAD_SUMS_UNROLL
    for (int jj = 0; jj < 4; ++jj) {
      if (jj >= half) break;
      const Pair send = hi ? v[jj] : v[jj + half];
      const Pair keep = hi ? v[jj + half] : v[jj];
      v[jj].x = keep.x + xchg(send.x, 1 << (2 + k));
      v[jj].y = keep.y + xchg(send.y, 1 << (2 + k));
    }
    j0 += hi ? half : 0;
  }
  return j0;
}

}  // namespace nsa::cuda::detail
