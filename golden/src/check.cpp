#include "nsa/golden/check.hpp"

#include <algorithm>
#include <iterator>
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

nsa::ref::Verdict check_case_gradients(const GoldenCase& gc, nsa::ref::Gradients candidate,
                                       const std::vector<int32_t>& candidate_indices,
                                       nsa::ref::Tolerance tol) {
  if (!gc.has_grad)
    throw GoldenError("case " + gc.name +
                      " holds no gradients (a schema 1 file, written before the backward, or "
                      "a case with backward = 0)");
  candidate.rows = gc.grad_truth.rows;
  candidate.keys = gc.grad_truth.keys;
  const bool own_indices = !candidate_indices.empty() && gc.vc.cfg.enable_slc &&
                           !gc.vc.cfg.given_indices && candidate_indices != gc.truth.indices;
  if (own_indices)
    return nsa::ref::check_candidate_gradients(gc.vc, gc.inputs, gc.d_o, candidate, gc.precision,
                                               tol, candidate_indices);
  const std::vector<nsa::ref::Gradients> bases =
      gc.grad_baselines.empty() ? nsa::ref::backward_baselines(gc.vc, gc.inputs, gc.d_o)
                                : gc.grad_baselines;
  return nsa::ref::compare_gradients(gc.vc, gc.grad_truth, bases, candidate, tol);
}

nsa::ref::Verdict check_case_gradients(const GoldenCase& gc, const CandidateCase& candidate,
                                       nsa::ref::Tolerance tol) {
  auto v = check_case_gradients(gc, candidate.grads, candidate.outputs.indices, tol);
  for (const auto& [key, why] : candidate.rejected) {
    if (key.rfind("grad/", 0) != 0) continue;
    const std::string name = key.substr(5);
    auto it = std::find_if(v.tensors.begin(), v.tensors.end(),
                           [&](const auto& t) { return t.name == name; });
    if (it == v.tensors.end()) {  // not a gradient of this case
      v.tensors.emplace_back();
      it = std::prev(v.tensors.end());
    }
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
  return tensors + grad_tensors == 0 ? CheckStatus::no_check : CheckStatus::pass;
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
    const CandidateCase& cand = it->second;
    cr.checked = true;
    cr.forward = cand.has_forward();
    if (cr.forward) cr.verdict = check_case(gc, cand, tol);
    if (!cand.has_grads()) {
      cr.grad_note = "the candidate holds none of outputs/grad/*";
    } else if (!gc.has_grad) {
      cr.grad_note = "this golden case holds no gradients (a schema 1 file, or backward = 0)";
    } else {
      cr.grads = true;
      cr.grad_verdict = check_case_gradients(gc, cand, tol);
    }
    for (const auto& t : cr.verdict.tensors) r.tensors += t.checked;
    for (const auto& t : cr.grad_verdict.tensors) r.grad_tensors += t.checked;
    (cr.pass() ? r.passed : r.failed)++;
    r.cases.push_back(std::move(cr));
  }
  return r;
}

}  // namespace nsa::golden
