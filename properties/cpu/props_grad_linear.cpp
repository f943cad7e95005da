// Gradient properties G1, G2 and G8: the backward is linear in dO, the gate gradients are
// <dO, o_b> of the forward's branch outputs, and what the semantics zeroes is exactly zero.
#include <cmath>
#include <limits>

#include "dense_oracle.hpp"
#include "grad_common.hpp"
#include "properties.hpp"

namespace nsa::props {

void prop_grad_linear_in_do(const Case& c) {
  // fp64: a*dO1 + b*dO2 must be representable (it is rounded once, in double).
  NSA_PROP_REQUIRE(c.cfg.dtype == nsa::ref::Dtype::f64, "needs dtype fp64");
  const auto p = prepare(c);
  const auto& vc = p.vc;
  static const double as[] = {2.0, -0.5, 3.0, -1.25, 0.75};
  static const double bs[] = {1.0, 0.5, -1.75, 3.0, -2.0};
  const double a = as[choose(c.seed, 60, 0, 5)], b = bs[choose(c.seed, 60, 1, 5)];
  const auto d1 = grad_output(vc, c.seed, 1), d2 = grad_output(vc, c.seed, 2);
  std::vector<double> d12(d1.size()), neg(d1.size());
  for (std::size_t i = 0; i < d1.size(); ++i) {
    d12[i] = a * d1[i] + b * d2[i];
    neg[i] = -d1[i];
  }
  const auto g1 = run_backward(vc, p.in, d1), g2 = run_backward(vc, p.in, d2);
  const auto g12 = run_backward(vc, p.in, d12);
  // Negating dO negates every product and sum it enters exactly: bitwise.
  Gradients negated = g1;
  for (auto& [name, t] : all_tensors(negated))
    for (double& x : *t) x = -x;
  expect_same_grads("grad(-dO) vs -grad(dO):", run_backward(vc, p.in, neg), negated);
  // a*grad(dO1) + b*grad(dO2), and its error scale: each side's rounding is bounded by its
  // magnitude (the dense oracle's), scaled by |a| and |b|.
  const auto m1 = nsa::oracle::dense_backward(vc, p.in, d1).magnitude;
  const auto m2 = nsa::oracle::dense_backward(vc, p.in, d2).magnitude;
  Gradients want = g1, mag = m1;
  auto tw = all_tensors(want), tm = all_tensors(mag);
  const auto t2 = all_tensors(g2), tm2 = all_tensors(m2);
  for (std::size_t i = 0; i < tw.size(); ++i)
    for (std::size_t e = 0; e < tw[i].second->size(); ++e) {
      (*tw[i].second)[e] = a * (*tw[i].second)[e] + b * (*t2[i].second)[e];
      (*tm[i].second)[e] = std::fabs(a) * (*tm[i].second)[e] + std::fabs(b) * (*tm2[i].second)[e];
    }
  std::ostringstream what;
  what << "grad(" << a << " dO1 + " << b << " dO2) vs " << a << " grad(dO1) + " << b
       << " grad(dO2):";
  expect_close_grads(what.str(), g12, want, mag, 3 * grad_tol(vc));
}

void prop_grad_dg_is_do_dot_o_b(const Case& c) {
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto& cfg = vc.cfg;
  const auto d_o = grad_output(vc, c.seed);
  const auto out = run_forward(vc, p.in);
  const auto g = run_backward(vc, p.in, d_o);
  // The backward forms dg_b = sum_j p_j <dO, v_j> (docs/semantics.md section 10), not <dO, o_b>:
  // the two round differently, by at most the chain's length times u times the magnitude the
  // dense oracle gives (sum_j p_j sum_e |dO_e v_je|), and that one bounds <dO, o_b>'s rounding too.
  const auto mag = nsa::oracle::dense_backward(vc, p.in, d_o).magnitude;
  const double tol = 2 * grad_tol(vc);
  for (Branch br : nsa::ref::kAllBranches) {
    const int bi = static_cast<int>(br);
    const std::string name = "dg_" + std::string(nsa::ref::to_string(br));
    for (int64_t rh = 0; rh < vc.total_q * cfg.h_q; ++rh) {
      long double dot = 0;
      for (int64_t e = 0; e < cfg.d_v; ++e)
        dot += static_cast<long double>(d_o[rh * cfg.d_v + e]) * out.o_branch[bi][rh * cfg.d_v + e];
      const double bound = tol * mag.dg[bi][rh];
      const double got = g.dg[bi][rh];
      NSA_PROP_CHECK(
          cfg.enabled(br) ? std::fabs(got - static_cast<double>(dot)) <= bound : got == 0,
          name << " " << where(vc, out, rh, cfg.h_q, 1) << ": backward " << got << ", <dO, o_"
               << nsa::ref::to_string(br) << "> of the forward " << static_cast<double>(dot)
               << " (bound " << bound << ")");
    }
  }
}

void prop_grad_disabled_or_empty_is_zero(const Case& c) {
  auto p = prepare(c);
  const auto& vc = p.vc;
  const auto& cfg = vc.cfg;
  const int64_t Hkv = cfg.h_kv, n = cfg.top_n;
  // Given lists: empty a seed-chosen share of them (every entry -1), and all of them now and then.
  if (cfg.given_indices) {
    const uint64_t share = choose(c.seed, 70, 0, 4);  // 0: none, 3: every list
    for (int64_t k = 0; k < vc.total_q * Hkv; ++k)
      if (choose(c.seed, 71, static_cast<uint64_t>(k), 3) < share)
        std::fill_n(p.in.indices.begin() + k * n, n, -1);
  }
  const auto d_o = grad_output(vc, c.seed);
  const auto g = run_backward(vc, p.in, d_o);
  expect_finite_grads("backward:", g);
  // A disabled branch has exactly zero gradients (cmp: also phi's parameters).
  for (Branch br : nsa::ref::kAllBranches) {
    if (cfg.enabled(br)) continue;
    const int bi = static_cast<int>(br);
    const std::string s(nsa::ref::to_string(br));
    for (const auto& [name, t] :
         {std::pair{"dk_" + s, &g.dk[bi]}, {"dv_" + s, &g.dv[bi]}, {"dg_" + s, &g.dg[bi]}})
      for (std::size_t e = 0; e < t->size(); ++e)
        NSA_PROP_CHECK((*t)[e] == 0,
                       name << "[" << e << "] = " << (*t)[e] << " with enable_" << s << " = false");
  }
  if (!cfg.enable_cmp)
    for (const auto& [name, t] : all_tensors(g))
      if (name.rfind("dphi_", 0) == 0)
        for (std::size_t e = 0; e < t->size(); ++e)
          NSA_PROP_CHECK((*t)[e] == 0, name << "[" << e << "] = " << (*t)[e]
                                            << " with the compression branch disabled");
  // Rows whose key set is empty in a branch: dg_b = 0; in every enabled branch: dq = 0.
  const auto out = run_forward(vc, p.in);
  const double ninf = -std::numeric_limits<double>::infinity();
  for (int64_t rh = 0; rh < vc.total_q * cfg.h_q; ++rh) {
    bool all_empty = true;
    for (Branch br : nsa::ref::kAllBranches) {
      if (!cfg.enabled(br)) continue;
      const int bi = static_cast<int>(br);
      const bool empty = out.lse[bi][rh] == ninf;
      all_empty = all_empty && empty;
      if (empty)
        NSA_PROP_CHECK(g.dg[bi][rh] == 0, "dg_" << nsa::ref::to_string(br) << " "
                                                << where(vc, out, rh, cfg.h_q, 1) << " = "
                                                << g.dg[bi][rh] << " with an empty key set");
    }
    if (all_empty)
      for (int64_t e = 0; e < cfg.d_k; ++e)
        NSA_PROP_CHECK(g.dq[rh * cfg.d_k + e] == 0,
                       "dq " << where(vc, out, rh, cfg.h_q, 1) << " element " << e << " = "
                             << g.dq[rh * cfg.d_k + e] << " with every key set empty");
  }
  // A KV head whose selection lists are all empty gives its selection keys nothing. Under
  // negative_to_zero a -1 entry is block 0, so no list is empty there.
  if (cfg.enable_slc && cfg.given_indices &&
      cfg.index_policy != nsa::ref::IndexPolicy::negative_to_zero)
    for (int64_t gi = 0; gi < Hkv; ++gi) {
      bool none = true;
      for (int64_t r = 0; r < vc.total_q && none; ++r)
        for (int64_t s = 0; s < n; ++s) none = none && p.in.indices[(r * Hkv + gi) * n + s] == -1;
      if (!none) continue;
      for (int64_t u = 0; u < vc.total_k; ++u) {
        for (int64_t e = 0; e < cfg.d_k; ++e)
          NSA_PROP_CHECK(g.dk[1][(u * Hkv + gi) * cfg.d_k + e] == 0,
                         "dk_slc token " << u << " KV head " << gi
                                         << " is not 0 with every index list of the head empty");
        for (int64_t e = 0; e < cfg.d_v; ++e)
          NSA_PROP_CHECK(g.dv[1][(u * Hkv + gi) * cfg.d_v + e] == 0,
                         "dv_slc token " << u << " KV head " << gi
                                         << " is not 0 with every index list of the head empty");
      }
    }
  // dO = 0: every gradient exactly 0.
  const auto z = run_backward(vc, p.in, std::vector<double>(d_o.size(), 0.0));
  for (const auto& [name, t] : all_tensors(z))
    for (std::size_t e = 0; e < t->size(); ++e)
      NSA_PROP_CHECK((*t)[e] == 0, name << "[" << e << "] = " << (*t)[e] << " for dO = 0");
}

}  // namespace nsa::props
