// Property 12: the double run agrees with the 113-bit run within the stated bound.
#include <algorithm>
#include <cmath>

#include "common.hpp"
#include "properties.hpp"

namespace nsa::props {

// The bound of docs/numerics.md section 2, per element:
//   |X_f64 - X_f128| <= 4 * (N + (d_k + l*D) * (1 + Z) + 8) * u * M
// u = 2^-53; N = max(T_k, n*l'); D = max(d_k, d_v); Z = s * d_k * max|q| * max|k| (times 4 for
// a learned phi); M = max(1, max|v|) for branch outputs, max(1, |lse|) for lse, 1 for p_cmp;
// three times the branch bound for the gated output.
void prop_f64_agrees_with_f128(const Case& c) {
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto& cfg = vc.cfg;
  // f128 is slow: a few seed-chosen rows, all heads.
  nsa::ref::RowSelection sel;
  for (int i = 0; i < 4 && vc.total_q > 0; ++i)
    sel.rows.push_back(static_cast<int64_t>(
        choose(c.seed, 40, static_cast<uint64_t>(i), static_cast<uint64_t>(vc.total_q))));
  if (sel.rows.empty()) return;
  const auto d = run(vc, p.in, nsa::ref::Precision::f64, sel);
  const auto q = run(vc, p.in, nsa::ref::Precision::f128, sel);
  double k_max = 0, v_max = 0;
  for (int b = 0; b < 3; ++b) {
    k_max = std::max(k_max, max_abs(p.in.k[b]));
    v_max = std::max(v_max, max_abs(p.in.v[b]));
  }
  const double u = std::ldexp(1.0, -53);
  const double N = static_cast<double>(std::max(vc.max_t_k, cfg.top_n * cfg.slc_block));
  const double D = static_cast<double>(std::max(cfg.d_k, cfg.d_v));
  const double Z = vc.scale * static_cast<double>(cfg.d_k) * max_abs(p.in.q) * k_max *
                   (cfg.phi == nsa::ref::Phi::mean ? 1.0 : 4.0);
  const double unit =
      4 *
      (N + (static_cast<double>(cfg.d_k) + static_cast<double>(cfg.cmp_block) * D) * (1 + Z) + 8) *
      u;
  const double o_tol = unit * std::max(1.0, v_max);
  const double delta = 1e-12 * max_abs(q.scores);
  std::vector<char> idx_same(q.indices.size() / std::max<int64_t>(1, cfg.top_n), 1);
  for (std::size_t k = 0; k < idx_same.size(); ++k) {
    const int32_t* a = d.indices.data() + k * cfg.top_n;
    const int32_t* b = q.indices.data() + k * cfg.top_n;
    if (std::equal(a, a + cfg.top_n, b)) continue;
    idx_same[k] = 0;
    const int64_t r = d.rows[k / cfg.h_kv];
    const auto pos = row_pos(vc, r);
    NSA_PROP_CHECK(computes_top_n(cfg), "given indices differ between precisions");
    NSA_PROP_CHECK(q.score_gap[k] <= delta,
                   "row " << r << " (t " << pos.t << ") group " << k % cfg.h_kv
                          << ": f64 and f128 select different blocks with a clear gap "
                          << q.score_gap[k]);
    const auto why = selection_within(cfg, pos.t, q.scores.data() + k * q.ns_max, a, delta);
    NSA_PROP_CHECK(why.empty(), "row " << r << ": f64 indices under f128 scores: " << why);
  }
  for (int bi = 0; bi < 3; ++bi)
    for (std::size_t i = 0; i < d.o_branch[bi].size(); ++i) {
      const int64_t rh = static_cast<int64_t>(i) / cfg.d_v;
      if (bi == 1 && !idx_same[(rh / cfg.h_q) * cfg.h_kv + (rh % cfg.h_q) / vc.group]) continue;
      NSA_PROP_CHECK(std::fabs(d.o_branch[bi][i] - q.o_branch[bi][i]) <= o_tol,
                     "o branch " << bi << " "
                                 << where(vc, d, static_cast<int64_t>(i), cfg.h_q, cfg.d_v)
                                 << ": f64 " << d.o_branch[bi][i] << ", f128 " << q.o_branch[bi][i]
                                 << " (bound " << o_tol << ")");
      if (i % static_cast<std::size_t>(cfg.d_v) == 0) {
        const double a = d.lse[bi][rh], b = q.lse[bi][rh];
        const double lse_tol = unit * std::max(1.0, std::fabs(b));
        NSA_PROP_CHECK(a == b || std::fabs(a - b) <= lse_tol,
                       "lse branch " << bi << " " << where(vc, d, rh, cfg.h_q, 1) << ": f64 " << a
                                     << ", f128 " << b << " (bound " << lse_tol << ")");
      }
    }
  for (std::size_t i = 0; i < d.o.size(); ++i) {
    const int64_t rh = static_cast<int64_t>(i) / cfg.d_v;
    if (!idx_same[(rh / cfg.h_q) * cfg.h_kv + (rh % cfg.h_q) / vc.group]) continue;
    NSA_PROP_CHECK(std::fabs(d.o[i] - q.o[i]) <= 3 * o_tol,
                   "o " << where(vc, d, static_cast<int64_t>(i), cfg.h_q, cfg.d_v) << ": f64 "
                        << d.o[i] << ", f128 " << q.o[i] << " (bound " << 3 * o_tol << ")");
  }
  for (std::size_t i = 0; i < d.p_cmp.size(); ++i)
    NSA_PROP_CHECK(std::fabs(d.p_cmp[i] - q.p_cmp[i]) <= unit,
                   "p_cmp " << i << ": f64 " << d.p_cmp[i] << ", f128 " << q.p_cmp[i] << " (bound "
                            << unit << ")");
}

}  // namespace nsa::props
