// The comparator: the tolerance rule of docs/tolerance.md (SPEC section 10) applied per tensor,
// with the tie-aware index comparison. Returns a structured verdict that tests assert on and
// reports print.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nsa/ref/backward.hpp"
#include "nsa/ref/forward.hpp"

namespace nsa::ref {

struct Tolerance {
  double alpha = 2.0;  // multiple of the baseline's error
  double beta = 2.0;   // ulps of the output dtype at the truth's largest magnitude
};

// Spacing of dtype's values at magnitude |x| (subnormal spacing near 0).
double ulp(double x, Dtype dtype);

struct TensorVerdict {
  std::string name;      // "o_cmp", "lse_slc", "o", "indices", ...
  bool checked = false;  // false: the candidate did not provide it
  bool pass = true;
  double max_err = 0;       // max |X - X*| over finite truth elements (mismatch count for indices)
  double bound = 0;         // alpha * baseline error + beta * ulp
  double baseline_err = 0;  // the largest over the baselines compared against
  int64_t worst = -1;       // flat index of the worst element
  double expected = 0, actual = 0;
  std::string note;  // why it failed (NaN, unwritten, -inf mismatch, index rule), or info
};

struct Verdict {
  std::vector<TensorVerdict> tensors;
  bool pass() const;
  const TensorVerdict* find(const std::string& name) const;
  // A fixed-width table, one line per tensor.
  std::string table() const;
};

// Compares a candidate's outputs against truth, with the baseline setting the tolerance. All
// must cover the same rows and heads. A candidate tensor that is empty is "not checked".
// o tensors are judged in the config's dtype, lse always as fp32. With several baselines (the
// baseline set of forward_baselines), each tensor's baseline error is the largest of theirs.
Verdict compare(const ValidConfig& vc, const Outputs& truth, const std::vector<Outputs>& baselines,
                const Outputs& candidate, Tolerance tol = {});
Verdict compare(const ValidConfig& vc, const Outputs& truth, const Outputs& baseline,
                const Outputs& candidate, Tolerance tol = {});

// The whole check of one candidate: computes truth (in `truth_precision`) and the baseline set on
// the candidate's rows and heads, compares, and where the candidate's indices differ from the
// truth's only within ties, re-checks o_slc and o against truth and baselines recomputed with the
// candidate's own indices.
Verdict check_candidate(const ValidConfig& vc, const Inputs& in, const Outputs& candidate,
                        Precision truth_precision = Precision::f128, Tolerance tol = {});

// Gradients (docs/tolerance.md, "Gradients"): every tensor of grad_tensor_names(vc) by the same
// rule, in ulps of the case dtype (gradients are stored in the input dtype). The three must cover
// the same rows and keys; a candidate tensor that is empty is "not checked".
// With several baselines (backward_baselines), each tensor's baseline error is the largest.
Verdict compare_gradients(const ValidConfig& vc, const Gradients& truth,
                          const std::vector<Gradients>& baselines, const Gradients& candidate,
                          Tolerance tol = {});
Verdict compare_gradients(const ValidConfig& vc, const Gradients& truth, const Gradients& baseline,
                          const Gradients& candidate, Tolerance tol = {});

// The whole check of a candidate's gradients for the upstream gradient d_o: truth (in
// `truth_precision`) and the backward baseline set on the candidate's rows and keys (empty lists:
// all). `candidate_indices` ([total_q, h_kv, top_n], or empty) are the index lists of the
// candidate's own forward; where they differ from the reference's selection (within ties, which
// the forward's judge decides), the gradients are judged against the reference run with them.
Verdict check_candidate_gradients(const ValidConfig& vc, const Inputs& in,
                                  const std::vector<double>& d_o, const Gradients& candidate,
                                  Precision truth_precision = Precision::f128, Tolerance tol = {},
                                  const std::vector<int32_t>& candidate_indices = {});

}  // namespace nsa::ref
