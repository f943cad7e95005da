// Properties 8, 9 and 10: the selection step (score mapping, group reduction, top-n output).
#include <algorithm>
#include <cmath>
#include <limits>

#include "common.hpp"
#include "properties.hpp"

namespace nsa::props {

void prop_mappings_agree_when_l_eq_d_eq_lsel(const Case& c) {
  const auto& cfg = c.cfg;
  NSA_PROP_REQUIRE(computes_top_n(cfg), "needs the selection branch with computed indices");
  NSA_PROP_REQUIRE(cfg.cmp_block == cfg.cmp_stride && cfg.cmp_stride == cfg.slc_block,
                   "needs l = d = l'");
  NSA_PROP_REQUIRE(cfg.profile == "custom", "needs profile custom (the mapping is changed)");
  // With l = d = l' every mapping reduces to p_slc[j] = p_cmp[j] (both sums have one term).
  Outputs first;
  const char* first_name = "";
  for (auto m : {nsa::ref::ScoreMapping::identity, nsa::ref::ScoreMapping::overlap,
                 nsa::ref::ScoreMapping::paper_eq9}) {
    Case c2 = c;
    c2.cfg.score_mapping = m;
    const auto p = prepare(c2);
    auto out = run(p.vc, p.in);
    if (m == nsa::ref::ScoreMapping::identity) {
      first = std::move(out);
      first_name = "identity";
      continue;
    }
    const std::string what = std::string(nsa::ref::to_string(m)) + " vs " + first_name + ":";
    expect_same(what + " scores", first.scores, out.scores);
    expect_same(what + " indices", first.indices, out.indices);
    expect_same(what + " o_slc", first.out(Branch::slc), out.out(Branch::slc));
  }
}

void prop_sum_and_mean_reduce_select_same_blocks(const Case& c) {
  const auto& cfg = c.cfg;
  NSA_PROP_REQUIRE(computes_top_n(cfg), "needs the selection branch with computed indices");
  NSA_PROP_REQUIRE(cfg.profile == "custom", "needs profile custom (the reduction is changed)");
  Case cs = c, cm = c;
  cs.cfg.group_reduce = nsa::ref::GroupReduce::sum;
  cm.cfg.group_reduce = nsa::ref::GroupReduce::mean;
  const auto ps = prepare(cs);
  const auto pm = prepare(cm);
  const auto& vc = ps.vc;
  const auto s = run(vc, ps.in), m = run(pm.vc, pm.in);
  // The stored values: the group mean is the group sum divided by G (the same sum, one division).
  for (std::size_t i = 0; i < s.scores.size(); ++i) {
    const double want =
        std::isfinite(s.scores[i]) ? s.scores[i] / static_cast<double>(vc.group) : s.scores[i];
    NSA_PROP_CHECK(m.scores[i] == want,
                   "mean score " << i << " = " << m.scores[i] << ", sum score / G = " << want);
  }
  // Dividing by G is monotone but may merge scores closer than a few ulps into a tie: compare
  // exactly where the sum's selection gap is clear, tie-aware elsewhere.
  const double delta = 1e-12 * max_abs(s.scores);
  for (int64_t r = 0; r < vc.total_q; ++r) {
    const auto pos = row_pos(vc, r);
    for (int64_t g = 0; g < cfg.h_kv; ++g) {
      const int64_t k = r * cfg.h_kv + g;
      const int32_t* is = s.indices.data() + k * cfg.top_n;
      const int32_t* im = m.indices.data() + k * cfg.top_n;
      if (std::equal(is, is + cfg.top_n, im)) continue;
      NSA_PROP_CHECK(s.score_gap[k] <= delta,
                     "row " << r << " (t " << pos.t << ") group " << g
                            << ": sum and mean select different blocks with a clear score gap "
                            << s.score_gap[k]);
      const auto why = selection_within(cfg, pos.t, s.scores.data() + k * s.ns_max, im, delta);
      NSA_PROP_CHECK(why.empty(), "row " << r << " group " << g
                                         << ": mean's blocks under sum's scores: " << why);
    }
  }
}

void prop_index_invariants(const Case& c) {
  const auto& cfg = c.cfg;
  NSA_PROP_REQUIRE(computes_top_n(cfg), "needs the selection branch with computed indices");
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto out = run(vc, p.in);
  for (int64_t r = 0; r < vc.total_q; ++r) {
    const auto pos = row_pos(vc, r);
    const int64_t n_cand = pos.t / cfg.slc_block + 1;
    for (int64_t g = 0; g < cfg.h_kv; ++g) {
      const int32_t* idx = out.indices.data() + (r * cfg.h_kv + g) * cfg.top_n;
      const auto at = [&] {
        return "row " + std::to_string(r) + " (t " + std::to_string(pos.t) + ") group " +
               std::to_string(g) + ": ";
      };
      int64_t count = 0;
      for (int64_t s = 0; s < cfg.top_n; ++s) {
        if (idx[s] == -1) continue;
        NSA_PROP_CHECK(s == count, at() << "-1 padding before a block at slot " << s);
        NSA_PROP_CHECK(idx[s] >= 0 && idx[s] < n_cand, at() << "slot " << s << " holds " << idx[s]
                                                            << ", not a candidate in [0, " << n_cand
                                                            << ")");
        NSA_PROP_CHECK(s == 0 || idx[s] > idx[s - 1], at()
                                                          << "not sorted and unique at slot " << s);
        ++count;
      }
      NSA_PROP_CHECK(count == std::min(cfg.top_n, n_cand),
                     at() << count << " blocks, expected min(n, candidates) = "
                          << std::min(cfg.top_n, n_cand));
      if (cfg.forced_mode == nsa::ref::ForcedMode::always)
        for (int64_t f : spec_forced_blocks(cfg, pos.t))
          NSA_PROP_CHECK(std::find(idx, idx + cfg.top_n, f) != idx + cfg.top_n,
                         at() << "forced block " << f << " missing");
      // The spec's top-n rule applied to the reported scores gives exactly these blocks.
      const auto want = spec_top_n(cfg, pos.t, out.scores.data() + (r * cfg.h_kv + g) * out.ns_max);
      for (int64_t s = 0; s < cfg.top_n; ++s)
        NSA_PROP_CHECK(want[s] == idx[s], at() << "slot " << s << " holds " << idx[s]
                                               << ", the top-n rule on the scores gives "
                                               << want[s]);
    }
  }
}

}  // namespace nsa::props

namespace nsa::props {

void prop_scores_follow_the_mapping(const Case& c) {
  const auto& cfg = c.cfg;
  NSA_PROP_REQUIRE(computes_top_n(cfg), "needs the selection branch with computed indices");
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto out = run(vc, p.in);
  const int64_t per_slc = cfg.slc_block / cfg.cmp_stride, per_cmp = cfg.cmp_block / cfg.cmp_stride;
  const int64_t G = vc.group;
  for (int64_t r = 0; r < vc.total_q; ++r) {
    const auto pos = row_pos(vc, r);
    const int64_t n_cand = pos.t / cfg.slc_block + 1;
    const auto forced = spec_forced_blocks(cfg, pos.t);
    for (int64_t g = 0; g < cfg.h_kv; ++g) {
      for (int64_t j = 0; j < n_cand; ++j) {
        const bool is_forced = std::find(forced.begin(), forced.end(), j) != forced.end();
        long double total = 0;
        for (int64_t h = g * G; h < (g + 1) * G; ++h) {
          const double* pc = out.p_cmp.data() + (r * cfg.h_q + h) * out.nc_max;
          auto at = [&](int64_t i) { return i >= 0 && i < out.nc_max ? pc[i] : 0.0; };
          long double s = 0;
          // The formulas of the semantics (section 2), term by term.
          switch (cfg.score_mapping) {
            case nsa::ref::ScoreMapping::overlap:
              for (int64_t b = 0; b < per_slc; ++b)
                for (int64_t m = 0; m < per_cmp; ++m) s += at(j * per_slc + b - m);
              break;
            case nsa::ref::ScoreMapping::paper_eq9:
              for (int64_t m = 0; m < per_slc; ++m)
                for (int64_t n = 0; n < per_cmp; ++n) s += at(per_slc * j - m - n);
              break;
            case nsa::ref::ScoreMapping::identity:
              s = at(j);
              break;
          }
          if (cfg.forced_mode == nsa::ref::ForcedMode::score_one && is_forced) s = 1;
          total += s;
        }
        if (cfg.group_reduce == nsa::ref::GroupReduce::mean) total /= static_cast<long double>(G);
        const double got = out.scores[(r * cfg.h_kv + g) * out.ns_max + j];
        const double tol = 1e-14 * static_cast<double>(G * per_slc * per_cmp + 4);
        NSA_PROP_CHECK(std::fabs(got - static_cast<double>(total)) <= tol,
                       "score row " << r << " (t " << pos.t << ") group " << g << " block " << j
                                    << ": " << got << ", the mapping of p_cmp gives "
                                    << static_cast<double>(total));
      }
      for (int64_t j = n_cand; j < out.ns_max; ++j)
        NSA_PROP_CHECK(out.scores[(r * cfg.h_kv + g) * out.ns_max + j] ==
                           -std::numeric_limits<double>::infinity(),
                       "score row " << r << " group " << g << " block " << j
                                    << " is not a candidate but not -inf");
    }
  }
}

}  // namespace nsa::props
