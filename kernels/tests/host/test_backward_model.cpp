// The CUDA backward's algorithm on the CPU (the kernels' own work items, backward_model.cpp),
// judged against the reference gradients by the gradient comparator: key sets, the selection's
// inverted index under every policy, phi = mean's gather, varlen, suffixes, shared K/V.
#include <catch2/catch.hpp>

#include "backward_model.hpp"
#include "nsa/ref/compare.hpp"
#include "nsa/ref/forward.hpp"
#include "nsa/ref/generate.hpp"

using namespace nsa::ref;

namespace {

Config small(int64_t t, Dtype dt, int64_t h_kv = 2, int64_t g = 2) {
  Config c;
  c.t_k = t;
  c.h_kv = h_kv;
  c.h_q = h_kv * g;
  c.d_k = c.d_v = 32;
  c.cmp_block = 32;
  c.cmp_stride = 16;
  c.slc_block = 32;
  c.top_n = 3;
  c.window = 40;
  c.dtype = dt;
  return c;
}

// Runs the model on generated inputs (adversarial index lists where asked) and judges it.
Verdict judge_model(const Config& cfg, uint64_t seed, bool adversarial = false) {
  const ValidConfig vc = validate(cfg);
  Inputs in = generate_inputs(vc, seed);
  if (adversarial) in.indices = generate_indices(vc, seed + 1, true);
  const auto d_o = generate_grad_output(vc, seed);
  std::vector<int32_t> idx = in.indices;
  if (vc.cfg.enable_slc && !vc.cfg.given_indices) {
    RowSelection all;
    all.keep_scores = false;
    idx = forward(vc, in, Precision::f64, all).indices;
  }
  const Gradients g = nsa::cuda::test::model_backward(vc, in, d_o, idx);
  const Verdict v = check_candidate_gradients(vc, in, d_o, g, Precision::f64, {}, idx);
  INFO("config: " << describe(cfg) << "\nseed " << seed << "\n" << v.table());
  CHECK(v.pass());
  for (const auto& t : v.tensors) {  // a tensor the model did not give is "not checked"
    INFO(t.name);
    CHECK(t.checked);
  }
  return v;
}

}  // namespace

TEST_CASE("backward model: lengths and dtypes", "[backward]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::f16, Dtype::bf16);
  const auto t = GENERATE(int64_t{1}, 17, 33, 64, 65, 150);
  judge_model(small(t, dt), 10 + static_cast<uint64_t>(t));
}

TEST_CASE("backward model: group sizes and head dims", "[backward]") {
  const auto g = GENERATE(int64_t{1}, 3, 8);
  Config c = small(100, Dtype::bf16, g == 8 ? 1 : 2, g);
  c.d_k = 48;
  c.d_v = 16;
  judge_model(c, 20 + static_cast<uint64_t>(g));
}

TEST_CASE("backward model: varlen with an empty sequence and query suffixes", "[backward]") {
  Config c = small(0, Dtype::f32);
  c.layout = Layout::varlen;
  c.cu_seqlens_k = {0, 70, 70, 75, 200};
  c.cu_seqlens_q = {0, 30, 30, 35, 160};
  judge_model(c, 31);
  Config p = small(120, Dtype::f16);
  p.batch = 2;
  p.t_q = 50;
  judge_model(p, 32);
}

TEST_CASE("backward model: knobs", "[backward]") {
  Config c = small(130, Dtype::f32);
  c.profile = "custom";
  SECTION("strict compressed visibility") { c.cmp_visibility = CmpVisibility::strict; }
  SECTION("whole selected blocks") { c.slc_causal = SlcCausal::none; }
  SECTION("w + 1 window keys") { c.window_keys = WindowKeys::w_plus_one; }
  SECTION("shared K/V") { c.shared_kv = true; }
  SECTION("compression off (selection still from its scores)") { c.enable_cmp = false; }
  SECTION("selection off") { c.enable_slc = false; }
  SECTION("window only") { c.enable_cmp = c.enable_slc = false; }
  judge_model(c, 41);
}

TEST_CASE("backward model: phi linear and mlp", "[backward]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::bf16);
  Config c = small(150, dt);
  c.d_k = 16;
  c.d_v = 8;
  c.cmp_block = 16;
  c.cmp_stride = 8;
  c.slc_block = 16;
  SECTION("linear") { c.phi = Phi::linear; }
  SECTION("linear, no compressed block (T < l)") {
    c.phi = Phi::linear;
    c.t_k = 11;
  }
  SECTION("mlp relu") {
    c.phi = Phi::mlp;
    c.phi_hidden = 12;
  }
  SECTION("mlp silu, shared K/V") {
    c.phi = Phi::mlp;
    c.phi_hidden = 7;
    c.phi_act = Activation::silu;
    c.shared_kv = true;
    c.profile = "custom";
  }
  judge_model(c, 61);
}

TEST_CASE("backward model: given index lists under each policy", "[backward]") {
  Config c = small(200, Dtype::f32);
  c.given_indices = true;
  c.top_n = 6;
  SECTION("strict, valid lists") { judge_model(c, 51); }
  SECTION("skip_invalid, adversarial lists") {
    c.index_policy = IndexPolicy::skip_invalid;
    c.profile = "custom";
    judge_model(c, 52, true);
  }
  SECTION("multiset, adversarial lists") {
    c.index_policy = IndexPolicy::multiset;
    c.profile = "custom";
    c.slc_causal = SlcCausal::none;
    judge_model(c, 53, true);
  }
}

namespace {

// A small config drawn from seed: dtype, layout (padded with a suffix or varlen with empty
// sequences), heads, blocks, window, every knob the backward reads, branch subsets, shared K/V,
// computed or given lists (adversarial under the lenient policies), phi and its activation.
Config drawn_config(uint64_t seed, bool& adversarial) {
  uint64_t i = 0;
  auto in = [&](int64_t lo, int64_t hi) {  // uniform in [lo, hi]
    return lo + static_cast<int64_t>(random_unit(seed, 7, i++) * static_cast<double>(hi - lo + 1));
  };
  Config c;
  c.profile = "custom";
  const Dtype dts[] = {Dtype::f32, Dtype::f16, Dtype::bf16};
  c.dtype = dts[in(0, 2)];
  c.h_kv = in(1, 2);
  c.h_q = c.h_kv * in(1, 4);
  c.d_k = in(1, 24);
  c.d_v = in(1, 24);
  c.cmp_stride = in(1, 3) * 4;
  c.cmp_block = c.cmp_stride * in(1, 3);
  c.slc_block = c.cmp_stride * in(1, 4);
  c.n_init = in(0, 1);
  c.n_local = in(0, 2);
  c.top_n = std::max<int64_t>(1, c.n_init + c.n_local + in(0, 3));
  c.window = in(1, 50);
  c.cmp_visibility = in(0, 1) ? CmpVisibility::strict : CmpVisibility::inclusive;
  c.slc_causal = in(0, 1) ? SlcCausal::none : SlcCausal::token;
  c.window_keys = in(0, 1) ? WindowKeys::w_plus_one : WindowKeys::w;
  c.shared_kv = in(0, 1) == 1;
  c.enable_cmp = in(0, 3) > 0;
  c.enable_slc = in(0, 3) > 0;
  c.enable_win = in(0, 3) > 0 || (!c.enable_cmp && !c.enable_slc);
  c.given_indices = in(0, 2) == 0;
  const IndexPolicy policies[] = {IndexPolicy::strict, IndexPolicy::skip_invalid,
                                  IndexPolicy::multiset};
  c.index_policy = policies[in(0, 2)];
  adversarial = c.given_indices && c.index_policy != IndexPolicy::strict;
  const Phi phis[] = {Phi::mean, Phi::linear, Phi::mlp};
  c.phi = phis[in(0, 2)];
  if (c.phi == Phi::mlp) c.phi_hidden = in(1, 6);
  c.phi_act = in(0, 1) ? Activation::silu : Activation::relu;
  if (in(0, 1)) {
    c.t_k = in(1, 160);
    c.batch = in(1, 2);
    c.t_q = in(0, 1) ? -1 : in(0, c.t_k);
  } else {
    c.layout = Layout::varlen;
    c.cu_seqlens_k = {0};
    c.cu_seqlens_q = {0};
    for (int64_t s = in(1, 3); s > 0; --s) {
      const int64_t tk = in(0, 1) ? 0 : in(1, 120);
      c.cu_seqlens_k.push_back(c.cu_seqlens_k.back() + tk);
      c.cu_seqlens_q.push_back(c.cu_seqlens_q.back() + in(0, tk));
    }
  }
  return c;
}

}  // namespace

TEST_CASE("backward model: drawn configs", "[backward]") {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    bool adversarial = false;
    const Config c = drawn_config(seed, adversarial);
    INFO("drawn config seed " << seed);
    judge_model(c, 1000 + seed, adversarial);
  }
}
