// GPU properties: the CUDA kernels against the reference through nsa::ref::check_candidate
// (the tolerance rule with the dtype-faithful baseline and the tie-aware index comparison).
#include <string>

#include "../harness.hpp"
#include "nsa/cuda/forward.hpp"
#include "nsa/ref/compare.hpp"
#include "nsa/ref/forward.hpp"

namespace nsa::props {
namespace {

void check_kernel(const Case& c, const nsa::ref::Inputs& in, const nsa::ref::ValidConfig& vc) {
  nsa::cuda::Options opt;
  auto got = nsa::cuda::forward(vc, in, opt);
  if (vc.cfg.given_indices && vc.cfg.enable_slc) {
    // Given lists come back as they went in (any slot may be -1 or invalid under the relaxed
    // policies); the comparator's canonical-format index rule is for computed indices.
    NSA_PROP_CHECK(got.indices == in.indices, "kernel changed the given index list");
    got.indices.clear();
  }
  const auto verdict = nsa::ref::check_candidate(vc, in, got);
  NSA_PROP_CHECK(verdict.pass(), "kernel vs reference (seed " << c.seed << "):\n"
                                                              << verdict.table());
}

}  // namespace

void prop_kernel_matches_reference(const Case& c) {
  const auto vc = nsa::ref::validate(c.cfg);
  const auto why = nsa::cuda::unsupported(vc);
  NSA_PROP_REQUIRE(why.empty(), "the kernels do not support this config: " << why);
  check_kernel(c, nsa::ref::generate_inputs(vc, c.seed, c.regime), vc);
}

void prop_kernel_adversarial_indices(const Case& c) {
  NSA_PROP_REQUIRE(c.cfg.given_indices && c.cfg.enable_slc &&
                       c.cfg.index_policy != nsa::ref::IndexPolicy::strict,
                   "needs given indices under multiset or skip_invalid");
  const auto vc = nsa::ref::validate(c.cfg);
  const auto why = nsa::cuda::unsupported(vc);
  NSA_PROP_REQUIRE(why.empty(), "the kernels do not support this config: " << why);
  auto in = nsa::ref::generate_inputs(vc, c.seed, c.regime);
  // Duplicates, -1 anywhere, negative, future and far out-of-range blocks.
  in.indices = nsa::ref::generate_indices(vc, c.seed, true);
  check_kernel(c, in, vc);
}

std::vector<Property> gpu_properties() {
  return {
      {"kernel_matches_reference", "G1: kernels = reference (tolerance rule) on supported configs",
       prop_kernel_matches_reference, true},
      {"kernel_adversarial_indices", "G2: adversarial given index lists (multiset, skip_invalid)",
       prop_kernel_adversarial_indices, true},
  };
}

}  // namespace nsa::props
