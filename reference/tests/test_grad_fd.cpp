// The backward against central finite differences of L = <R, o>, an oracle that shares nothing
// with the hand-written backward: every element of every input is perturbed by h = 2^-40 and the
// forward is run in cpp_bin_float_50 with o never rounded (grad_support.cpp). On these tiny
// configs (T <= 24, one per knob value, phi and branch subset) the analytic gradient, computed in
// cpp_bin_float_50 and rounded once to double, must agree within the bound of docs/numerics.md
// ("Gradients against finite differences"):
//   |FD - grad| <= 2^-50 * max(1, max |grad| of the tensor)
#include <catch2/catch.hpp>
#include <cmath>

#include "grad_support.hpp"
#include "nsa/ref/backward.hpp"
#include "nsa/ref/generate.hpp"
#include "test_support.hpp"

using namespace nsa;
using namespace nsa::ref;

namespace {

constexpr double kH = 0x1.0p-40;
constexpr double kRel = 0x1.0p-50;

struct FdCase {
  std::string name;
  Config cfg;
  bool adversarial_indices = false;
};

Config base() {
  Config c;
  c.profile = "custom";
  c.t_k = 20;
  c.h_q = 2;
  c.h_kv = 1;
  c.d_k = 3;
  c.d_v = 2;
  c.cmp_block = 4;
  c.cmp_stride = 2;
  c.slc_block = 4;
  c.top_n = 4;
  c.window = 5;
  c.dtype = Dtype::f32;
  return c;
}

std::vector<FdCase> fd_cases() {
  std::vector<FdCase> v;
  auto add = [&](const std::string& name, auto edit, bool adversarial = false) {
    Config c = base();
    edit(c);
    v.push_back({name, c, adversarial});
  };
  add("canonical", [](Config&) {});
  add("cmp_visibility strict", [](Config& c) { c.cmp_visibility = CmpVisibility::strict; });
  add("score_mapping paper_eq9", [](Config& c) { c.score_mapping = ScoreMapping::paper_eq9; });
  add("score_mapping identity", [](Config& c) {
    c.score_mapping = ScoreMapping::identity;
    c.cmp_block = c.cmp_stride = c.slc_block = 2;
    c.top_n = 5;
  });
  add("group_reduce mean, G = 2, two KV heads", [](Config& c) {
    c.group_reduce = GroupReduce::mean;
    c.h_q = 4;
    c.h_kv = 2;
    c.t_k = 14;
  });
  add("forced_mode score_one", [](Config& c) { c.forced_mode = ForcedMode::score_one; });
  add("tie_break higher_index_first",
      [](Config& c) { c.tie_break = TieBreak::higher_index_first; });
  add("slc_causal none", [](Config& c) { c.slc_causal = SlcCausal::none; });
  add("window_keys w_plus_one", [](Config& c) { c.window_keys = WindowKeys::w_plus_one; });
  add("given indices, strict", [](Config& c) { c.given_indices = true; });
  add(
      "given indices, skip_invalid, adversarial lists",
      [](Config& c) {
        c.given_indices = true;
        c.index_policy = IndexPolicy::skip_invalid;
      },
      true);
  add(
      "given indices, multiset, adversarial lists (duplicates)",
      [](Config& c) {
        c.given_indices = true;
        c.index_policy = IndexPolicy::multiset;
        c.top_n = 6;
      },
      true);
  add("phi linear", [](Config& c) { c.phi = Phi::linear; });
  add("phi mlp relu", [](Config& c) {
    c.phi = Phi::mlp;
    c.phi_hidden = 3;
  });
  add("phi mlp silu", [](Config& c) {
    c.phi = Phi::mlp;
    c.phi_hidden = 3;
    c.phi_act = Activation::silu;
  });
  add("shared_kv", [](Config& c) { c.shared_kv = true; });
  add("varlen, an empty sequence, query suffix", [](Config& c) {
    c.layout = Layout::varlen;
    c.t_k = 0;
    c.cu_seqlens_k = {0, 9, 9, 24};
    c.cu_seqlens_q = {0, 9, 9, 14};
  });
  add("padded batch 2, t_q < t_k, scale 0.75", [](Config& c) {
    c.batch = 2;
    c.t_k = 12;
    c.t_q = 7;
    c.scale = 0.75;
  });
  add("cmp disabled (scores only), linear phi", [](Config& c) {
    c.enable_cmp = false;
    c.phi = Phi::linear;
  });
  add("window only", [](Config& c) {
    c.enable_cmp = false;
    c.enable_slc = false;
  });
  add("cmp_given: a compressed cache", [](Config& c) { c.cmp_given = true; });
  add("cmp_given, phi mlp (not run), shared_kv, G = 2", [](Config& c) {
    c.cmp_given = true;
    c.phi = Phi::mlp;
    c.phi_hidden = 3;
    c.shared_kv = true;
    c.h_q = 4;
    c.h_kv = 2;
    c.t_k = 14;
  });
  add("cmp_given, varlen decode rows", [](Config& c) {
    c.cmp_given = true;
    c.layout = Layout::varlen;
    c.t_k = 0;
    c.cu_seqlens_k = {0, 9, 9, 24};
    c.cu_seqlens_q = {0, 1, 1, 3};
  });
  add("cmp_given, cmp disabled (scores only)", [](Config& c) {
    c.cmp_given = true;
    c.enable_cmp = false;
  });
  add("selection only, given", [](Config& c) {
    c.enable_cmp = false;
    c.enable_win = false;
    c.given_indices = true;
  });
  return v;
}

}  // namespace

TEST_CASE("grad: finite differences of <R, o> agree with the backward on every input element") {
  int64_t elements = 0;
  double worst = 0;
  for (const auto& fc : fd_cases()) {
    INFO("config: " << fc.name);
    const auto vc = validate(fc.cfg);
    Inputs in = generate_inputs(vc, 11);
    if (fc.adversarial_indices) in.indices = generate_indices(vc, 12, true);
    const auto r = generate_grad_output(vc, 13);
    const auto g = backward(vc, in, r, Precision::bin50);
    for (const auto& pair : test::grad_pairs(vc, in, g)) {
      INFO("gradient " << pair.name);
      const auto fd = test::finite_differences(vc, in, r, pair, kH);
      CHECK(fd.selection_changed == 0);
      REQUIRE(pair.grad->size() == fd.derivative.size());
      const double bound = kRel * std::max(1.0, test::max_abs(*pair.grad));
      for (std::size_t e = 0; e < fd.derivative.size(); ++e) {
        INFO("element " << e << ": backward " << (*pair.grad)[e] << ", FD " << fd.derivative[e]);
        CHECK(std::abs(fd.derivative[e] - (*pair.grad)[e]) <= bound);
        worst = std::max(worst, std::abs(fd.derivative[e] - (*pair.grad)[e]) / bound);
      }
      elements += static_cast<int64_t>(fd.derivative.size());
    }
  }
  WARN("finite differences: " << elements << " elements, worst |FD - grad| = " << worst
                              << " of the bound");
}
