// Shared machinery of the kernel tests: build a config, run the CUDA forward, check it against
// the reference with nsa::ref::check_candidate (on sampled rows for long sequences).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nsa/cuda/forward.hpp"
#include "nsa/ref/compare.hpp"
#include "nsa/ref/config.hpp"
#include "nsa/ref/generate.hpp"

namespace nsa::cuda::test {

// A small canonical config: B=1, T, H_kv=h_kv, G, d_k=d_v=64, l=32, d=16, l'=64, n=4, w=64.
nsa::ref::Config base_config(int64_t t, nsa::ref::Dtype dt, int64_t h_kv = 2, int64_t g = 2);

// Rows checked for a config: all rows when total_q <= limit, else a deterministic sample that
// includes the first and last rows of every sequence and the rows around block boundaries.
std::vector<int64_t> sample_rows(const nsa::ref::ValidConfig& vc, int64_t limit = 160);

struct CaseResult {
  nsa::ref::Verdict verdict;
  nsa::ref::Outputs gpu;  // full outputs of the CUDA run
  std::string report;     // config, seed, verdict table and a repro line
};

// Runs the CUDA forward on generated inputs (or the given ones) and checks it.
CaseResult run_case(const nsa::ref::Config& cfg, uint64_t seed,
                    nsa::ref::Regime regime = nsa::ref::Regime::typical,
                    const nsa::ref::Inputs* given = nullptr, const Options& opt = {});

// Runs the CUDA forward twice on the same inputs and requires every output to be bitwise
// identical: o, each branch's o and lse, the indices, and with keep_scores the scores and p_cmp
// (keeping p_cmp routes the probs pass to the simple kernel, so paths under test may want it off).
void require_bitwise_repeatable(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                                bool keep_scores);
// Every output of two runs is bitwise identical (what require_bitwise_repeatable checks).
void require_bitwise_equal(const nsa::ref::Outputs& a, const nsa::ref::Outputs& b);

// The top-n of one (row, KV group) at key position t from its block scores, on the host (a sort
// under the tie rule): an oracle for the kernels' selection that shares none of their code, for
// ties, which the comparator accepts in any order.
std::vector<int32_t> host_topn(const nsa::ref::ValidConfig& vc, int64_t t, const double* score);
// Key position of packed query row `row` in its sequence.
int64_t row_position(const nsa::ref::ValidConfig& vc, int64_t row);

}  // namespace nsa::cuda::test

// Asserts that a case passes, printing its report otherwise.
#define NSA_REQUIRE_CASE(result)    \
  do {                              \
    const auto& nsa_r_ = (result);  \
    INFO(nsa_r_.report);            \
    REQUIRE(nsa_r_.verdict.pass()); \
  } while (0)
