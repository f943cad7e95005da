// Given index lists: strict validation errors, and multiset / skip_invalid semantics on
// adversarial lists (duplicates, -1 anywhere, negative, out-of-range and future blocks).
#include <catch2/catch.hpp>

#include "gpu_case.hpp"

using namespace nsa::ref;
using nsa::cuda::test::base_config;
using nsa::cuda::test::run_case;

TEST_CASE("given valid index lists", "[gpu][indices]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::bf16);
  Config c = base_config(1025, dt, 2, 4);
  c.given_indices = true;
  c.top_n = 7;
  NSA_REQUIRE_CASE(run_case(c, 101));
}

TEST_CASE("adversarial index lists follow the policy, no out-of-bounds", "[gpu][indices]") {
  const auto policy = GENERATE(IndexPolicy::multiset, IndexPolicy::skip_invalid);
  const auto dt = GENERATE(Dtype::f32, Dtype::f16);
  Config c = base_config(1025, dt, 2, 2);
  c.given_indices = true;
  c.index_policy = policy;
  c.profile = "custom";
  c.top_n = 9;
  const auto vc = validate(c);
  Inputs in = generate_inputs(vc, 111);
  in.indices = generate_indices(vc, 112, true);
  NSA_REQUIRE_CASE(run_case(c, 111, Regime::typical, &in));
}

TEST_CASE("strict policy rejects a bad list with a clear error", "[gpu][indices]") {
  Config c = base_config(200, Dtype::bf16);
  c.given_indices = true;
  const auto vc = validate(c);
  Inputs in = generate_inputs(vc, 121);
  in.indices[5] = 1000;  // not a candidate of any row
  REQUIRE_THROWS_WITH(nsa::cuda::forward(vc, in), Catch::Contains("index list (strict)"));
  // With validation off the kernels still never read out of bounds: the entry is skipped.
  nsa::cuda::Options opt;
  opt.validate_indices = false;
  const auto out = nsa::cuda::forward(vc, in, opt);
  for (double x : out.o) REQUIRE(std::isfinite(x));
}
