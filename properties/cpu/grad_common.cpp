#include "grad_common.hpp"

#include <cmath>
#include <limits>

#include "dense_oracle.hpp"
#include "grad_support.hpp"

namespace nsa::props {

std::vector<double> grad_output(const ValidConfig& vc, uint64_t seed, uint64_t which) {
  return nsa::ref::generate_grad_output(vc, seed * 31 + 7 + which);
}

Gradients run_backward(const ValidConfig& vc, const Inputs& in, const std::vector<double>& d_o,
                       nsa::ref::GradSelection sel, nsa::ref::Precision p) {
  if (sel.threads == 0) sel.threads = 1;
  return nsa::ref::backward(vc, in, d_o, p, sel);
}

namespace {

template <class G, class T>
std::vector<std::pair<std::string, T*>> tensors_of(G& g) {
  std::vector<std::pair<std::string, T*>> list{{"dq", &g.dq}};
  for (Branch b : nsa::ref::kAllBranches) {
    const int i = static_cast<int>(b);
    const std::string s(nsa::ref::to_string(b));
    list.emplace_back("dk_" + s, &g.dk[i]);
    list.emplace_back("dv_" + s, &g.dv[i]);
    list.emplace_back("dg_" + s, &g.dg[i]);
  }
  list.emplace_back("dk_shared", &g.dk_shared);
  list.emplace_back("dv_shared", &g.dv_shared);
  for (auto [t, params] : {std::pair{"k", &g.dphi_k}, std::pair{"v", &g.dphi_v}}) {
    const std::string pre = std::string("dphi_") + t + "_";
    list.emplace_back(pre + "pos", &params->pos);
    list.emplace_back(pre + "w1", &params->w1);
    list.emplace_back(pre + "b1", &params->b1);
    list.emplace_back(pre + "w2", &params->w2);
    list.emplace_back(pre + "b2", &params->b2);
  }
  return list;
}

}  // namespace

std::vector<std::pair<std::string, const std::vector<double>*>> all_tensors(const Gradients& g) {
  return tensors_of<const Gradients, const std::vector<double>>(g);
}

std::vector<std::pair<std::string, std::vector<double>*>> all_tensors(Gradients& g) {
  return tensors_of<Gradients, std::vector<double>>(g);
}

void expect_same_grads(const std::string& what, const Gradients& a, const Gradients& b) {
  const auto ta = all_tensors(a), tb = all_tensors(b);
  for (std::size_t i = 0; i < ta.size(); ++i)
    expect_same(what + " " + ta[i].first, *ta[i].second, *tb[i].second);
}

void expect_close(const std::string& what, const std::vector<double>& a,
                  const std::vector<double>& b, const std::vector<double>& m, double tol) {
  NSA_PROP_CHECK(a.size() == b.size() && a.size() == m.size(),
                 what << ": sizes " << a.size() << ", " << b.size() << ", " << m.size());
  double scale = 0;
  for (double x : m) scale = std::max(scale, x);
  const double bound = tol * scale;
  for (std::size_t e = 0; e < a.size(); ++e)
    NSA_PROP_CHECK(std::fabs(a[e] - b[e]) <= bound,
                   what << "[" << e << "]: " << a[e] << ", expected " << b[e] << ", |diff| "
                        << std::fabs(a[e] - b[e]) << " > bound " << bound << " (" << tol
                        << " x magnitude " << scale << ")");
}

void expect_close_grads(const std::string& what, const Gradients& got, const Gradients& want,
                        const Gradients& magnitude, double tol) {
  const auto tg = all_tensors(got), tw = all_tensors(want), tm = all_tensors(magnitude);
  for (std::size_t i = 0; i < tg.size(); ++i)
    expect_close(what + " " + tg[i].first, *tg[i].second, *tw[i].second, *tm[i].second, tol);
}

void expect_finite_grads(const std::string& what, const Gradients& g) {
  for (const auto& [name, t] : all_tensors(g))
    for (std::size_t e = 0; e < t->size(); ++e)
      NSA_PROP_CHECK(std::isfinite((*t)[e]),
                     what << " " << name << "[" << e << "] = " << (*t)[e] << " is not finite");
}

double grad_tol(const ValidConfig& vc) { return nsa::oracle::grad_rel_tol(vc); }

Outputs run_forward(const ValidConfig& vc, const Inputs& in) { return run(vc, in); }

std::vector<RowPos> row_positions(const ValidConfig& vc) {
  std::vector<RowPos> pos;
  for (int64_t r = 0; r < vc.total_q; ++r) pos.push_back(row_pos(vc, r));
  return pos;
}

}  // namespace nsa::props
