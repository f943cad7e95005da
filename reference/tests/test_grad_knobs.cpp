// Every knob against the backward: two configs that differ in that knob alone, on the same
// inputs, give different gradients, or, where the semantics say the knob cannot reach the
// gradients (group_reduce, and the identity mapping where all mappings coincide), bitwise equal
// ones.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>

#include "nsa/ref/backward.hpp"
#include "test_support.hpp"

using namespace nsa;
using namespace nsa::ref;

namespace {

Config base() {
  Config c;
  c.profile = "custom";
  c.t_k = 90;
  c.h_q = 4;
  c.h_kv = 2;
  c.d_k = 8;
  c.d_v = 8;
  c.cmp_block = 8;
  c.cmp_stride = 4;
  c.slc_block = 8;
  c.top_n = 5;
  c.window = 12;
  c.dtype = Dtype::f64;
  return c;
}

using Edit = std::function<void(Inputs&, const ValidConfig&)>;

// The largest |a - b| over every gradient tensor of `vc`, relative to that tensor's scale.
double grad_difference(const Config& a, const Config& b, uint64_t seed, const Edit& edit = {}) {
  const auto va = validate(a), vb = validate(b);
  Inputs in = generate_inputs(vb, seed);
  if (edit) edit(in, vb);
  // A config without given indices takes no index list.
  Inputs ia = in;
  if (!va.cfg.given_indices) ia.indices.clear();
  const auto d_o = generate_grad_output(va, seed);
  const auto ga = backward(va, ia, d_o, Precision::f64);
  const auto gb = backward(vb, in, d_o, Precision::f64);
  double worst = 0;
  const auto names_b = grad_tensor_names(vb);
  for (const auto& name : grad_tensor_names(va)) {
    if (std::find(names_b.begin(), names_b.end(), name) == names_b.end()) continue;
    const auto& x = grad_tensor(va, ga, name);
    const auto& y = grad_tensor(vb, gb, name);
    REQUIRE(x.size() == y.size());
    const double scale = std::max(1e-300, test::max_abs(x));
    for (std::size_t i = 0; i < x.size(); ++i)
      worst = std::max(worst, std::abs(x[i] - y[i]) / scale);
  }
  return worst;
}

template <class F>
Config with(F f) {
  Config c = base();
  f(c);
  return c;
}

void zero_q(Inputs& in, const ValidConfig&) { std::fill(in.q.begin(), in.q.end(), 0.0); }

}  // namespace

TEST_CASE("grad knobs: each value of each knob gives its own gradients") {
  constexpr double kDifferent = 1e-6;
  struct Row {
    const char* knob;
    Config a, b;
    Edit edit = {};
  };
  const std::vector<Row> rows = {
      {"cmp_visibility inclusive/strict", base(),
       with([](Config& c) { c.cmp_visibility = CmpVisibility::strict; })},
      {"score_mapping overlap/paper_eq9", base(),
       with([](Config& c) { c.score_mapping = ScoreMapping::paper_eq9; })},
      // One head per group, l = l' = 4 d, n = n_init + n_local and peaked queries: a free block's
      // mapped score (up to l/d = 4) beats a forced block's 1 under score_one.
      {"forced_mode always/score_one (peaked q)", with([](Config& c) {
         c.h_q = c.h_kv = 2;
         c.cmp_block = c.slc_block = 16;
         c.top_n = 3;
       }),
       with([](Config& c) {
         c.h_q = c.h_kv = 2;
         c.cmp_block = c.slc_block = 16;
         c.top_n = 3;
         c.forced_mode = ForcedMode::score_one;
       }),
       [](Inputs& in, const ValidConfig&) {
         for (auto& x : in.q) x *= 16;
       }},
      {"tie_break lower/higher (q = 0: tied scores)", base(),
       with([](Config& c) { c.tie_break = TieBreak::higher_index_first; }), zero_q},
      {"slc_causal token/none", base(), with([](Config& c) { c.slc_causal = SlcCausal::none; })},
      {"index_policy skip_invalid/multiset (adversarial lists)", with([](Config& c) {
         c.given_indices = true;
         c.index_policy = IndexPolicy::skip_invalid;
       }),
       with([](Config& c) {
         c.given_indices = true;
         c.index_policy = IndexPolicy::multiset;
       }),
       [](Inputs& in, const ValidConfig& vc) { in.indices = generate_indices(vc, 9, true); }},
      {"window_keys w/w_plus_one", base(),
       with([](Config& c) { c.window_keys = WindowKeys::w_plus_one; })},
      {"phi_act relu/silu", with([](Config& c) {
         c.phi = Phi::mlp;
         c.phi_hidden = 6;
       }),
       with([](Config& c) {
         c.phi = Phi::mlp;
         c.phi_hidden = 6;
         c.phi_act = Activation::silu;
       })},
      {"given_indices computed/other lists", base(),
       with([](Config& c) { c.given_indices = true; }),
       [](Inputs& in, const ValidConfig& vc) { in.indices = generate_indices(vc, 4, false); }},
      {"n_init 1/0", base(), with([](Config& c) { c.n_init = 0; })},
      {"n_local 2/1", base(), with([](Config& c) { c.n_local = 1; })},
      {"top_n 5/4", base(), with([](Config& c) { c.top_n = 4; })},
      {"window 12/11", base(), with([](Config& c) { c.window = 11; })},
      {"scale default/0.5", base(), with([](Config& c) { c.scale = 0.5; })},
      {"enable_win on/off", base(), with([](Config& c) { c.enable_win = false; })},
  };
  for (const auto& r : rows) {
    INFO(r.knob);
    // A knob reaches the gradients on some seed (the selection-only knobs act where scores tie or
    // rank differently).
    double diff = 0;
    for (uint64_t seed = 1; seed <= 4 && diff <= kDifferent; ++seed)
      diff = grad_difference(r.a, r.b, seed, r.edit);
    CHECK(diff > kDifferent);
  }
}

TEST_CASE("grad knobs: phi mean, linear and mlp each give their own gradients") {
  // The phi parameters are inputs of their own shapes: each config gets its own seeded inputs;
  // the raw K/V and q are the same (their streams do not depend on phi).
  const auto d_of = [](Phi phi) {
    Config c = base();
    c.phi = phi;
    c.phi_hidden = phi == Phi::mlp ? 6 : 0;
    const auto vc = validate(c);
    const auto in = generate_inputs(vc, 2);
    return backward(vc, in, generate_grad_output(vc, 2), Precision::f64);
  };
  const auto mean = d_of(Phi::mean), linear = d_of(Phi::linear), mlp = d_of(Phi::mlp);
  CHECK(test::max_diff(mean.dk_of(Branch::cmp), linear.dk_of(Branch::cmp)) > 1e-6);
  CHECK(test::max_diff(mean.dk_of(Branch::cmp), mlp.dk_of(Branch::cmp)) > 1e-6);
  CHECK(test::max_diff(linear.dk_of(Branch::cmp), mlp.dk_of(Branch::cmp)) > 1e-6);
}

TEST_CASE("grad knobs: group_reduce and a coinciding identity mapping cannot reach the gradients") {
  // group_reduce only scales the stored scores by G: the same selection, so bitwise equal
  // gradients (indices are constants of the backward).
  CHECK(grad_difference(base(), with([](Config& c) { c.group_reduce = GroupReduce::mean; }), 1) ==
        0.0);
  // With l = d = l' the three mappings are the same formula (docs/semantics.md 3.1).
  const auto lll = [](ScoreMapping m) {
    return with([m](Config& c) {
      c.cmp_block = c.cmp_stride = c.slc_block = 4;
      c.score_mapping = m;
    });
  };
  CHECK(grad_difference(lll(ScoreMapping::identity), lll(ScoreMapping::overlap), 1) == 0.0);
}

TEST_CASE("grad knobs: shared_kv names one K/V gradient, the sum over the branches") {
  Config c = base();
  c.shared_kv = true;
  const auto vc = validate(c);
  const auto in = generate_inputs(vc, 3);
  const auto g = backward(vc, in, generate_grad_output(vc, 3), Precision::f64);
  const auto names = grad_tensor_names(vc);
  CHECK(std::find(names.begin(), names.end(), "dk_shared") != names.end());
  CHECK(std::find(names.begin(), names.end(), "dk_cmp") == names.end());
  for (std::size_t i = 0; i < g.dk_shared.size(); ++i) {
    const double sum = g.dk[0][i] + g.dk[1][i] + g.dk[2][i];
    CHECK(g.dk_shared[i] == Approx(sum).margin(1e-14));
  }
  for (std::size_t i = 0; i < g.dv_shared.size(); ++i) {
    const double sum = g.dv[0][i] + g.dv[1][i] + g.dv[2][i];
    CHECK(g.dv_shared[i] == Approx(sum).margin(1e-14));
  }
}
