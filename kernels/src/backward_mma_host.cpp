// Host side of the tensor-core backward: work tables (per-sequence prefix sums of CTA items, so
// a CTA finds its sequence by binary search) and the launch order prep -> dq per branch -> dq
// rounding; key sides per branch.
#include "backward_mma_host.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "launch.hpp"
#include "nsa/cuda/forward.hpp"

namespace nsa::cuda::detail {

namespace {

using Items = std::vector<int64_t>;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Prefix of per-sequence item counts.
template <class F>
Items prefix(const nsa::ref::ValidConfig& vc, F&& count) {
  Items cu{0};
  for (const auto& s : vc.seqs) cu.push_back(cu.back() + count(s));
  return cu;
}

// Chunks of `per` vectors (row, head of the group) per sequence.
Items row_items(const nsa::ref::ValidConfig& vc, int64_t per) {
  return prefix(vc, [&](const auto& s) { return ceil_div(s.t_q * vc.group, per); });
}

Items key_items(const nsa::ref::ValidConfig& vc, int b) {
  const auto& c = vc.cfg;
  return prefix(vc, [&](const auto& s) -> int64_t {
    if (b == 0) return ceil_div(vc.num_cmp_blocks(s.t_k), kMmaBwdTile);
    if (b == 2) return ceil_div(s.t_k, kMmaBwdTile);
    return ceil_div(s.t_k, c.slc_block) * ceil_div(c.slc_block, kMmaBwdTile);
  });
}

DeviceBuffer upload(const Items& v, const std::string& what) {
  DeviceBuffer b(v.size() * sizeof(int64_t), what);
  check(cudaMemcpy(b.get(), v.data(), b.bytes(), cudaMemcpyHostToDevice), "cudaMemcpy", what);
  return b;
}

int64_t max_t_q(const nsa::ref::ValidConfig& vc) {
  int64_t m = 0;
  for (const auto& s : vc.seqs) m = std::max(m, s.t_q);
  return m;
}

int64_t part_floats(const nsa::ref::ValidConfig& vc, int b) {
  const auto& c = vc.cfg;
  return key_items(vc, b).back() * c.h_kv * mma_key_splits(vc, b) * kMmaBwdTile * (c.d_k + c.d_v);
}

}  // namespace

int64_t mma_key_splits(const nsa::ref::ValidConfig& vc, int b) {
  if (b == 2) return 1;
  const int64_t longest = ceil_div(max_t_q(vc) * vc.group, kMmaBwdTile);  // chunks of a tile
  return std::clamp<int64_t>(ceil_div(longest, 64), 1, b == 0 ? 32 : 8);
}

bool mma_backward_fits(const nsa::ref::ValidConfig& vc) {
  const auto& c = vc.cfg;
  if (c.dtype != nsa::ref::Dtype::f16 && c.dtype != nsa::ref::Dtype::bf16) return false;
  if (c.enable_slc && c.top_n > kMmaBwdSlcMaxList) return false;
  return with_bwd_head_dims(c.d_k, c.d_v, [](auto, auto) {});
}

std::size_t mma_backward_scratch_bytes(const nsa::ref::ValidConfig& vc) {
  const auto& c = vc.cfg;
  const std::size_t nq = static_cast<std::size_t>(vc.total_q * c.h_q), eb = dtype_bytes(c.dtype);
  std::size_t bytes = nq * static_cast<std::size_t>(c.d_k) * 4;  // fp32 dq
  for (int b = 0; b < 3; ++b)
    if (c.enabled(static_cast<nsa::ref::Branch>(b)))
      bytes += nq * (2 * static_cast<std::size_t>(c.d_v) * eb + 3 * 4);  // o_b, dO_b; lse, D, lse2
  int64_t part = 0, slots = 0;
  for (int b = 0; b < 3; ++b)
    if (c.enabled(static_cast<nsa::ref::Branch>(b))) {
      part = std::max(part, part_floats(vc, b));
      slots = std::max(slots, key_items(vc, b).back() * c.h_kv);
    }
  bytes += static_cast<std::size_t>(part) * 4 + static_cast<std::size_t>(slots) * 4;
  bytes += (vc.seqs.size() + 1) * 7 * sizeof(int64_t);  // row tables (2), key tables (3 + 2)
  return bytes;
}

template <class T>
MmaBackward<T>::MmaBackward(const nsa::ref::ValidConfig& vc, const bwd::Shape& sh,
                            const std::string& ctx)
    : sh_(sh), ctx_(ctx), nq_(vc.total_q * vc.cfg.h_q), total_q_(vc.total_q) {
  const auto& c = vc.cfg;
  const auto sz = [](int64_t x) { return static_cast<std::size_t>(x); };
  const Items rows = row_items(vc, kMmaBwdTile);
  row_items_ = rows.back();
  cu_rows_ = upload(rows, "backward row items [" + ctx + "]");
  wgmma_ = wgmma_enabled() && (sh.enable[0] || sh.enable[2]);
  if (wgmma_) {
    const Items wg_rows = row_items(vc, kWgmmaBwdVectors);
    wg_row_items_ = wg_rows.back();
    cu_wg_rows_ = upload(wg_rows, "backward row items (wgmma) [" + ctx + "]");
  }
  int64_t part = 0, slots = 0;  // the largest branch's partial sums and counters
  for (int b = 0; b < 3; ++b) {
    if (!sh.enable[b]) continue;
    const Items keys = key_items(vc, b);
    key_items_[b] = keys.back();
    cu_keys_[b] = upload(keys, "backward key tiles [" + ctx + "]");
    if (b != 1 && wgmma_) {  // CTAs of two tiles on the wgmma key side
      Items pairs{0};
      for (std::size_t s = 0; s + 1 < keys.size(); ++s)
        pairs.push_back(pairs.back() + ceil_div(keys[s + 1] - keys[s], 2));
      pair_items_[b] = pairs.back();
      cu_pairs_[b] = upload(pairs, "backward key tile pairs [" + ctx + "]");
    }
    splits_[b] = mma_key_splits(vc, b);
    if (splits_[b] > 1) part = std::max(part, part_floats(vc, b));
    slots = std::max(slots, key_items_[b] * c.h_kv);
    dob_[b].allocate(sz(nq_ * c.d_v) * sizeof(T), "dO_b [" + ctx + "]");
    dd_[b].allocate(sz(nq_) * sizeof(float), "D_b [" + ctx + "]");
    lse2_[b].allocate(sz(nq_) * sizeof(float), "lse_b log2e [" + ctx + "]");
  }
  dq32_.allocate(sz(nq_ * c.d_k) * sizeof(float), "dq (fp32) [" + ctx + "]");
  if (part > 0) {
    part_.allocate(sz(part) * sizeof(float), "key-side partial sums [" + ctx + "]");
    arrived_.allocate(sz(slots) * sizeof(int), "key-side counters [" + ctx + "]");
  }
}

template <class T>
MmaBwdArgs<T> MmaBackward<T>::args(int b, const MmaBackwardIo<T>& io) const {
  MmaBwdArgs<T> a{};
  a.c = sh_;
  a.q = io.q;
  a.k = io.k[b];
  a.v = io.v[b];
  a.dob = dob_[b].template get<const T>();
  a.lse2 = lse2_[b].template get<const float>();
  a.dd = dd_[b].template get<const float>();
  a.idx = io.idx;
  a.dq = dq32_.get<float>();
  a.dk = io.dk[b];
  a.dv = io.dv[b];
  a.splits = 1;
  a.scale = static_cast<float>(sh_.scale);
  a.scale_log2 = static_cast<float>(sh_.scale * 1.4426950408889634);
  return a;
}

template <class T>
void MmaBackward<T>::prep(const MmaBackwardIo<T>& io, cudaStream_t stream) {
  T* dob[3];
  float *dd[3], *lse2[3];
  for (int b = 0; b < 3; ++b) {
    dob[b] = dob_[b].template get<T>();
    dd[b] = dd_[b].template get<float>();
    lse2[b] = lse2_[b].template get<float>();
  }
  launch_bwd_prep<T>(sh_, io.d_o, io.gate, io.o, io.lse, dob, dd, lse2, io.dg, stream, ctx_);
  if (dq32_.bytes())
    check(cudaMemsetAsync(dq32_.get(), 0, dq32_.bytes(), stream), "cudaMemsetAsync", "dq (fp32)");
}

template <class T>
void MmaBackward<T>::dq(int b, const MmaBackwardIo<T>& io, cudaStream_t stream) {
  if (!sh_.enable[b]) return;
  MmaBwdArgs<T> a = args(b, io);
  if (b != 1 && wgmma_) {
    a.cu_items = cu_wg_rows_.get<const int64_t>();
    if (launch_bwd_dq_wgmma<T>(b, a, wg_row_items_, stream, ctx_)) return;
  }
  a.cu_items = cu_rows_.get<const int64_t>();
  const int64_t items = b == 1 ? total_q_ * ((sh_.group + 15) / 16) : row_items_;
  launch_bwd_dq_mma<T>(b, a, items, stream, ctx_);
}

template <class T>
void MmaBackward<T>::finish_dq(const MmaBackwardIo<T>& io, cudaStream_t stream) {
  launch_bwd_dq_finish<T>(nq_ * sh_.d_k, dq32_.get<const float>(), io.dq, stream, ctx_);
}

template <class T>
void MmaBackward<T>::keys(int b, const MmaBackwardIo<T>& io, const bwd::SlcIndex& si,
                          cudaStream_t stream) {
  MmaBwdArgs<T> a = args(b, io);
  a.si = si;
  a.cu_items = cu_keys_[b].get<const int64_t>();
  a.splits = splits_[b];
  if (a.splits > 1) {
    a.part = part_.get<float>();
    a.arrived = arrived_.get<int>();
    const std::size_t n = static_cast<std::size_t>(key_items_[b] * sh_.h_kv) * sizeof(int);
    if (n) check(cudaMemsetAsync(arrived_.get(), 0, n, stream), "cudaMemsetAsync", "counters");
  }
  if (b != 1 && wgmma_) {
    const int64_t* cu_tiles = cu_keys_[b].get<const int64_t>();
    a.cu_items = cu_pairs_[b].get<const int64_t>();
    if (launch_bwd_dkv_wgmma<T>(b, a, pair_items_[b], cu_tiles, stream, ctx_)) return;
    a.cu_items = cu_tiles;
  }
  launch_bwd_dkv_mma<T>(b, a, key_items_[b], stream, ctx_);
}

template class MmaBackward<__half>;
template class MmaBackward<__nv_bfloat16>;

}  // namespace nsa::cuda::detail
