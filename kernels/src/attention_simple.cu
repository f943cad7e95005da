// The simple, general attention path: one warp per (query row, query head), online softmax over
// the branch's key set. It serves every dtype and head dim up to 256 and is the path fp32 inputs
// always take (tensor cores would round them to tf32).
//
// Arithmetic is fp64 (dot products, running max, sum, accumulator), rounded once on output. A
// kernel in fp32 differs from the fp32 baseline of the tolerance rule (docs/tolerance.md) only in
// the order of its roundings, so on heavy-tailed inputs its error is an independent draw of the
// same size and exceeds twice the baseline's now and then (the H200 fuzz run of 2026-11-29 found
// 19 such fp32 cases in 4139). Carrying fp64 makes this path's error that of the final rounding,
// which stays inside the bound by construction; it is the slow, general path, so the fp64
// throughput is not what limits it.
#include "device.cuh"

namespace nsa::cuda::detail {

namespace {

constexpr int kMaxPerLane = 8;  // head dims up to 256

struct WarpSoftmax {
  double m = -INFINITY, sum = 0.0;
  double acc[kMaxPerLane];
  double q[kMaxPerLane];
};

// Key/value rows of one KV head: row u of K at k + u * ks, of V at v + u * vs.
template <class T>
struct KvView {
  const T* k;
  const T* v;
  int64_t ks, vs;
};

// Adds keys [first, first + count) to the warp's softmax state.
template <class T>
__device__ void add_keys(WarpSoftmax& s, const KvView<T>& kv, int64_t first, int64_t count, int dk,
                         int dv, double scale) {
  const int lane = threadIdx.x & 31;
  for (int64_t u = first; u < first + count; ++u) {
    const T* kr = kv.k + u * kv.ks;
    double part = 0.0;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int col = lane + 32 * e;
      if (col < dk) part += s.q[e] * static_cast<double>(to_f(kr[col]));
    }
    const double z = warp_sum(part) * scale;
    const double m_new = fmax(s.m, z);
    const double corr = exp(s.m - m_new);  // 0 on the first key (m = -inf)
    const double p = exp(z - m_new);
    s.sum = s.sum * corr + p;
    s.m = m_new;
    const T* vr = kv.v + u * kv.vs;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int col = lane + 32 * e;
      s.acc[e] = s.acc[e] * corr + (col < dv ? p * static_cast<double>(to_f(vr[col])) : 0.0);
    }
  }
}

// Branch 0: compressed keys; 1: selected blocks; 2: sliding window.
template <class T, int Branch>
__global__ void attend_simple_kernel(DevCfg c, const T* __restrict__ q, const T* __restrict__ k,
                                     const T* __restrict__ v, const int32_t* __restrict__ idx,
                                     T* __restrict__ o, float* __restrict__ lse) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  const int dk = static_cast<int>(c.d_k), dv = static_cast<int>(c.d_v);
  for (int64_t item = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
       item < c.total_q * c.h_q; item += warps) {
    const int64_t row = item / c.h_q, h = item % c.h_q, g = h / c.group;
    const DevSeq sq = c.seqs[seq_of(c.cu_q, c.num_seqs, row)];
    const int64_t t = sq.t_k - sq.t_q + (row - sq.q_begin);
    WarpSoftmax s;
    const T* qr = q + (row * c.h_q + h) * c.d_k;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int col = lane + 32 * e;
      s.q[e] = col < dk ? static_cast<double>(to_f(qr[col])) : 0.0;
      s.acc[e] = 0.0;
    }
    const int64_t base_row = Branch == 0 ? sq.c_begin : sq.k_begin;
    const KvView<T> kv{k + base_row * c.h_kv * c.d_k + g * c.d_k,
                       v + base_row * c.h_kv * c.d_v + g * c.d_v, c.h_kv * c.d_k, c.h_kv * c.d_v};
    if (Branch == 0) {
      add_keys(s, kv, 0, visible_cmp(c, t), dk, dv, c.scale_f64);
    } else if (Branch == 2) {
      const int64_t span = c.window_keys == 0 ? c.w : c.w + 1;
      const int64_t lo = t - span + 1 > 0 ? t - span + 1 : 0;
      add_keys(s, kv, lo, t + 1 - lo, dk, dv, c.scale_f64);
    } else {
      const int32_t* list = idx + (row * c.h_kv + g) * c.n;
      const int64_t n_cand = t / c.lp + 1;
      const int64_t cap = c.slc_causal == 0 ? t + 1 : sq.t_k;
      for (int64_t slot = 0; slot < c.n; ++slot) {
        const int64_t j = list[slot];
        if (j < 0 || j >= n_cand) continue;
        bool repeat = false;
        if (c.policy != 2)  // strict / skip_invalid: a block counts once
          for (int64_t p = 0; p < slot && !repeat; ++p) repeat = list[p] == j;
        if (repeat) continue;
        const int64_t begin = j * c.lp;
        const int64_t end = begin + c.lp < cap ? begin + c.lp : cap;
        if (end > begin) add_keys(s, kv, begin, end - begin, dk, dv, c.scale_f64);
      }
    }
    T* orow = o + (row * c.h_q + h) * c.d_v;
    const bool empty = s.sum == 0.0;
#pragma unroll
    for (int e = 0; e < kMaxPerLane; ++e) {
      const int col = lane + 32 * e;
      if (col < dv) orow[col] = from_f64<T>(empty ? 0.0 : s.acc[e] / s.sum);
    }
    if (lane == 0) lse[row * c.h_q + h] = empty ? -INFINITY : static_cast<float>(s.m + log(s.sum));
  }
}

}  // namespace

template <class T>
void launch_attend_simple(int branch, const DevCfg& c, const T* q, const T* k, const T* v,
                          const int32_t* idx, T* o, float* lse, cudaStream_t stream,
                          const std::string& ctx) {
  const int64_t items = c.total_q * c.h_q;
  if (items == 0) return;
  const int64_t want = (items + 3) / 4;
  const unsigned grid = static_cast<unsigned>(want < (1 << 20) ? want : (1 << 20));
  switch (branch) {
    case 0:
      attend_simple_kernel<T, 0><<<grid, 128, 0, stream>>>(c, q, k, v, idx, o, lse);
      check_launch("attend_simple_kernel<cmp>", ctx);
      break;
    case 1:
      attend_simple_kernel<T, 1><<<grid, 128, 0, stream>>>(c, q, k, v, idx, o, lse);
      check_launch("attend_simple_kernel<slc>", ctx);
      break;
    default:
      attend_simple_kernel<T, 2><<<grid, 128, 0, stream>>>(c, q, k, v, idx, o, lse);
      check_launch("attend_simple_kernel<win>", ctx);
      break;
  }
}

#define NSA_INST(T)                                                                       \
  template void launch_attend_simple<T>(int, const DevCfg&, const T*, const T*, const T*, \
                                        const int32_t*, T*, float*, cudaStream_t,         \
                                        const std::string&);
NSA_INST(float)
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
