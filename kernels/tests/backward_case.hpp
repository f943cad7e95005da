// Shared machinery of the backward's GPU tests: run nsa::cuda::backward on generated inputs,
// check that every element was written (the outputs are poisoned with NaN before the launch),
// and judge the gradients of sampled rows and keys against the reference with
// nsa::ref::check_candidate_gradients (dtype-faithful backward baseline set, alpha 2, beta 2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nsa/cuda/backward.hpp"
#include "nsa/ref/compare.hpp"
#include "nsa/ref/generate.hpp"

namespace nsa::cuda::test {

struct BackwardCase {
  nsa::ref::Verdict verdict;
  nsa::ref::Gradients gpu;       // all rows and keys
  std::vector<int32_t> indices;  // the lists the gradients were taken over
  std::string unwritten;         // first non-finite element of the GPU result ("" if none)
  std::string unchecked;         // tensors the comparator found missing ("not checked")
  std::string report;            // config, seed, verdict table
};

// Key rows judged: all when total_k <= limit, else the first and last keys of every sequence,
// those around compression / selection block and window edges, and an even spread.
std::vector<int64_t> sample_keys(const nsa::ref::ValidConfig& vc, int64_t limit = 160);

BackwardCase run_backward_case(const nsa::ref::Config& cfg, uint64_t seed,
                               nsa::ref::Regime regime = nsa::ref::Regime::typical,
                               const nsa::ref::Inputs* given = nullptr,
                               const BackwardOptions& opt = {});

}  // namespace nsa::cuda::test

#define NSA_REQUIRE_BACKWARD(result)   \
  do {                                 \
    const auto& nsa_b_ = (result);     \
    INFO(nsa_b_.report);               \
    REQUIRE(nsa_b_.unwritten.empty()); \
    REQUIRE(nsa_b_.unchecked.empty()); \
    REQUIRE(nsa_b_.verdict.pass());    \
  } while (0)
