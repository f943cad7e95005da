// Properties 1, 2 and 13: branch outputs against attention computed independently in the test
// over the key set the semantics names.
#include <cmath>
#include <limits>

#include "common.hpp"
#include "properties.hpp"

namespace nsa::props {
namespace {

// Compares o_branch and lse_branch of every row and head with dense attention over keys(t).
template <class Keys>
void check_branch_against_dense(const Case& c, Branch br, const Keys& keys_of) {
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto out = run(vc, p.in);
  const double v_max = max_abs(p.in.values(br));
  const auto& cfg = vc.cfg;
  const int bi = static_cast<int>(br);
  for (std::size_t ri = 0; ri < out.rows.size(); ++ri) {
    const int64_t row = out.rows[ri];
    const auto pos = row_pos(vc, row);
    const int64_t k0 = vc.seqs[static_cast<std::size_t>(pos.seq)].k_begin;
    std::vector<int64_t> keys;
    for (int64_t u : keys_of(pos.t)) keys.push_back(k0 + u);
    for (int64_t h = 0; h < cfg.h_q; ++h) {
      const auto want = dense_attention(vc, p.in, br, row, h, keys);
      const double tol = attention_tol_o(want, v_max);
      const int64_t base = (static_cast<int64_t>(ri) * cfg.h_q + h);
      for (int64_t e = 0; e < cfg.d_v; ++e) {
        const double got = out.o_branch[bi][base * cfg.d_v + e];
        NSA_PROP_CHECK(std::fabs(got - want.o[e]) <= tol,
                       "o_" << nsa::ref::to_string(br) << " row " << row << " (t " << pos.t
                            << ") head " << h << " element " << e << ": reference " << got
                            << ", attention over " << keys.size() << " keys " << want.o[e]
                            << ", |diff| " << std::fabs(got - want.o[e]) << " > tol " << tol);
      }
      const double lse = out.lse[bi][base];
      const bool both_empty = std::isinf(want.lse) && lse == want.lse;
      NSA_PROP_CHECK(both_empty || std::fabs(lse - want.lse) <= attention_tol_lse(want),
                     "lse_" << nsa::ref::to_string(br) << " row " << row << " (t " << pos.t
                            << ") head " << h << ": reference " << lse << ", expected "
                            << want.lse);
    }
  }
}

}  // namespace

void prop_selection_all_blocks_is_full_attention(const Case& c) {
  const auto& cfg = c.cfg;
  NSA_PROP_REQUIRE(computes_top_n(cfg) && cfg.slc_causal == nsa::ref::SlcCausal::token,
                   "needs the selection branch with computed indices and a token causal mask");
  const auto vc = nsa::ref::validate(cfg);
  NSA_PROP_REQUIRE(cfg.top_n >= vc.max_slc_blocks(), "needs n >= the number of blocks");
  check_branch_against_dense(c, Branch::slc, [](int64_t t) {
    std::vector<int64_t> k;
    for (int64_t u = 0; u <= t; ++u) k.push_back(u);
    return k;
  });
}

void prop_window_is_attention_over_its_keys(const Case& c) {
  NSA_PROP_REQUIRE(c.cfg.enable_win, "needs the window branch");
  const int64_t span =
      c.cfg.window_keys == nsa::ref::WindowKeys::w ? c.cfg.window : c.cfg.window + 1;
  // The spec's key set; for w >= t + 1 it is every key up to t (full causal attention).
  check_branch_against_dense(c, Branch::win, [span](int64_t t) {
    std::vector<int64_t> k;
    for (int64_t u = std::max<int64_t>(0, t - span + 1); u <= t; ++u) k.push_back(u);
    return k;
  });
}

void prop_cmp_softmax_rows_and_lse(const Case& c) {
  const auto& cfg = c.cfg;
  NSA_PROP_REQUIRE(cfg.enable_cmp, "needs the compression branch");
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto out = run(vc, p.in);
  const int ci = static_cast<int>(Branch::cmp);
  const bool mean_phi = cfg.phi == nsa::ref::Phi::mean;
  const auto& K = p.in.keys(Branch::cmp);
  for (std::size_t ri = 0; ri < out.rows.size(); ++ri) {
    const int64_t row = out.rows[ri];
    const auto pos = row_pos(vc, row);
    const int64_t k0 = vc.seqs[static_cast<std::size_t>(pos.seq)].k_begin;
    // Visible blocks per the spec: block i ends at i*d + l - 1, seen when <= t (inclusive)
    // or < t (strict).
    int64_t vis = 0;
    while (true) {
      const int64_t last = vis * cfg.cmp_stride + cfg.cmp_block - 1;
      const bool seen =
          cfg.cmp_visibility == nsa::ref::CmpVisibility::inclusive ? last <= pos.t : last < pos.t;
      if (!seen) break;
      ++vis;
    }
    for (int64_t h = 0; h < cfg.h_q; ++h) {
      const int64_t base = static_cast<int64_t>(ri) * cfg.h_q + h;
      const double* prow = out.p_cmp.data() + base * out.nc_max;
      const double lse = out.lse[ci][base];
      double sum = 0;
      for (int64_t i = 0; i < out.nc_max; ++i) {
        NSA_PROP_CHECK(prow[i] >= 0 && (i < vis || prow[i] == 0),
                       "p_cmp row " << row << " (t " << pos.t << ") head " << h << " block " << i
                                    << " = " << prow[i] << " with " << vis << " visible blocks");
        sum += prow[i];
      }
      if (vis == 0) {
        NSA_PROP_CHECK(lse == -std::numeric_limits<double>::infinity(),
                       "lse_cmp row " << row << " (t " << pos.t << ") head " << h << " = " << lse
                                      << " but no block is visible (expected -inf)");
        for (int64_t e = 0; e < cfg.d_v; ++e)
          NSA_PROP_CHECK(out.o_branch[ci][base * cfg.d_v + e] == 0,
                         "o_cmp row " << row << " head " << h << " is not 0 with no block visible");
        continue;
      }
      NSA_PROP_CHECK(std::isfinite(lse), "lse_cmp row " << row << " (t " << pos.t << ") head " << h
                                                        << " = " << lse << " with " << vis
                                                        << " visible blocks");
      NSA_PROP_CHECK(
          std::fabs(sum - 1) <= 1e-14 * (8 + static_cast<double>(vis)),
          "p_cmp row " << row << " (t " << pos.t << ") head " << h << " sums to " << sum);
      if (!mean_phi) continue;
      // lse and the weights against scores of independently averaged blocks.
      const int64_t g = h / vc.group;
      const double* q = p.in.q.data() + (row * cfg.h_q + h) * cfg.d_k;
      std::vector<long double> z(static_cast<std::size_t>(vis));
      long double m = -std::numeric_limits<long double>::infinity(), z_abs = 0;
      for (int64_t i = 0; i < vis; ++i) {
        long double dot = 0, dot_abs = 0;
        for (int64_t e = 0; e < cfg.d_k; ++e) {
          long double kbar = 0;
          for (int64_t u = 0; u < cfg.cmp_block; ++u)
            kbar += K[((k0 + i * cfg.cmp_stride + u) * cfg.h_kv + g) * cfg.d_k + e];
          kbar /= cfg.cmp_block;
          dot += q[e] * kbar;
          dot_abs += std::fabs(q[e] * kbar);
        }
        z[i] = dot * static_cast<long double>(vc.scale);
        z_abs = std::max(z_abs, dot_abs * static_cast<long double>(vc.scale));
        m = std::max(m, z[i]);
      }
      long double s = 0;
      for (auto zi : z) s += std::exp(zi - m);
      const long double want_lse = m + std::log(s);
      const double tol =
          1e-13 * (4 + static_cast<double>(z_abs) + static_cast<double>(cfg.cmp_block + vis));
      NSA_PROP_CHECK(std::fabs(lse - static_cast<double>(want_lse)) <= tol,
                     "lse_cmp row " << row << " (t " << pos.t << ") head " << h << ": " << lse
                                    << ", log-sum-exp of the " << vis << " visible block scores "
                                    << static_cast<double>(want_lse));
      for (int64_t i = 0; i < vis; ++i) {
        const double w = static_cast<double>(std::exp(z[i] - want_lse));
        NSA_PROP_CHECK(std::fabs(prow[i] - w) <= tol,
                       "p_cmp row " << row << " (t " << pos.t << ") head " << h << " block " << i
                                    << " = " << prow[i] << ", exp(z - lse) = " << w);
      }
    }
  }
}

}  // namespace nsa::props
