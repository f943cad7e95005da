// Generation of golden cases from specs.
#include <algorithm>
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
  using nsa::ref::Outputs;
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
  gc.baselines = nsa::ref::forward_baselines(gc.vc, gc.inputs, sel);
  // The largest error over the baseline set (docs/tolerance.md).
  auto err = [&](const std::string& name, auto tensor) {
    double m = 0;
    for (const Outputs& b : gc.baselines) m = std::max(m, max_abs_err(tensor(b), tensor(gc.truth)));
    gc.baseline_err[name] = m;
  };
  using Tensor = const std::vector<double>&;
  for (Branch b : nsa::ref::kAllBranches) {
    const std::string s(nsa::ref::to_string(b));
    const int i = static_cast<int>(b);
    err("o_" + s, [i](const Outputs& o) -> Tensor { return o.o_branch[i]; });
    err("lse_" + s, [i](const Outputs& o) -> Tensor { return o.lse[i]; });
  }
  err("o", [](const Outputs& o) -> Tensor { return o.o; });
  err("p_cmp", [](const Outputs& o) -> Tensor { return o.p_cmp; });
  err("scores", [](const Outputs& o) -> Tensor { return o.scores; });
  err("score_gap", [](const Outputs& o) -> Tensor { return o.score_gap; });

  if (!spec.backward) return gc;
  gc.has_grad = true;
  gc.d_o = nsa::ref::generate_grad_output(gc.vc, spec.seed);
  nsa::ref::GradSelection gsel;
  gsel.threads = threads;
  gc.grad_truth = nsa::ref::backward(gc.vc, gc.inputs, gc.d_o, precision, gsel);
  gc.grad_baselines = nsa::ref::backward_baselines(gc.vc, gc.inputs, gc.d_o, gsel);
  for (const auto& name : nsa::ref::grad_tensor_names(gc.vc)) {
    double m = 0;
    for (const auto& b : gc.grad_baselines)
      m = std::max(m, max_abs_err(nsa::ref::grad_tensor(gc.vc, b, name),
                                  nsa::ref::grad_tensor(gc.vc, gc.grad_truth, name)));
    gc.grad_baseline_err[name] = m;
  }
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
