#include "backward_case.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "gpu_case.hpp"

namespace nsa::cuda::test {

using namespace nsa::ref;

std::vector<int64_t> sample_keys(const ValidConfig& vc, int64_t limit) {
  std::vector<int64_t> keys;
  if (vc.total_k <= limit) {
    for (int64_t k = 0; k < vc.total_k; ++k) keys.push_back(k);
    return keys;
  }
  const auto& c = vc.cfg;
  for (const auto& s : vc.seqs) {
    for (int64_t u : {int64_t{0}, int64_t{1}, c.cmp_stride - 1, c.cmp_stride, c.cmp_block - 1,
                      c.cmp_block, c.slc_block - 1, c.slc_block, s.t_k - c.window - 1,
                      s.t_k - c.window, s.t_k - 2, s.t_k - 1})
      if (u >= 0 && u < s.t_k) keys.push_back(s.k_begin + u);
  }
  const int64_t want = std::max<int64_t>(2, limit - static_cast<int64_t>(keys.size()));
  for (int64_t k = 0; k < want; ++k) keys.push_back((vc.total_k - 1) * k / (want - 1));
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

BackwardCase run_backward_case(const Config& cfg, uint64_t seed, Regime regime, const Inputs* given,
                               const BackwardOptions& opt) {
  const ValidConfig vc = validate(cfg);
  const Inputs generated = given ? Inputs{} : generate_inputs(vc, seed, regime);
  const Inputs& in = given ? *given : generated;
  const auto d_o = generate_grad_output(vc, seed);
  BackwardCase r;
  r.gpu = nsa::cuda::backward(vc, in, d_o, opt, &r.indices);
  for (const auto& name : grad_tensor_names(vc)) {
    const auto& t = grad_tensor(vc, r.gpu, name);
    for (std::size_t i = 0; i < t.size() && r.unwritten.empty(); ++i)
      if (!std::isfinite(t[i])) r.unwritten = name + "[" + std::to_string(i) + "]";
  }
  const auto rows = sample_rows(vc);
  const auto keys = sample_keys(vc);
  const Gradients cand = select_gradients(vc, r.gpu, rows, keys);
  r.verdict = check_candidate_gradients(vc, in, d_o, cand, Precision::f64, {}, r.indices);
  for (const auto& t : r.verdict.tensors)
    if (!t.checked) r.unchecked += (r.unchecked.empty() ? "" : ", ") + t.name;
  std::ostringstream o;
  o << "config: " << describe(cfg) << "\nseed " << seed << " regime " << to_string(regime) << ", "
    << rows.size() << " of " << vc.total_q << " rows, " << keys.size() << " of " << vc.total_k
    << " keys checked" << (r.unwritten.empty() ? "" : "; NOT WRITTEN: " + r.unwritten)
    << (r.unchecked.empty() ? "" : "; NOT GIVEN: " + r.unchecked) << "\n"
    << r.verdict.table();
  r.report = o.str();
  return r;
}

}  // namespace nsa::cuda::test
