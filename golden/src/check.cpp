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
  const std::vector<nsa::ref::Outputs> bases =
      gc.baselines.empty() ? nsa::ref::forward_baselines(gc.vc, gc.inputs) : gc.baselines;
  auto v = nsa::ref::compare(gc.vc, gc.truth, bases, candidate, tol);
  const auto* idx = v.find("indices");
  if (idx && idx->checked && idx->pass && idx->max_err > 0 && !gc.vc.cfg.given_indices)
    v = nsa::ref::check_candidate(gc.vc, gc.inputs, candidate, gc.precision, tol);
  return v;
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
