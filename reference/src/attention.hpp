// Softmax attention of a group of query heads over a key set given as row segments of one KV
// head's K and V. All three branches reduce to this; only their key sets differ.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "real.hpp"

namespace nsa::ref::detail {

// A run of consecutive key rows [begin, begin + len). A key set may list a segment more than
// once (the multiset index policy): each listing contributes its keys again.
struct Segment {
  int64_t begin = 0;
  int64_t len = 0;
};

// Result for the G rows of Q: outputs O [G, d_v], lse [G], and the softmax weights P [G, keys]
// laid out segment after segment.
template <class Real>
struct AttnResult {
  Mat<Real> o;
  Vec<Real> lse;
  Mat<Real> p;
};

// Attn(q, S) = sum_j exp(z_j - m) v_j / sum_j exp(z_j - m), z_j = scale * q·k_j, m = max z;
// lse = m + log sum exp(z_j - m). Empty S: o = 0, lse = -inf.
// `round` is the storage policy: the baseline rounds P to the input dtype before P·V while the
// denominator uses the unrounded weights, as flash-style kernels do.
template <class Real, class Round>
AttnResult<Real> attend(const Mat<Real>& q, const Mat<Real>& k, const Mat<Real>& v,
                        const std::vector<Segment>& segs, const Real& scale, const Round& round,
                        bool keep_p) {
  using std::exp;
  using std::log;
  const int64_t g = q.rows();
  int64_t total = 0;
  for (const auto& s : segs) total += s.len;
  AttnResult<Real> r;
  r.o = Mat<Real>::Zero(g, v.cols());
  r.lse = Vec<Real>::Constant(g, neg_inf<Real>());
  if (total == 0) {
    if (keep_p) r.p.resize(g, 0);
    return r;
  }
  Mat<Real> z(g, total);
  int64_t col = 0;
  for (const auto& s : segs) {
    z.middleCols(col, s.len).noalias() = q * k.middleRows(s.begin, s.len).transpose();
    col += s.len;
  }
  z *= scale;
  Vec<Real> sum(g);
  for (int64_t h = 0; h < g; ++h) {
    const Real m = z.row(h).maxCoeff();
    Real acc(0);
    for (int64_t j = 0; j < total; ++j) {
      const Real e = exp(z(h, j) - m);
      acc += e;
      z(h, j) = e;
    }
    sum(h) = acc;
    r.lse(h) = m + log(acc);
  }
  // P·V uses the weights as the kernel stores them; normalisation happens once at the end.
  // The exact policy stores nothing differently, so it skips the rounded copy.
  Mat<Real> rounded;
  if constexpr (!std::is_same_v<Round, Exact>)
    rounded = z.unaryExpr([&](const Real& x) { return round.store(x); });
  const Mat<Real>& stored = std::is_same_v<Round, Exact> ? z : rounded;
  col = 0;
  for (const auto& s : segs) {
    r.o.noalias() += stored.middleCols(col, s.len) * v.middleRows(s.begin, s.len);
    col += s.len;
  }
  for (int64_t h = 0; h < g; ++h) {
    r.o.row(h) /= sum(h);
    if (keep_p) z.row(h) /= sum(h);
  }
  if (keep_p) r.p = std::move(z);
  return r;
}

}  // namespace nsa::ref::detail
