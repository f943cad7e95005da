// Importance scores and top-n.
//  1. group_probs: pg[t,g,i] = sum over the G heads of p_cmp[t,h,i] = exp(s q_h.k~_i - lse_h)
//     (optionally also storing p_cmp per head).
//  2. map_scores: P[t,g,j] from pg by the score mapping (linear, so mapping the head sum equals
//     summing the mapped heads), score_one forcing, sum/mean reduction; -inf for non-candidates.
//  3. topn: forced blocks plus the best free candidates under the tie rule, ascending, -1 padded.
#include <algorithm>

#include "device.cuh"
#include "score_map.cuh"

namespace nsa::cuda::detail {

namespace {

struct RowPos {
  int64_t t, t_k;
};

__device__ RowPos row_pos(const DevCfg& c, int64_t row) {
  const DevSeq sq = c.seqs[seq_of(c.cu_q, c.num_seqs, row)];
  return {sq.t_k - sq.t_q + (row - sq.q_begin), sq.t_k};
}

// One block per (row, group); Q of the group staged in shared memory; threads over blocks i.
template <class T>
__global__ void group_probs_kernel(DevCfg c, int64_t row0, int64_t rows, const T* __restrict__ q,
                                   const T* __restrict__ kc, const float* __restrict__ lse_cmp,
                                   float* __restrict__ pg, float* __restrict__ p_cmp) {
  extern __shared__ float qs[];  // [G, d_k]
  const int64_t G = c.group, dk = c.d_k;
  for (int64_t local = blockIdx.x; local < rows * c.h_kv; local += gridDim.x) {
    const int64_t item = row0 * c.h_kv + local;
    const int64_t row = item / c.h_kv, g = item % c.h_kv;
    const DevSeq sq = c.seqs[seq_of(c.cu_q, c.num_seqs, row)];
    const int64_t t = sq.t_k - sq.t_q + (row - sq.q_begin);
    const int64_t vis = visible_cmp(c, t);
    __syncthreads();
    for (int64_t e = threadIdx.x; e < G * dk; e += blockDim.x)
      qs[e] = to_f(q[(row * c.h_q + g * G) * dk + e]);
    __syncthreads();
    const T* kb = kc + (sq.c_begin * c.h_kv + g) * dk;
    for (int64_t i = threadIdx.x; i < c.nc_max; i += blockDim.x) {
      float total = 0.0f;
      for (int64_t h = 0; h < G; ++h) {
        float p = 0.0f;
        if (i < vis) {
          const T* kr = kb + i * c.h_kv * dk;
          // fp64 like the simple attention path whose lse it uses (attention_simple.cu).
          double z = 0.0;
          for (int64_t e = 0; e < dk; ++e)
            z += static_cast<double>(qs[h * dk + e]) * static_cast<double>(to_f(kr[e]));
          p = static_cast<float>(exp(z * c.scale_f64 - lse_cmp[row * c.h_q + g * G + h]));
        }
        total += p;
        if (p_cmp) p_cmp[(row * c.h_q + g * G + h) * c.nc_max + i] = p;
      }
      if (pg) pg[local * c.nc_max + i] = total;
    }
  }
}

// One block per (row, group). The row's group probabilities are staged in shared memory once
// (coalesced) when they fit, with `pad_l` zeros before and `pad_r` after them, so that every
// index a mapping forms for a candidate block reads a zero outside [0, vis) without a bounds
// check; each mapped score then reads l'/d * l/d of them from there (32-bit index arithmetic).
// Rows too long to stage read global memory with checks.
__global__ void map_scores_kernel(DevCfg c, int64_t row0, int64_t rows,
                                  const float* __restrict__ pg, float* __restrict__ scores,
                                  int stage, int pad_l, int pad_r) {
  extern __shared__ float ps[];
  const int64_t per_slc = c.lp / c.d, per_cmp = c.l / c.d;
  for (int64_t local = blockIdx.x; local < rows * c.h_kv; local += gridDim.x) {
    const int64_t item = row0 * c.h_kv + local;
    const RowPos rp = row_pos(c, item / c.h_kv);
    const int64_t vis = visible_cmp(c, rp.t);
    const int64_t n_cand = rp.t / c.lp + 1, cur = rp.t / c.lp;
    const float* p = pg + local * c.nc_max;
    float* out = scores + item * c.ns_max;
    if (stage) {
      // Only the part of the row that candidates j < n_cand read, zeros past the visible blocks.
      __syncthreads();
      const int span = pad_l + static_cast<int>(c.nc_max) + pad_r;
      const int need = staged_reach(c, n_cand, pad_l, span);
      const int v = static_cast<int>(vis);
      for (int i = threadIdx.x; i < need; i += blockDim.x) {
        const int k = i - pad_l;
        ps[i] = k >= 0 && k < v ? p[k] : 0.0f;
      }
      __syncthreads();
      const float* z = ps + pad_l;
      for (int j = threadIdx.x; j < static_cast<int>(c.ns_max); j += blockDim.x)
        out[j] = block_score(
            c, j, n_cand, cur,
            j < n_cand ? mapped_score<int>(c, static_cast<int>(per_slc), static_cast<int>(per_cmp),
                                           j, [&](int i) { return z[i]; })
                       : 0.0f);
    } else {
      auto at = [&](int64_t i) { return i >= 0 && i < vis ? p[i] : 0.0f; };
      for (int64_t j = threadIdx.x; j < c.ns_max; j += blockDim.x)
        out[j] = block_score(c, j, n_cand, cur,
                             j < n_cand ? mapped_score<int64_t>(c, per_slc, per_cmp, j, at) : 0.0f);
    }
  }
}

constexpr int kTopnThreads = 128;

__global__ void topn_kernel(DevCfg c, const float* __restrict__ scores,
                            int32_t* __restrict__ indices) {
  extern __shared__ int64_t sel[];  // [n]
  __shared__ float red_s[kTopnThreads];
  __shared__ int64_t red_j[kTopnThreads];
  const bool lower_first = c.tie == 0;
  const bool always = c.forced == 0;
  for (int64_t item = blockIdx.x; item < c.total_q * c.h_kv; item += gridDim.x) {
    const RowPos rp = row_pos(c, item / c.h_kv);
    const int64_t n_cand = rp.t / c.lp + 1, cur = rp.t / c.lp;
    const float* s = scores + item * c.ns_max;
    const int64_t want = c.n < n_cand ? c.n : n_cand;
    // Forced blocks as two disjoint ranges: [0, a) and [b, cur].
    const int64_t a = c.n_init < n_cand ? c.n_init : n_cand;
    const int64_t b0 = cur - c.n_local + 1;
    const int64_t b = b0 > a ? b0 : a;
    auto is_forced = [&](int64_t j) { return j < c.n_init || j > cur - c.n_local; };
    int64_t count = 0;
    if (always) {
      for (int64_t j = threadIdx.x; j < a; j += blockDim.x) sel[j] = j;
      for (int64_t j = b + threadIdx.x; j <= cur; j += blockDim.x) sel[a + (j - b)] = j;
      count = a + (cur >= b ? cur - b + 1 : 0);
    }
    // better(x, y): x ranks before y.
    auto better = [&](float sx, int64_t x, float sy, int64_t y) {
      if (sx != sy) return sx > sy;
      return lower_first ? x < y : x > y;
    };
    float prev_s = INFINITY;
    int64_t prev_j = -1;  // nothing picked yet: every candidate qualifies
    for (; count < want; ++count) {
      float best_s = -INFINITY;
      int64_t best_j = -1;
      for (int64_t j = threadIdx.x; j < n_cand; j += blockDim.x) {
        if (always && is_forced(j)) continue;
        const float sj = s[j];
        if (prev_j >= 0 && !better(prev_s, prev_j, sj, j)) continue;
        if (best_j < 0 || better(sj, j, best_s, best_j)) {
          best_s = sj;
          best_j = j;
        }
      }
      red_s[threadIdx.x] = best_s;
      red_j[threadIdx.x] = best_j;
      __syncthreads();
      for (int w = kTopnThreads / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) {
          const int64_t oj = red_j[threadIdx.x + w];
          if (oj >= 0 &&
              (red_j[threadIdx.x] < 0 ||
               better(red_s[threadIdx.x + w], oj, red_s[threadIdx.x], red_j[threadIdx.x]))) {
            red_s[threadIdx.x] = red_s[threadIdx.x + w];
            red_j[threadIdx.x] = oj;
          }
        }
        __syncthreads();
      }
      prev_s = red_s[0];
      prev_j = red_j[0];
      if (threadIdx.x == 0) sel[count] = prev_j;
      __syncthreads();
    }
    __syncthreads();
    int32_t* out = indices + item * c.n;
    for (int64_t e = threadIdx.x; e < want; e += blockDim.x) {
      int64_t rank = 0;
      for (int64_t f = 0; f < want; ++f) rank += sel[f] < sel[e];
      out[rank] = static_cast<int32_t>(sel[e]);
    }
    for (int64_t e = want + threadIdx.x; e < c.n; e += blockDim.x) out[e] = -1;
    __syncthreads();
  }
}

// Fast top-n for rows with at most 1024 candidates: one warp per (row, group), candidate j held
// by lane j % 32 in register slot j / 32; `take` rounds of a warp-wide arg-max under the tie
// rule, then the selected set is written in ascending order by ballots.
__global__ void topn_warp_kernel(DevCfg c, const float* __restrict__ scores,
                                 int32_t* __restrict__ indices) {
  constexpr int kSlots = 32;
  const int lane = threadIdx.x & 31;
  const bool lower_first = c.tie == 0;
  const bool always = c.forced == 0;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t item = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
       item < c.total_q * c.h_kv; item += warps) {
    const RowPos rp = row_pos(c, item / c.h_kv);
    const int64_t n_cand = rp.t / c.lp + 1, cur = rp.t / c.lp;
    const float* s = scores + item * c.ns_max;
    const int64_t want = c.n < n_cand ? c.n : n_cand;
    float val[kSlots];
    unsigned avail = 0, chosen = 0;
    int64_t count = 0;
#pragma unroll
    for (int k = 0; k < kSlots; ++k) {
      const int64_t j = lane + 32 * k;
      val[k] = j < n_cand ? s[j] : -INFINITY;
      const bool forced = j < c.n_init || j > cur - c.n_local;
      if (j < n_cand) {
        if (always && forced)
          chosen |= 1u << k;
        else
          avail |= 1u << k;
      }
    }
    if (always) {
      const int64_t a = c.n_init < n_cand ? c.n_init : n_cand;
      const int64_t b0 = cur - c.n_local + 1, b = b0 > a ? b0 : a;
      count = a + (cur >= b ? cur - b + 1 : 0);
    }
    for (; count < want; ++count) {
      // Lane-local best among available candidates.
      float bs = -INFINITY;
      int bj = -1;
#pragma unroll
      for (int k = 0; k < kSlots; ++k) {
        if (!(avail >> k & 1u)) continue;
        const int j = lane + 32 * k;
        const bool better =
            bj < 0 || val[k] > bs || (val[k] == bs && (lower_first ? j < bj : j > bj));
        if (better) {
          bs = val[k];
          bj = j;
        }
      }
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) {
        const float os = __shfl_xor_sync(0xffffffffu, bs, off);
        const int oj = __shfl_xor_sync(0xffffffffu, bj, off);
        const bool take_other =
            oj >= 0 && (bj < 0 || os > bs || (os == bs && (lower_first ? oj < bj : oj > bj)));
        if (take_other) {
          bs = os;
          bj = oj;
        }
      }
      if (bj < 0) break;  // cannot happen for finite scores; never loop forever
      if ((bj & 31) == lane) {
        const unsigned bit = 1u << (bj >> 5);
        avail &= ~bit;
        chosen |= bit;
      }
    }
    int32_t* out = indices + item * c.n;
    int64_t written = 0;
#pragma unroll
    for (int k = 0; k < kSlots; ++k) {
      const bool mine = chosen >> k & 1u;
      const unsigned m = __ballot_sync(0xffffffffu, mine);
      if (mine) out[written + __popc(m & ((1u << lane) - 1u))] = lane + 32 * k;
      written += __popc(m);
    }
    for (int64_t e = written + lane; e < c.n; e += 32) out[e] = -1;
  }
}

unsigned grid_for(int64_t items) {
  return static_cast<unsigned>(items < (1 << 22) ? items : (1 << 22));
}

}  // namespace

template <class T>
void launch_group_probs(const DevCfg& c, int64_t row0, int64_t rows, const T* q, const T* kc,
                        const float* lse_cmp, float* pg, float* p_cmp, cudaStream_t stream,
                        const std::string& ctx) {
  const int64_t items = rows * c.h_kv;
  if (items == 0 || c.nc_max == 0) return;
  const size_t smem = static_cast<size_t>(c.group * c.d_k) * sizeof(float);
  if (smem > 48 * 1024)
    check(cudaFuncSetAttribute(group_probs_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(smem)),
          "group_probs_kernel (shared memory)", ctx);
  group_probs_kernel<T>
      <<<grid_for(items), 128, smem, stream>>>(c, row0, rows, q, kc, lse_cmp, pg, p_cmp);
  check_launch("group_probs_kernel", ctx);
}

void launch_map_scores(const DevCfg& c, int64_t row0, int64_t rows, const float* pg, float* scores,
                       cudaStream_t stream, const std::string& ctx) {
  const int64_t items = rows * c.h_kv;
  if (items == 0) return;
  const MapPads pads = map_pads(c);
  const int64_t pad_l = pads.left, pad_r = pads.right, span = pads.span(c);
  const bool stage = span <= 12 * 1024;  // 48 KB of shared memory
  const size_t smem = stage ? static_cast<size_t>(span) * sizeof(float) : 0;
  map_scores_kernel<<<grid_for(items), 256, smem, stream>>>(
      c, row0, rows, pg, scores, stage ? 1 : 0, static_cast<int>(stage ? pad_l : 0),
      static_cast<int>(stage ? pad_r : 0));
  check_launch("map_scores_kernel", ctx);
}

void launch_topn(const DevCfg& c, const float* scores, int32_t* indices, cudaStream_t stream,
                 const std::string& ctx) {
  const int64_t items = c.total_q * c.h_kv;
  if (items == 0) return;
  if (c.ns_max <= 1024) {
    topn_warp_kernel<<<grid_for((items + 3) / 4), 128, 0, stream>>>(c, scores, indices);
    check_launch("topn_warp_kernel", ctx);
    return;
  }
  const size_t smem = static_cast<size_t>(c.n) * sizeof(int64_t);
  if (smem > 48 * 1024)
    check(cudaFuncSetAttribute(topn_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(smem)),
          "topn_kernel (shared memory)", ctx);
  topn_kernel<<<grid_for(items), kTopnThreads, smem, stream>>>(c, scores, indices);
  check_launch("topn_kernel", ctx);
}

#define NSA_INST(T)                                                                        \
  template void launch_group_probs<T>(const DevCfg&, int64_t, int64_t, const T*, const T*, \
                                      const float*, float*, float*, cudaStream_t,          \
                                      const std::string&);
NSA_INST(float)
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
