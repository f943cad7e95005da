// The reference's double backward against the dense oracle's (dense_backward.cpp, written from
// docs/semantics.md section 10 with explicit T_q x N multiplicity masks), on sampled configs that
// reach every knob value, on longer sequences and on each named profile. Tolerance
// (docs/numerics.md section 3): per tensor, |reference - oracle| <= grad_rel_tol(vc) * the
// largest element of the oracle's magnitude tensor (the same chain rule on absolute values).
#include <catch2/catch.hpp>
#include <map>

#include "dense_oracle.hpp"
#include "grad_support.hpp"
#include "nsa/ref/backward.hpp"
#include "test_support.hpp"

using namespace nsa;
using namespace nsa::ref;

namespace {

Gradients reference_grads(const ValidConfig& vc, const Inputs& in, const std::vector<double>& d_o) {
  GradSelection sel;
  sel.threads = 1;
  return backward(vc, in, d_o, Precision::f64, sel);
}

// The worst |reference - oracle| over the bound's scale (rel_tol * magnitude), per tensor.
double worst_ratio(const Gradients& got, const oracle::DenseGradients& want, double rel_tol) {
  double worst = 0;
  auto one = [&](const std::vector<double>& a, const std::vector<double>& b,
                 const std::vector<double>& m) {
    double scale = 0;
    for (double x : m) scale = std::max(scale, x);
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
      const double d = std::abs(a[i] - b[i]);
      if (d > 0) worst = std::max(worst, scale > 0 ? d / (rel_tol * scale) : INFINITY);
    }
  };
  one(got.dq, want.grad.dq, want.magnitude.dq);
  for (int b = 0; b < 3; ++b) {
    one(got.dk[b], want.grad.dk[b], want.magnitude.dk[b]);
    one(got.dv[b], want.grad.dv[b], want.magnitude.dv[b]);
    one(got.dg[b], want.grad.dg[b], want.magnitude.dg[b]);
  }
  for (auto [gp, wp, mp] : {std::tuple{&got.dphi_k, &want.grad.dphi_k, &want.magnitude.dphi_k},
                            std::tuple{&got.dphi_v, &want.grad.dphi_v, &want.magnitude.dphi_v}}) {
    one(gp->pos, wp->pos, mp->pos);
    one(gp->w1, wp->w1, mp->w1);
    one(gp->b1, wp->b1, mp->b1);
    one(gp->w2, wp->w2, mp->w2);
    one(gp->b2, wp->b2, mp->b2);
  }
  return worst;
}

struct Check {
  std::string diff;
  double ratio = 0;
};

Check check_against_oracle(const ValidConfig& vc, const Inputs& in, uint64_t seed) {
  const auto d_o = ref::generate_grad_output(vc, seed);
  const auto got = reference_grads(vc, in, d_o);
  // The selection is a constant of the backward: where the two forwards break an exact tie of
  // scores differently (regime ties), the oracle differentiates the reference's lists.
  std::vector<int32_t> selection;
  const std::string tie = oracle::tie_aware_selection(
      vc, in, forward(vc, in, Precision::f64, test::single_thread()), 1e-12, selection);
  if (!tie.empty()) return {tie, 0};
  const auto want = oracle::dense_backward(vc, in, d_o, selection);
  const double tol = oracle::grad_rel_tol(vc);
  return {oracle::diff(got, want, tol), worst_ratio(got, want, tol)};
}

}  // namespace

TEST_CASE("grad: reference backward == dense oracle on sampled configs of every knob value") {
  std::map<std::string, int> seen;
  auto note = [&](const std::string& what) { ++seen[what]; };
  double worst = 0;
  const int kConfigs = 1500;
  for (uint64_t seed = 1; seed <= kConfigs; ++seed) {
    const Config cfg = test::random_config(seed);
    const ValidConfig vc = validate(cfg);
    const Inputs in = test::random_inputs(vc, seed);
    INFO("seed " << seed << ": " << describe(cfg));
    const auto r = check_against_oracle(vc, in, seed);
    CHECK(r.diff == "");
    worst = std::max(worst, r.ratio);
    note("phi=" + std::string(to_string(cfg.phi)));
    if (cfg.phi == Phi::mlp) note("mlp act=" + std::string(to_string(cfg.phi_act)));
    note("slc_causal=" + std::string(to_string(cfg.slc_causal)));
    note("cmp_visibility=" + std::string(to_string(cfg.cmp_visibility)));
    note("window_keys=" + std::string(to_string(cfg.window_keys)));
    note("dtype=" + std::string(to_string(cfg.dtype)));
    note(cfg.shared_kv ? "shared kv" : "separate kv");
    note("layout=" + std::string(to_string(cfg.layout)));
    if (cfg.cmp_block > cfg.cmp_stride && cfg.enable_cmp) note("overlapping compression blocks");
    if (vc.group > 1) note("G > 1");
    for (Branch b : kAllBranches)
      if (!cfg.enabled(b)) note("disabled " + std::string(to_string(b)));
    if (vc.total_q < vc.total_k) note("query suffix");
    if (cfg.given_indices && cfg.enable_slc) {
      const bool adversarial = cfg.index_policy != IndexPolicy::strict && (seed & 1);
      note("given " + std::string(to_string(cfg.index_policy)) +
           (adversarial ? " adversarial" : " valid"));
    }
  }
  WARN("dense oracle vs reference backward: worst |diff| = " << worst << " of the tolerance");
  for (const char* want : {"phi=mean",
                           "phi=linear",
                           "phi=mlp",
                           "mlp act=relu",
                           "mlp act=silu",
                           "slc_causal=token",
                           "slc_causal=none",
                           "cmp_visibility=inclusive",
                           "cmp_visibility=strict",
                           "window_keys=w",
                           "window_keys=w_plus_one",
                           "dtype=fp32",
                           "dtype=fp16",
                           "dtype=bf16",
                           "dtype=fp64",
                           "shared kv",
                           "separate kv",
                           "layout=padded",
                           "layout=varlen",
                           "overlapping compression blocks",
                           "G > 1",
                           "disabled cmp",
                           "disabled slc",
                           "disabled win",
                           "query suffix",
                           "given strict valid",
                           "given skip_invalid valid",
                           "given skip_invalid adversarial",
                           "given multiset valid",
                           "given multiset adversarial"}) {
    INFO(want);
    CHECK(seen[want] >= 3);
  }
}

TEST_CASE("grad: reference backward == dense oracle on longer sequences and every regime") {
  // T_k up to a few hundred: several key tiles of the reference's key pass (64 tokens, 16
  // compressed blocks), n below the candidates, in every value regime.
  const Regime regimes[] = {Regime::typical, Regime::peaked, Regime::ties, Regime::extreme};
  double worst = 0;
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    const Config c = test::long_config(seed);
    const auto vc = validate(c);
    const Regime regime = regimes[seed % 4];
    auto in = generate_inputs(vc, seed, regime);
    if (c.given_indices && c.index_policy != IndexPolicy::strict)
      in.indices = generate_indices(vc, seed + 5, true);
    INFO("seed " << seed << " regime " << to_string(regime) << ": " << describe(c));
    const auto r = check_against_oracle(vc, in, seed);
    CHECK(r.diff == "");
    worst = std::max(worst, r.ratio);
  }
  WARN("longer sequences: worst |diff| = " << worst << " of the tolerance");
}

TEST_CASE("grad: reference backward == dense oracle for each named profile") {
  for (const auto& name : profile_names()) {
    const auto vc = validate(test::small_profile(name));
    for (Regime r : {Regime::typical, Regime::peaked}) {
      INFO(name << " regime " << to_string(r) << ": " << describe(vc.cfg));
      const auto in = generate_inputs(vc, 7, r);
      CHECK(check_against_oracle(vc, in, 8).diff == "");
    }
  }
}

TEST_CASE("grad: the gradient comparison flags a perturbed element of every tensor") {
  // Both sides of the rule: an element moved by 10x the bound is flagged, naming the tensor; one
  // moved by a tenth of it is not. Guards against a diff() that always says "equal" or that
  // skips a tensor.
  for (uint64_t seed : {3u, 4u, 6u, 17u}) {
    Config cfg = test::random_config(seed);
    cfg.enable_cmp = cfg.enable_slc = cfg.enable_win = true;
    cfg.phi = seed % 2 ? Phi::mlp : Phi::linear;
    cfg.phi_hidden = cfg.phi == Phi::mlp ? 3 : 0;
    cfg.shared_kv = true;
    cfg.layout = Layout::padded;
    cfg.cu_seqlens_k.clear();
    cfg.cu_seqlens_q.clear();
    cfg.t_k = 20;
    cfg.t_q = -1;
    cfg.given_indices = false;
    const auto vc = validate(cfg);
    const auto in = generate_inputs(vc, seed);
    const auto d_o = ref::generate_grad_output(vc, seed);
    const auto want = oracle::dense_backward(vc, in, d_o);
    const double tol = oracle::grad_rel_tol(vc);
    const auto got = reference_grads(vc, in, d_o);
    INFO("seed " << seed << ": " << describe(cfg));
    REQUIRE(oracle::diff(got, want, tol) == "");
    int perturbed = 0;
    for (const auto& name : grad_tensor_names(vc)) {
      INFO("tensor " << name);
      Gradients probe = got;
      auto& t = grad_tensor(vc, probe, name);
      const auto& mag = grad_tensor(vc, want.magnitude, name);
      REQUIRE(!t.empty());
      double scale = 0;
      for (double x : mag) scale = std::max(scale, x);
      REQUIRE(scale > 0);
      const std::size_t at = (t.size() * 7) / 11;
      const double x0 = t[at];
      t[at] = x0 + 10 * tol * scale;
      const std::string d = oracle::diff(probe, want, tol);
      CHECK(d.rfind(name + "[", 0) == 0);
      t[at] = x0 + 0.1 * tol * scale;
      CHECK(oracle::diff(probe, want, tol) == "");
      t[at] = std::nan("");
      CHECK(oracle::diff(probe, want, tol) != "");
      ++perturbed;
    }
    // dq, 3 x dg, dk_shared, dv_shared (shared K/V: no per-branch dk, dv) and phi's parameters of
    // K and V: 2 x 2 (linear) or 2 x 5 (mlp).
    CHECK(perturbed == (cfg.phi == Phi::mlp ? 16 : 10));
  }
}

TEST_CASE("grad: relu'(0) = 0 at a hidden unit that is exactly 0 in every block") {
  // docs/semantics.md section 10 takes relu'(0) as 0. With b1 = 0 and W1's column 0 = 0 the
  // pre-activation of hidden unit 0 is exactly 0 in every block, so its parameters get nothing;
  // relu'(0) = 1 would hand them the other units' chain-rule terms. Random inputs almost never
  // hit 0 exactly, hence the constructed case.
  Config c = test::tiny(12);
  c.h_q = 2;
  c.d_k = 3;
  c.d_v = 2;
  c.phi = Phi::mlp;
  c.phi_hidden = 3;
  c.phi_act = Activation::relu;
  const auto vc = validate(c);
  auto in = generate_inputs(vc, 5);
  const int64_t m = c.phi_hidden;
  for (auto* phi : {&in.phi_k, &in.phi_v}) {
    const int64_t rows = static_cast<int64_t>(phi->w1.size()) / m;  // h_kv * l * D
    for (int64_t r = 0; r < rows; ++r) phi->w1[r * m] = 0.0;
    for (int64_t g = 0; g < c.h_kv; ++g) phi->b1[g * m] = 0.0;
  }
  const auto d_o = ref::generate_grad_output(vc, 5);
  const auto got = reference_grads(vc, in, d_o);
  const auto want = oracle::dense_backward(vc, in, d_o);
  CHECK(oracle::diff(got, want, oracle::grad_rel_tol(vc)) == "");
  for (const auto* g : {&got.dphi_k, &got.dphi_v}) {
    for (int64_t k = 0; k < c.h_kv; ++k) CHECK(g->b1[k * m] == 0.0);
    for (int64_t r = 0; r < static_cast<int64_t>(g->w1.size()) / m; ++r) CHECK(g->w1[r * m] == 0.0);
  }
}
