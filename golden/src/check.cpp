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

nsa::ref::Verdict check_case(const GoldenCase& gc, const CandidateCase& candidate,
                             nsa::ref::Tolerance tol) {
  auto v = check_case(gc, candidate.outputs, tol);
  for (const auto& [name, why] : candidate.rejected) {
    auto it = std::find_if(v.tensors.begin(), v.tensors.end(),
                           [&](const auto& t) { return t.name == name; });
    if (it == v.tensors.end()) continue;  // not an output of this case's enabled branches
    *it = nsa::ref::TensorVerdict{};
    it->name = name;
    it->checked = true;
    it->pass = false;
    it->note = why;
  }
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

CheckStatus FileReport::status() const {
  if (failed) return CheckStatus::fail;
  return tensors == 0 ? CheckStatus::no_check : CheckStatus::pass;
}

FileReport check_file(const GoldenFile& golden,
                      const std::map<std::string, CandidateCase>& candidates,
                      nsa::ref::Tolerance tol) {
  FileReport r;
  for (const auto& gc : golden.cases) {
    CaseReport cr;
    cr.name = gc.name;
    const auto it = candidates.find(gc.name);
    if (it == candidates.end() || (it->second.present.empty() && it->second.rejected.empty())) {
      ++r.not_checked;
      r.cases.push_back(std::move(cr));
      continue;
    }
    cr.checked = true;
    cr.verdict = check_case(gc, it->second, tol);
    for (const auto& t : cr.verdict.tensors) r.tensors += t.checked;
    (cr.verdict.pass() ? r.passed : r.failed)++;
    r.cases.push_back(std::move(cr));
  }
  return r;
}

}  // namespace nsa::golden
