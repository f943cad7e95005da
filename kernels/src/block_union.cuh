// The union of selected blocks as a sorted list of distinct block starts in shared memory, built by
// the selection kernels from their rows' index entries (INT64_MAX marks an entry to skip).
#pragma once

#include <cstdint>

namespace nsa::cuda::detail {

// Sorts v[0, pow2) ascending (bitonic network; pow2 a power of two), `threads` threads with index
// `tid` taking part and `sync()` (__syncthreads or __syncwarp) between passes.
template <class Sync>
__device__ __forceinline__ void bitonic_sort(int64_t* v, int pow2, int tid, int threads,
                                             Sync sync) {
  for (int size = 2; size <= pow2; size <<= 1)
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int e = tid; e < pow2; e += threads) {
        const int p = e ^ stride;
        if (p > e) {
          const bool up = (e & size) == 0;
          const int64_t a = v[e], b = v[p];
          if ((a > b) == up) {
            v[e] = b;
            v[p] = a;
          }
        }
      }
      sync();
    }
}

// Compacts the sorted v[0, pow2) in place to its distinct values other than INT64_MAX; one whole
// warp calls it and every lane gets the count. A value moves to a position <= its own, so the
// compaction never overwrites an entry not yet read.
__device__ __forceinline__ int unique_sorted(int64_t* v, int pow2) {
  const int lane = threadIdx.x & 31;
  int count = 0;
  for (int base = 0; base < pow2; base += 32) {
    const int e = base + lane;
    const int64_t cur = e < pow2 ? v[e] : INT64_MAX;  // beyond pow2: never written
    const bool keep = cur != INT64_MAX && (e == 0 || v[e - 1] != cur);
    const unsigned m = __ballot_sync(0xffffffffu, keep);
    const int pos = count + __popc(m & ((1u << lane) - 1u));
    __syncwarp();
    if (keep) v[pos] = cur;
    count += __popc(m);
    __syncwarp();
  }
  return count;
}

}  // namespace nsa::cuda::detail
