// Built-in case families of golden files (golden/SCHEMA.md, "Suites") and the generation of one
// golden case: seeded inputs, truth in high precision, and the dtype-faithful baseline's errors.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nsa/golden/golden_file.hpp"

namespace nsa::golden {

struct CaseSpec {
  std::string name;
  nsa::ref::Config cfg;
  uint64_t seed = 1;
  nsa::ref::Regime regime = nsa::ref::Regime::typical;
  // Given indices only: the lists are nsa::ref::generate_indices(vc, seed, adversarial = true)
  // (duplicates, -1 anywhere, negative, future and out-of-range blocks) instead of the valid
  // lists of generate_inputs; for the skip_invalid and multiset policies.
  bool adversarial_indices = false;
  // Whether the case carries the backward (inputs/do, expected/grad/). Off only for the two long
  // length sweeps of the canonical suite, whose gradients would take a quarter of the committed
  // data budget (golden/SCHEMA.md).
  bool backward = true;
};

struct SuiteInfo {
  const char* name;
  const char* summary;
  bool committed;  // stored under golden/data/ and checked by the regeneration test
};
const std::vector<SuiteInfo>& suites();
// The cases of a suite; throws std::invalid_argument naming the known suites.
std::vector<CaseSpec> suite_cases(const std::string& name);

// max |b - t| over elements where both are finite: one baseline run's error (the tolerance rule
// takes the largest over the baseline set).
double max_abs_err(const std::vector<double>& base, const std::vector<double>& truth);

// Runs the reference for one case: truth in `precision` and the baseline set. `threads` 0 = all.
GoldenCase make_case(const CaseSpec& spec, nsa::ref::Precision precision, int threads = 0);
// The same on given inputs instead of the seeded ones (tests that need special values).
GoldenCase make_case(const CaseSpec& spec, nsa::ref::Inputs inputs, nsa::ref::Precision precision,
                     int threads = 0);

// A whole suite; `progress(done, total, case_name)` is called after each case.
GoldenFile make_suite(
    const std::string& suite, const std::vector<CaseSpec>& specs, nsa::ref::Precision precision,
    const std::function<void(std::size_t, std::size_t, const std::string&)>& progress = {});

}  // namespace nsa::golden
