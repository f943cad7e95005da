// The tolerance rule applied to gradients (docs/tolerance.md, "Gradients").
#include <stdexcept>

#include "compare_rules.hpp"
#include "nsa/ref/compare.hpp"

namespace nsa::ref {

Verdict compare_gradients(const ValidConfig& vc, const Gradients& truth,
                          const std::vector<Gradients>& baselines, const Gradients& candidate,
                          Tolerance tol) {
  auto same = [&](const Gradients& g, const std::string& who) {
    if (g.rows != truth.rows || g.keys != truth.keys)
      throw std::invalid_argument("compare_gradients: " + who +
                                  " covers other rows or keys than the truth");
  };
  for (const auto& b : baselines) same(b, "a baseline");
  same(candidate, "the candidate");
  Verdict v;
  for (const auto& name : grad_tensor_names(vc)) {
    detail::BaselineTensors bases;
    for (const auto& b : baselines) bases.push_back(&grad_tensor(vc, b, name));
    v.tensors.push_back(detail::check_tensor(name, grad_tensor(vc, truth, name), bases,
                                             grad_tensor(vc, candidate, name), vc.cfg.dtype, tol));
  }
  return v;
}

Verdict compare_gradients(const ValidConfig& vc, const Gradients& truth, const Gradients& baseline,
                          const Gradients& candidate, Tolerance tol) {
  return compare_gradients(vc, truth, std::vector<Gradients>{baseline}, candidate, tol);
}

Verdict check_candidate_gradients(const ValidConfig& vc, const Inputs& in,
                                  const std::vector<double>& d_o, const Gradients& candidate,
                                  Precision truth_precision, Tolerance tol,
                                  const std::vector<int32_t>& candidate_indices) {
  GradSelection sel;
  sel.rows = candidate.rows;
  sel.keys = candidate.keys;
  const ValidConfig* judged = &vc;
  const Inputs* inputs = &in;
  ValidConfig vk;
  Inputs ik;
  if (!candidate_indices.empty() && vc.cfg.enable_slc && !vc.cfg.given_indices) {
    RowSelection all;
    all.keep_scores = false;
    if (forward(vc, in, truth_precision, all).indices != candidate_indices) {
      // The reference's gradients of the candidate's own selection (a multiset list is read
      // exactly as written, so a well-formed list means what it says).
      Config cc = vc.cfg;
      cc.profile = "custom";
      cc.given_indices = true;
      cc.index_policy = IndexPolicy::multiset;
      vk = validate(cc);
      ik = in;
      ik.indices = candidate_indices;
      judged = &vk;
      inputs = &ik;
    }
  }
  const Gradients truth = backward(*judged, *inputs, d_o, truth_precision, sel);
  const auto bases = backward_baselines(*judged, *inputs, d_o, sel);
  Gradients cand = candidate;
  cand.rows = truth.rows;
  cand.keys = truth.keys;
  Verdict v = compare_gradients(vc, truth, bases, cand, tol);
  if (judged != &vc)
    for (auto& t : v.tensors)
      t.note = (t.note.empty() ? "" : t.note + "; ") + "judged with the candidate's indices";
  return v;
}

}  // namespace nsa::ref
