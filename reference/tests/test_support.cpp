#include "test_support.hpp"

namespace nsa::test {

ref::Config random_config(uint64_t seed) {
  using namespace nsa::ref;
  Chooser ch(seed);
  Config c;
  c.profile = "custom";
  c.cmp_visibility = ch.any<CmpVisibility>();
  c.score_mapping = ch.any<ScoreMapping>();
  c.group_reduce = ch.any<GroupReduce>();
  c.forced_mode = ch.any<ForcedMode>();
  c.tie_break = ch.any<TieBreak>();
  c.slc_causal = ch.any<SlcCausal>();
  c.index_policy = ch.any<IndexPolicy>();
  c.window_keys = ch.any<WindowKeys>();
  c.phi = ch.any<Phi>();
  c.phi_act = ch.any<Activation>();
  if (c.phi == Phi::mlp) c.phi_hidden = ch.in(1, 4);
  c.dtype = ch.any<Dtype>();
  c.shared_kv = ch.coin();
  c.given_indices = ch.coin(1, 3);

  c.cmp_stride = ch.in(1, 3);
  c.cmp_block = c.cmp_stride * ch.in(1, 3);
  c.slc_block = c.cmp_stride * ch.in(1, 4);
  if (c.score_mapping == ScoreMapping::identity) c.cmp_block = c.slc_block = c.cmp_stride;
  c.h_kv = ch.in(1, 2);
  c.h_q = c.h_kv * ch.in(1, 3);
  c.d_k = ch.in(1, 5);
  c.d_v = ch.in(1, 5);
  if (ch.coin(1, 4)) c.scale = 0.75;
  c.n_init = ch.in(0, 2);
  c.n_local = ch.in(0, 2);
  c.top_n = std::max<int64_t>(1, c.n_init + c.n_local + ch.in(0, 3));
  c.window = ch.in(1, 12);
  c.enable_cmp = !ch.coin(1, 4);
  c.enable_slc = !ch.coin(1, 4);
  c.enable_win = !ch.coin(1, 4);
  if (!c.enable_cmp && !c.enable_slc && !c.enable_win) c.enable_slc = true;

  if (ch.coin()) {
    c.layout = Layout::padded;
    c.batch = ch.in(1, 2);
    c.t_k = ch.in(0, 28);
    if (ch.coin()) c.t_q = ch.in(0, c.t_k);
  } else {
    c.layout = Layout::varlen;
    const int64_t b = ch.in(1, 3);
    c.cu_seqlens_k = {0};
    c.cu_seqlens_q = {0};
    bool suffix = ch.coin();
    for (int64_t i = 0; i < b; ++i) {
      const int64_t tk = ch.coin(1, 5) ? 0 : ch.in(1, 24);
      const int64_t tq = suffix ? ch.in(0, tk) : tk;
      c.cu_seqlens_k.push_back(c.cu_seqlens_k.back() + tk);
      c.cu_seqlens_q.push_back(c.cu_seqlens_q.back() + tq);
    }
    if (!suffix && ch.coin()) c.cu_seqlens_q.clear();  // queries default to the keys
  }
  return c;
}

ref::Config precision_config() {
  ref::Config c;
  c.t_k = 160;
  c.h_q = 2;
  c.d_k = 8;
  c.d_v = 8;
  c.cmp_block = 8;
  c.cmp_stride = 4;
  c.slc_block = 16;
  c.top_n = 4;
  c.window = 24;
  return c;
}

ref::Config long_config(uint64_t seed) {
  using namespace nsa::ref;
  Config c = random_config(seed + 10000);
  Chooser ch(seed);
  c.layout = Layout::padded;
  c.cu_seqlens_k.clear();
  c.cu_seqlens_q.clear();
  c.batch = 1;
  c.t_k = ch.in(60, 260);
  c.t_q = ch.coin() ? -1 : ch.in(1, 60);
  c.cmp_stride = ch.in(1, 2) * 2;
  c.cmp_block = c.cmp_stride * ch.in(1, 3);
  c.slc_block = c.cmp_stride * ch.in(2, 4);
  if (c.score_mapping == ScoreMapping::identity) c.cmp_block = c.slc_block = c.cmp_stride;
  c.top_n = c.n_init + c.n_local + ch.in(1, 5);
  c.window = ch.in(8, 40);
  return c;
}

ref::Config small_profile(const std::string& name) {
  ref::Config c = ref::profile_config(name);
  c.h_q = name == "fla" ? 32 : 4;  // fla's group size is a power of two >= 16
  c.h_kv = 2;
  c.d_k = 6;
  c.d_v = 5;
  c.t_k = 300;
  c.t_q = 70;  // a suffix keeps the dense matrices small
  c.window = 40;
  if (name == "fla") {
    c.cmp_block = c.cmp_stride = c.slc_block = 16;
  } else if (name == "nsa_triton") {  // kernel sizes 16..128, l' % l == 0
    c.cmp_block = 16;
    c.cmp_stride = 8;
    c.slc_block = 32;
  } else {
    c.cmp_block = 8;
    c.cmp_stride = 4;
    c.slc_block = 16;
  }
  c.top_n = 5;
  return c;
}

ref::Inputs random_inputs(const ref::ValidConfig& vc, uint64_t seed) {
  auto in = ref::generate_inputs(vc, seed);
  const auto& c = vc.cfg;
  if (c.given_indices && c.index_policy != ref::IndexPolicy::strict && (seed & 1))
    in.indices = ref::generate_indices(vc, seed + 17, true);
  return in;
}

}  // namespace nsa::test
