#include "nsa/golden/check.hpp"

#include <algorithm>
#include <limits>

namespace nsa::golden {

nsa::ref::Verdict check_case(const GoldenCase& gc, nsa::ref::Outputs candidate,
                             nsa::ref::Tolerance tol) {
  candidate.rows = gc.truth.rows;
  candidate.heads = gc.truth.heads;
  candidate.groups = gc.truth.groups;
  candidate.d_v = gc.truth.d_v;
  candidate.top_n = gc.truth.top_n;
  const nsa::ref::Outputs base =
      gc.baseline.o.empty() ? nsa::ref::forward(gc.vc, gc.inputs, nsa::ref::Precision::baseline)
                            : gc.baseline;
  auto v = nsa::ref::compare(gc.vc, gc.truth, base, candidate, tol);
  const auto* idx = v.find("indices");
  if (idx && idx->checked && idx->pass && idx->max_err > 0 && !gc.vc.cfg.given_indices)
    v = nsa::ref::check_candidate(gc.vc, gc.inputs, candidate, gc.precision, tol);
  return v;
}

nsa::ref::Verdict check_case_gradients(const GoldenCase& gc, nsa::ref::Gradients candidate,
                                       const std::vector<int32_t>& candidate_indices,
                                       nsa::ref::Tolerance tol) {
  if (!gc.has_grad)
    throw GoldenError("case " + gc.name +
                      ": the golden file (schema 1) holds no gradients; regenerate it with this "
                      "version to check a backward");
  candidate.rows = gc.grad_truth.rows;
  candidate.keys = gc.grad_truth.keys;
  const bool own_indices = !candidate_indices.empty() && gc.vc.cfg.enable_slc &&
                           !gc.vc.cfg.given_indices && candidate_indices != gc.truth.indices;
  if (own_indices)
    return nsa::ref::check_candidate_gradients(gc.vc, gc.inputs, gc.d_o, candidate, gc.precision,
                                               tol, candidate_indices);
  const nsa::ref::Gradients base =
      gc.grad_baseline.dq.empty()
          ? nsa::ref::backward(gc.vc, gc.inputs, gc.d_o, nsa::ref::Precision::baseline)
          : gc.grad_baseline;
  return nsa::ref::compare_gradients(gc.vc, gc.grad_truth, base, candidate, tol);
}

double worst_ratio(const nsa::ref::Verdict& v) {
  double r = 0;
  for (const auto& t : v.tensors) {
    if (!t.checked || t.name == "indices") continue;
    if (t.bound > 0)
      r = std::max(r, t.max_err / t.bound);
    else if (t.max_err > 0)
      r = std::numeric_limits<double>::infinity();
  }
  return r;
}

}  // namespace nsa::golden
