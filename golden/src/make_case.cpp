// Generation of golden cases from specs.
#include <cmath>
#include <stdexcept>

#include "nsa/golden/suites.hpp"

namespace nsa::golden {

double max_abs_err(const std::vector<double>& base, const std::vector<double>& truth) {
  double m = 0;
  for (std::size_t i = 0; i < truth.size() && i < base.size(); ++i)
    if (std::isfinite(truth[i]) && std::isfinite(base[i]))
      m = std::max(m, std::abs(base[i] - truth[i]));
  return m;
}

GoldenCase make_case(const CaseSpec& spec, nsa::ref::Precision precision, int threads) {
  const auto vc = nsa::ref::validate(spec.cfg);
  auto inputs = nsa::ref::generate_inputs(vc, spec.seed, spec.regime);
  if (spec.adversarial_indices) {
    if (!vc.cfg.given_indices || vc.cfg.index_policy == nsa::ref::IndexPolicy::strict)
      throw std::invalid_argument("case " + spec.name +
                                  ": adversarial index lists need given indices under a lenient "
                                  "index_policy (skip_invalid or multiset)");
    inputs.indices = nsa::ref::generate_indices(vc, spec.seed, true);
  }
  return make_case(spec, std::move(inputs), precision, threads);
}

GoldenCase make_case(const CaseSpec& spec, nsa::ref::Inputs inputs, nsa::ref::Precision precision,
                     int threads) {
  using nsa::ref::Branch;
  GoldenCase gc;
  gc.name = spec.name;
  gc.vc = nsa::ref::validate(spec.cfg);
  gc.seed = spec.seed;
  gc.regime = spec.regime;
  gc.precision = precision;
  gc.inputs = std::move(inputs);
  nsa::ref::RowSelection sel;
  sel.threads = threads;
  gc.truth = nsa::ref::forward(gc.vc, gc.inputs, precision, sel);
  gc.baseline = nsa::ref::forward(gc.vc, gc.inputs, nsa::ref::Precision::baseline, sel);
  const auto& base = gc.baseline;
  for (Branch b : nsa::ref::kAllBranches) {
    const std::string s(nsa::ref::to_string(b));
    const int i = static_cast<int>(b);
    gc.baseline_err["o_" + s] = max_abs_err(base.o_branch[i], gc.truth.o_branch[i]);
    gc.baseline_err["lse_" + s] = max_abs_err(base.lse[i], gc.truth.lse[i]);
  }
  gc.baseline_err["o"] = max_abs_err(base.o, gc.truth.o);
  gc.baseline_err["p_cmp"] = max_abs_err(base.p_cmp, gc.truth.p_cmp);
  gc.baseline_err["scores"] = max_abs_err(base.scores, gc.truth.scores);
  gc.baseline_err["score_gap"] = max_abs_err(base.score_gap, gc.truth.score_gap);

  if (!spec.backward) return gc;
  gc.has_grad = true;
  gc.d_o = nsa::ref::generate_grad_output(gc.vc, spec.seed);
  nsa::ref::GradSelection gsel;
  gsel.threads = threads;
  gc.grad_truth = nsa::ref::backward(gc.vc, gc.inputs, gc.d_o, precision, gsel);
  gc.grad_baseline =
      nsa::ref::backward(gc.vc, gc.inputs, gc.d_o, nsa::ref::Precision::baseline, gsel);
  for (const auto& name : nsa::ref::grad_tensor_names(gc.vc))
    gc.grad_baseline_err[name] = max_abs_err(nsa::ref::grad_tensor(gc.vc, gc.grad_baseline, name),
                                             nsa::ref::grad_tensor(gc.vc, gc.grad_truth, name));
  return gc;
}

GoldenFile make_suite(
    const std::string& suite, const std::vector<CaseSpec>& specs, nsa::ref::Precision precision,
    const std::function<void(std::size_t, std::size_t, const std::string&)>& progress) {
  GoldenFile f;
  f.suite = suite;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    f.cases.push_back(make_case(specs[i], precision));
    if (progress) progress(i + 1, specs.size(), specs[i].name);
  }
  return f;
}

}  // namespace nsa::golden
