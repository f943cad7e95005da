// The reference against the independent dense oracle, branch by branch, on sampled configs that
// reach every value of every knob, and on each named profile.
#include <catch2/catch.hpp>
#include <map>

#include "dense_oracle.hpp"
#include "test_support.hpp"

using namespace nsa;
using namespace nsa::ref;

namespace {

// Summation order differs between the two, nothing else: a few ulps of the largest element.
constexpr double kRelTol = 1e-12;

std::string check_against_oracle(const ValidConfig& vc, const Inputs& in) {
  const auto out = forward(vc, in, Precision::f64, test::single_thread());
  return oracle::diff(out, oracle::dense_forward(vc, in), kRelTol);
}

}  // namespace

TEST_CASE("oracle: reference == dense oracle on sampled configs of every knob value") {
  std::map<std::string, int> seen;
  auto note = [&](const std::string& what) { ++seen[what]; };
  const int kConfigs = 1500;
  for (uint64_t seed = 1; seed <= kConfigs; ++seed) {
    const Config cfg = test::random_config(seed);
    const ValidConfig vc = validate(cfg);
    const Inputs in = test::random_inputs(vc, seed);
    INFO("seed " << seed << ": " << describe(cfg));
    const std::string d = check_against_oracle(vc, in);
    CHECK(d == "");
    note("cmp_visibility=" + std::string(to_string(cfg.cmp_visibility)));
    note("score_mapping=" + std::string(to_string(cfg.score_mapping)));
    note("group_reduce=" + std::string(to_string(cfg.group_reduce)));
    note("forced_mode=" + std::string(to_string(cfg.forced_mode)));
    note("tie_break=" + std::string(to_string(cfg.tie_break)));
    note("slc_causal=" + std::string(to_string(cfg.slc_causal)));
    note("window_keys=" + std::string(to_string(cfg.window_keys)));
    note("phi=" + std::string(to_string(cfg.phi)));
    if (cfg.phi == Phi::mlp) note("mlp act=" + std::string(to_string(cfg.phi_act)));
    note("dtype=" + std::string(to_string(cfg.dtype)));
    note(cfg.shared_kv ? "shared kv" : "separate kv");
    note("layout=" + std::string(to_string(cfg.layout)));
    if (vc.total_q < vc.total_k) note("query suffix");
    for (const auto& s : vc.seqs)
      if (s.t_k == 0) note("empty sequence");
    if (cfg.given_indices && cfg.enable_slc) {
      const bool adversarial = cfg.index_policy != IndexPolicy::strict && (seed & 1);
      note("given " + std::string(to_string(cfg.index_policy)) +
           (adversarial ? " adversarial" : " valid"));
    }
  }
  // Every value was exercised (the sampler is deterministic, so this only guards edits to it).
  for (const char* want : {"cmp_visibility=inclusive",
                           "cmp_visibility=strict",
                           "score_mapping=overlap",
                           "score_mapping=paper_eq9",
                           "score_mapping=identity",
                           "group_reduce=sum",
                           "group_reduce=mean",
                           "forced_mode=always",
                           "forced_mode=score_one",
                           "tie_break=lower_index_first",
                           "tie_break=higher_index_first",
                           "slc_causal=token",
                           "slc_causal=none",
                           "window_keys=w",
                           "window_keys=w_plus_one",
                           "phi=mean",
                           "phi=linear",
                           "phi=mlp",
                           "mlp act=relu",
                           "mlp act=silu",
                           "dtype=fp32",
                           "dtype=fp16",
                           "dtype=bf16",
                           "dtype=fp64",
                           "shared kv",
                           "separate kv",
                           "layout=padded",
                           "layout=varlen",
                           "query suffix",
                           "empty sequence",
                           "given strict valid",
                           "given skip_invalid valid",
                           "given skip_invalid adversarial",
                           "given multiset valid",
                           "given multiset adversarial"}) {
    INFO(want);
    CHECK(seen[want] >= 3);
  }
}

TEST_CASE("oracle: reference == dense oracle on longer sequences (many candidate blocks)") {
  // The sampler above keeps T_k <= 28; here T_k reaches a few hundred so that n is well below
  // the number of candidates and the ranking (not the forced blocks) decides the selection.
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const Config c = test::long_config(seed);
    const auto vc = validate(c);
    const auto in = test::random_inputs(vc, seed);
    INFO("seed " << seed << ": " << describe(c));
    CHECK(check_against_oracle(vc, in) == "");
  }
}

TEST_CASE("oracle: reference == dense oracle for each named profile") {
  for (const auto& name : profile_names()) {
    const auto vc = validate(test::small_profile(name));
    for (Regime r : {Regime::typical, Regime::peaked}) {
      INFO(name << " regime " << to_string(r) << ": " << describe(vc.cfg));
      const auto in = generate_inputs(vc, 7, r);
      CHECK(check_against_oracle(vc, in) == "");
    }
  }
}

TEST_CASE("oracle: the comparison itself flags a perturbed output") {
  // Guards against a diff() that always says "equal".
  const auto vc = validate(test::random_config(3));
  const auto in = generate_inputs(vc, 3);
  auto out = forward(vc, in, Precision::f64);
  const auto want = oracle::dense_forward(vc, in);
  REQUIRE(oracle::diff(out, want, kRelTol) == "");
  REQUIRE(!out.o.empty());
  out.o[out.o.size() / 2] += 1e-6;
  CHECK(oracle::diff(out, want, kRelTol) != "");
}
