// Selection semantics: score mapping (compressed -> selection blocks), group reduction, forced
// blocks, top-n with its tie rule, and the token set an index list selects.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "attention.hpp"
#include "nsa/ref/config.hpp"
#include "real.hpp"

namespace nsa::ref::detail {

// Selection blocks query t may choose: j <= floor(t / l').
inline int64_t num_candidates(const ValidConfig& vc, int64_t t) { return t / vc.cfg.slc_block + 1; }

// p_slc[j] for j < n_cand from one head's compressed weights p (length = visible blocks; entries
// beyond it count as 0).
//   overlap:   sum_{b < l'/d} sum_{m < l/d} p[j*(l'/d) + b - m]
//   paper_eq9: sum_{m < l'/d} sum_{n < l/d} p[(l'/d)*j - m - n]
//   identity:  p[j]                                            (l = d = l')
template <class Real, class Row>
std::vector<Real> map_scores(const ValidConfig& vc, const Row& p, int64_t visible, int64_t n_cand) {
  const auto& c = vc.cfg;
  const int64_t per_slc = c.slc_block / c.cmp_stride;  // l'/d
  const int64_t per_cmp = c.cmp_block / c.cmp_stride;  // l/d
  auto at = [&](int64_t i) { return (i >= 0 && i < visible) ? Real(p(i)) : Real(0); };
  std::vector<Real> out(static_cast<std::size_t>(n_cand), Real(0));
  for (int64_t j = 0; j < n_cand; ++j) {
    Real acc(0);
    switch (c.score_mapping) {
      case ScoreMapping::overlap:
        for (int64_t b = 0; b < per_slc; ++b)
          for (int64_t m = 0; m < per_cmp; ++m) acc += at(j * per_slc + b - m);
        break;
      case ScoreMapping::paper_eq9:
        for (int64_t m = 0; m < per_slc; ++m)
          for (int64_t n = 0; n < per_cmp; ++n) acc += at(per_slc * j - m - n);
        break;
      case ScoreMapping::identity:
        acc = at(j);
        break;
    }
    out[static_cast<std::size_t>(j)] = acc;
  }
  return out;
}

// Forced blocks of query t: j < n_init, and floor(t/l') - n_local < j <= floor(t/l'),
// clipped to the candidates. Returned as a membership mask over the candidates.
inline std::vector<char> forced_mask(const ValidConfig& vc, int64_t t) {
  const int64_t n_cand = num_candidates(vc, t), cur = t / vc.cfg.slc_block;
  std::vector<char> f(static_cast<std::size_t>(n_cand), 0);
  for (int64_t j = 0; j < n_cand; ++j)
    f[static_cast<std::size_t>(j)] = (j < vc.cfg.n_init) || (j > cur - vc.cfg.n_local);
  return f;
}

// The outcome of top-n for one (query, KV head).
template <class Real>
struct TopN {
  std::vector<int32_t> indices;  // ascending, -1 padded to top_n
  std::vector<Real> scores;      // ranked P per candidate
  double gap = std::numeric_limits<double>::infinity();
};

// Picks I = forced (mode always) + the best free candidates by P, |I| = min(n, n_cand).
// Ties: lower_index_first prefers the lower block index among equal P.
template <class Real>
TopN<Real> top_n(const ValidConfig& vc, int64_t t, std::vector<Real> score) {
  const auto& c = vc.cfg;
  const int64_t n_cand = static_cast<int64_t>(score.size());
  const auto forced = forced_mask(vc, t);
  const bool always = c.forced_mode == ForcedMode::always;
  std::vector<int64_t> chosen, free;
  for (int64_t j = 0; j < n_cand; ++j) (always && forced[j] ? chosen : free).push_back(j);
  const bool lower_first = c.tie_break == TieBreak::lower_index_first;
  std::stable_sort(free.begin(), free.end(), [&](int64_t a, int64_t b) {
    if (score[a] != score[b]) return score[a] > score[b];
    return lower_first ? a < b : a > b;
  });
  const int64_t want = std::min<int64_t>(c.top_n, n_cand);
  const int64_t take = want - static_cast<int64_t>(chosen.size());
  TopN<Real> r;
  if (take > 0 && take < static_cast<int64_t>(free.size()))
    r.gap = to_double(Real(score[free[take - 1]] - score[free[take]]));
  for (int64_t i = 0; i < take; ++i) chosen.push_back(free[i]);
  std::sort(chosen.begin(), chosen.end());
  r.indices.assign(static_cast<std::size_t>(c.top_n), -1);
  for (std::size_t i = 0; i < chosen.size(); ++i) r.indices[i] = static_cast<int32_t>(chosen[i]);
  r.scores = std::move(score);
  return r;
}

// Key segments of an index list for query t. A computed list (given = false) is read as a set
// with -1 padding. A given list follows the index policy: entries < 0 or beyond the candidates
// are skipped (strict lists were validated before, so this only drops -1 padding), except that
// negative_to_zero reads every negative entry as block 0; skip_invalid and negative_to_zero count
// a duplicate once, multiset once per listing. slc_causal token clips each block at t; none keeps
// the whole block (clipped to the sequence).
inline std::vector<Segment> selected_segments(const ValidConfig& vc, int64_t t, int64_t t_k,
                                              const int32_t* idx, bool given) {
  const auto& c = vc.cfg;
  const int64_t n_cand = num_candidates(vc, t);
  const bool negative_is_first = given && c.index_policy == IndexPolicy::negative_to_zero;
  std::vector<int64_t> blocks;
  for (int64_t s = 0; s < c.top_n; ++s) {
    const int64_t j = idx[s] < 0 && negative_is_first ? 0 : idx[s];
    if (j >= 0 && j < n_cand) blocks.push_back(j);
  }
  if (!given || c.index_policy != IndexPolicy::multiset) {
    std::sort(blocks.begin(), blocks.end());
    blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  }
  const int64_t end_cap = c.slc_causal == SlcCausal::token ? t + 1 : t_k;
  std::vector<Segment> segs;
  for (int64_t j : blocks) {
    const int64_t begin = j * c.slc_block;
    const int64_t end = std::min(begin + c.slc_block, end_cap);
    if (end > begin) segs.push_back({begin, end - begin});
  }
  return segs;
}

}  // namespace nsa::ref::detail
