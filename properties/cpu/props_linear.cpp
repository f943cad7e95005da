// Properties 6, 7 and 11: linear structure of the forward (affine V, gates, linear phi).
#include <cmath>
#include <limits>

#include "common.hpp"
#include "properties.hpp"

namespace nsa::props {

void prop_affine_in_v(const Case& c) {
  // fp64 inputs: a*v + b must stay representable (it is rounded once, in double).
  NSA_PROP_REQUIRE(c.cfg.dtype == nsa::ref::Dtype::f64, "needs dtype fp64");
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto& cfg = vc.cfg;
  static const double as[] = {2.0, -0.5, 3.0, -1.25, 0.75};
  static const double bs[] = {0.0, 0.5, -1.75, 3.0, 100.0};
  const double a = as[choose(c.seed, 30, 0, 5)], b = bs[choose(c.seed, 30, 1, 5)];
  Inputs in2 = p.in;
  for (auto& v : in2.v)
    for (auto& x : v) x = a * x + b;
  const auto o1 = run(vc, p.in);
  const auto o2 = run(vc, in2);
  // V enters neither the scores nor the lse.
  expect_same("indices", o1.indices, o2.indices);
  const int64_t keys = vc.max_t_k + cfg.top_n * cfg.slc_block + cfg.cmp_block;
  for (Branch br : nsa::ref::kAllBranches) {
    if (!cfg.enabled(br)) continue;
    // A learned phi maps a*V + b to something else; only the mean commutes with it.
    if (br == Branch::cmp && cfg.phi != nsa::ref::Phi::mean) continue;
    const int bi = static_cast<int>(br);
    expect_same(std::string("lse_") + std::string(nsa::ref::to_string(br)), o1.lse[bi], o2.lse[bi]);
    const double tol = 1e-14 * (std::fabs(a) * max_abs(p.in.values(br)) + std::fabs(b)) *
                       (8 + static_cast<double>(keys));
    for (std::size_t i = 0; i < o1.o_branch[bi].size(); ++i) {
      const bool empty = o1.lse[bi][i / static_cast<std::size_t>(cfg.d_v)] ==
                         -std::numeric_limits<double>::infinity();
      const double want = empty ? 0.0 : a * o1.o_branch[bi][i] + b;
      const double got = o2.o_branch[bi][i];
      NSA_PROP_CHECK(empty ? got == 0 : std::fabs(got - want) <= tol,
                     "o_" << nsa::ref::to_string(br) << " "
                          << where(vc, o1, static_cast<int64_t>(i), cfg.h_q, cfg.d_v) << ": V -> "
                          << a << "*V + " << b << " gives " << got << ", expected " << want
                          << " (tol " << tol << ")");
    }
  }
}

void prop_linear_in_gates(const Case& c) {
  // fp64 gates: the sum of two gate sets must be representable.
  NSA_PROP_REQUIRE(c.cfg.dtype == nsa::ref::Dtype::f64, "needs dtype fp64");
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto& cfg = vc.cfg;
  const auto base = run(vc, p.in);
  // Unit gates select one branch, exactly; a disabled branch contributes 0.
  for (Branch only : nsa::ref::kAllBranches) {
    Inputs in2 = p.in;
    for (Branch br : nsa::ref::kAllBranches)
      for (auto& g : in2.gate[static_cast<int>(br)]) g = br == only ? 1.0 : 0.0;
    const auto out = run(vc, in2);
    const std::string name(nsa::ref::to_string(only));
    for (int bi = 0; bi < 3; ++bi)
      expect_same("gates do not change branch outputs: o branch " + std::to_string(bi),
                  base.o_branch[bi], out.o_branch[bi]);
    if (cfg.enabled(only))
      expect_same("gate " + name + " = 1, others 0: o vs o_" + name, out.o,
                  out.o_branch[static_cast<int>(only)]);
    else
      expect_same("gate of disabled " + name + " = 1, others 0: o vs 0", out.o,
                  std::vector<double>(out.o.size(), 0.0));
  }
  // o(G1 + G2) = o(G1) + o(G2).
  const auto g2 = nsa::ref::generate_inputs(vc, c.seed + 1, c.regime);
  Inputs in_b = p.in, in_sum = p.in;
  for (int b = 0; b < 3; ++b) {
    in_b.gate[b] = g2.gate[b];
    for (std::size_t i = 0; i < in_sum.gate[b].size(); ++i)
      in_sum.gate[b][i] = p.in.gate[b][i] + g2.gate[b][i];
  }
  const auto ob = run(vc, in_b), osum = run(vc, in_sum);
  double o_max = 0;
  for (int bi = 0; bi < 3; ++bi) o_max = std::max(o_max, max_abs(base.o_branch[bi]));
  const double tol = 1e-14 * 3 * 2 * o_max * 8;
  for (std::size_t i = 0; i < osum.o.size(); ++i) {
    const double want = base.o[i] + ob.o[i];
    NSA_PROP_CHECK(std::fabs(osum.o[i] - want) <= tol,
                   "o with gates G1 + G2 at "
                       << where(vc, base, static_cast<int64_t>(i), cfg.h_q, cfg.d_v) << ": "
                       << osum.o[i] << ", o(G1) + o(G2) = " << want);
  }
}

void prop_linear_phi_identity_is_mean(const Case& c) {
  const auto& cfg = c.cfg;
  NSA_PROP_REQUIRE(cfg.phi == nsa::ref::Phi::linear, "needs phi = linear");
  NSA_PROP_REQUIRE(cfg.enable_cmp, "needs the compression branch");
  const auto l = cfg.cmp_block;
  const bool pow2 = (l & (l - 1)) == 0;
  NSA_PROP_REQUIRE(pow2 || cfg.dtype == nsa::ref::Dtype::f64,
                   "1/l must be representable: l a power of two or dtype fp64");
  auto p = prepare(c);
  const auto& vc = p.vc;
  // W = [I/l; I/l; ...] (one D x D block per token), P = 0: vec(X)^T W = mean of the rows.
  auto identity_phi = [&](nsa::ref::PhiParams& ph, int64_t dim) {
    std::fill(ph.pos.begin(), ph.pos.end(), 0.0);
    std::fill(ph.w1.begin(), ph.w1.end(), 0.0);
    for (int64_t g = 0; g < cfg.h_kv; ++g)
      for (int64_t j = 0; j < l; ++j)
        for (int64_t e = 0; e < dim; ++e)
          ph.w1[((g * l + j) * dim + e) * dim + e] = 1.0 / static_cast<double>(l);
  };
  identity_phi(p.in.phi_k, cfg.d_k);
  identity_phi(p.in.phi_v, cfg.d_v);
  nsa::ref::Config mean_cfg = cfg;
  mean_cfg.phi = nsa::ref::Phi::mean;
  const auto vc_mean = nsa::ref::validate(mean_cfg);
  Inputs in_mean = p.in;
  in_mean.phi_k = {};
  in_mean.phi_v = {};
  const auto lin = run(vc, p.in);
  const auto mean = run(vc_mean, in_mean);
  const int ci = static_cast<int>(Branch::cmp);
  // Summation orders differ (a product with W vs a column sum): compare within rounding.
  const double z_scale =
      vc.scale * static_cast<double>(cfg.d_k) * max_abs(p.in.q) * max_abs(p.in.keys(Branch::cmp));
  const double tol = 1e-13 * (4 + static_cast<double>(l) + z_scale);
  for (std::size_t i = 0; i < lin.p_cmp.size(); ++i)
    NSA_PROP_CHECK(
        std::fabs(lin.p_cmp[i] - mean.p_cmp[i]) <= tol,
        "p_cmp " << i << ": linear identity " << lin.p_cmp[i] << ", mean " << mean.p_cmp[i]);
  for (std::size_t i = 0; i < lin.lse[ci].size(); ++i) {
    const double a = lin.lse[ci][i], b = mean.lse[ci][i];
    NSA_PROP_CHECK(a == b || std::fabs(a - b) <= tol,
                   "lse_cmp " << where(vc, lin, static_cast<int64_t>(i), cfg.h_q, 1)
                              << ": linear identity " << a << ", mean " << b);
  }
  const double vtol = tol * max_abs(p.in.values(Branch::cmp));
  for (std::size_t i = 0; i < lin.o_branch[ci].size(); ++i)
    NSA_PROP_CHECK(std::fabs(lin.o_branch[ci][i] - mean.o_branch[ci][i]) <= vtol,
                   "o_cmp " << where(vc, lin, static_cast<int64_t>(i), cfg.h_q, cfg.d_v)
                            << ": linear identity " << lin.o_branch[ci][i] << ", mean "
                            << mean.o_branch[ci][i]);
  if (!computes_top_n(cfg)) return;
  const double delta = 1e-12 * max_abs(mean.scores);
  for (int64_t r = 0; r < vc.total_q; ++r) {
    const auto pos = row_pos(vc, r);
    for (int64_t g = 0; g < cfg.h_kv; ++g) {
      const int32_t* got = lin.indices.data() + (r * cfg.h_kv + g) * cfg.top_n;
      const auto why = selection_within(
          cfg, pos.t, mean.scores.data() + (r * cfg.h_kv + g) * mean.ns_max, got, delta);
      NSA_PROP_CHECK(why.empty(), "linear identity indices row " << r << " (t " << pos.t
                                                                 << ") group " << g
                                                                 << " vs mean scores: " << why);
    }
  }
}

}  // namespace nsa::props
