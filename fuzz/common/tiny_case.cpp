#include "tiny_case.hpp"

#include <array>
#include <cmath>
#include <limits>

namespace nsa::fuzz {

using nsa::ref::Config;
using nsa::ref::Dtype;

Config decode_tiny_config(ByteReader& r, const TinyOptions& opt) {
  Config c;
  c.profile = "custom";
  c.layout = r.flag() ? nsa::ref::Layout::varlen : nsa::ref::Layout::padded;
  if (c.layout == nsa::ref::Layout::padded) {
    c.batch = r.range(1, 2);
    c.t_k = r.range(0, 40);
    c.t_q = r.flag() ? -1 : r.range(0, c.t_k);
  } else {
    c.t_k = 0;
    c.t_q = -1;
    const int64_t b = r.range(1, 3);
    const bool own_q = r.flag();
    c.cu_seqlens_k = {0};
    if (own_q) c.cu_seqlens_q = {0};
    for (int64_t i = 0; i < b; ++i) {
      const int64_t lk = r.range(0, 32);
      c.cu_seqlens_k.push_back(c.cu_seqlens_k.back() + lk);
      if (own_q) c.cu_seqlens_q.push_back(c.cu_seqlens_q.back() + r.range(0, lk));
    }
  }
  c.h_kv = r.range(1, 2);
  c.h_q = c.h_kv * r.range(1, 4);
  c.d_k = r.range(1, 8);
  c.d_v = r.range(1, 8);
  if (r.flag()) {
    static constexpr std::array<double, 5> kScales{0.01, 0.25, 1.0, 4.0, 1e-300};
    c.scale = kScales[static_cast<std::size_t>(r.range(0, kScales.size() - 1))];
  }
  c.cmp_stride = r.range(1, 4);
  c.cmp_block = c.cmp_stride * r.range(1, 3);
  c.slc_block = c.cmp_stride * r.range(1, 4);
  c.score_mapping = r.pick<nsa::ref::ScoreMapping>();
  if (c.score_mapping == nsa::ref::ScoreMapping::identity) c.cmp_block = c.slc_block = c.cmp_stride;
  c.n_init = r.range(0, 2);
  c.n_local = r.range(0, 2);
  c.top_n = std::max<int64_t>(1, c.n_init + c.n_local + r.range(0, 3));
  c.window = r.range(1, 20);
  c.enable_cmp = r.flag();
  c.enable_slc = opt.force_slc || r.flag();
  c.enable_win = r.flag();
  if (!c.enable_cmp && !c.enable_slc && !c.enable_win) c.enable_win = true;
  c.phi = r.pick<nsa::ref::Phi>();
  if (c.phi == nsa::ref::Phi::mlp) {
    c.phi_hidden = r.range(1, 4);
    c.phi_act = r.pick<nsa::ref::Activation>();
  }
  c.dtype = r.pick<Dtype>();
  c.shared_kv = r.flag();
  c.given_indices = opt.given_indices;
  c.cmp_visibility = r.pick<nsa::ref::CmpVisibility>();
  c.group_reduce = r.pick<nsa::ref::GroupReduce>();
  c.forced_mode = r.pick<nsa::ref::ForcedMode>();
  c.tie_break = r.pick<nsa::ref::TieBreak>();
  c.slc_causal = r.pick<nsa::ref::SlcCausal>();
  c.index_policy = r.pick<nsa::ref::IndexPolicy>();
  c.window_keys = r.pick<nsa::ref::WindowKeys>();
  return c;
}

namespace {

double palette(uint8_t code, Dtype dt) {
  double big = 0, tiny = 0;
  switch (dt) {
    case Dtype::f16:
      big = 65504.0;
      tiny = std::ldexp(1.0, -24);
      break;
    case Dtype::bf16:
      big = std::ldexp(255.0 / 128.0, 127);
      tiny = std::ldexp(1.0, -133);
      break;
    case Dtype::f32:
      big = std::numeric_limits<float>::max();
      tiny = std::numeric_limits<float>::denorm_min();
      break;
    case Dtype::f64:
      // Every intermediate (mlp phi: three chained products) must stay finite in double, as it
      // does for the narrower dtypes' largest values; fp64 edits stop at fp32's range.
      big = 1e38;
      tiny = std::numeric_limits<double>::denorm_min();
      break;
  }
  const double sign = (code & 0x80) ? -1.0 : 1.0;
  switch (code % 8) {
    case 0:
      return 0.0 * sign;
    case 1:
      return sign;
    case 2:
      return sign * big;
    case 3:
      return sign * tiny;
    case 4:
      return sign * 0.5;
    case 5:
      return sign * 1e4;
    case 6:
      return sign * 3.0;
    default:
      return sign * static_cast<double>(code % 16) / 16.0;
  }
}

}  // namespace

nsa::ref::Inputs decode_inputs(ByteReader& r, const nsa::ref::ValidConfig& vc, int max_edits) {
  const auto regime = static_cast<nsa::ref::Regime>(r.range(0, 3));
  const uint64_t seed = r.u32();
  auto in = nsa::ref::generate_inputs(vc, seed, regime);
  const Dtype dt = vc.cfg.dtype;
  for (int e = 0; e < max_edits && !r.empty(); ++e) {
    const int64_t which = r.range(0, 9);  // q, k x3, v x3, gate x3
    const uint32_t pos = r.u32() & 0xffff;
    const double value = nsa::ref::round_to(palette(r.u8(), dt), dt);
    auto set = [&](std::vector<double>& x) {
      if (!x.empty()) x[pos % x.size()] = value;
    };
    if (which == 0) {
      set(in.q);
    } else if (which <= 6) {
      const int b = static_cast<int>((which - 1) % 3);
      auto& bank = which <= 3 ? in.k : in.v;
      if (vc.cfg.shared_kv) {
        for (auto& x : bank) set(x);
      } else {
        set(bank[static_cast<std::size_t>(b)]);
      }
    } else {
      set(in.gate[static_cast<std::size_t>(which - 7)]);
    }
  }
  return in;
}

}  // namespace nsa::fuzz
