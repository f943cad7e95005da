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

// The rows of x that a key set lists, segment after segment (a segment listed twice appears
// twice).
template <class Real>
Mat<Real> gather_rows(const Mat<Real>& x, const std::vector<Segment>& segs) {
  int64_t total = 0;
  for (const auto& s : segs) total += s.len;
  Mat<Real> out(total, x.cols());
  int64_t row = 0;
  for (const auto& s : segs) {
    out.middleRows(row, s.len) = x.middleRows(s.begin, s.len);
    row += s.len;
  }
  return out;
}

// Attention of q over the key rows `keys` with values `vals` (at least one key).
template <class Real, class Round, class Keys, class Vals>
AttnResult<Real> attend_rows(const Mat<Real>& q, const Keys& keys, const Vals& vals,
                             const Real& scale, const Round& round, bool keep_p) {
  using std::exp;
  using std::log;
  const int64_t g = q.rows(), total = keys.rows();
  AttnResult<Real> r;
  r.lse.resize(g);
  Mat<Real> z = round.mul_nt(q, keys);
  z *= scale;
  Vec<Real> sum(g);
  for (int64_t h = 0; h < g; ++h) {
    const Real m = z.row(h).maxCoeff();
    for (int64_t j = 0; j < total; ++j) z(h, j) = exp(z(h, j) - m);
    sum(h) = round.sum(z.row(h));
    r.lse(h) = m + log(sum(h));
  }
  // P·V uses the weights as the kernel stores them; normalisation happens once at the end.
  // The exact policy stores nothing differently, so it skips the rounded copy.
  Mat<Real> rounded;
  if constexpr (!std::is_same_v<Round, Exact>)
    rounded = z.unaryExpr([&](const Real& x) { return round.store(x); });
  const Mat<Real>& stored = std::is_same_v<Round, Exact> ? z : rounded;
  r.o = round.mul(stored, vals);
  for (int64_t h = 0; h < g; ++h) {
    r.o.row(h) /= sum(h);
    if (keep_p) z.row(h) /= sum(h);
  }
  if (keep_p) r.p = std::move(z);
  return r;
}

// Attn(q, S) = sum_j exp(z_j - m) v_j / sum_j exp(z_j - m), z_j = scale * q·k_j, m = max z;
// lse = m + log sum exp(z_j - m). Empty S: o = 0, lse = -inf.
// `round` is the arithmetic policy (real.hpp): the baseline rounds P to the input dtype before
// P·V while the denominator uses the unrounded weights, as flash-style kernels do, and reduces
// q·k, the denominator and P·V over the whole key set in its kernel model's order.
template <class Real, class Round>
AttnResult<Real> attend(const Mat<Real>& q, const Mat<Real>& k, const Mat<Real>& v,
                        const std::vector<Segment>& segs, const Real& scale, const Round& round,
                        bool keep_p) {
  int64_t total = 0;
  for (const auto& s : segs) total += s.len;
  if (total == 0) {
    AttnResult<Real> r;
    r.o = Mat<Real>::Zero(q.rows(), v.cols());
    r.lse = Vec<Real>::Constant(q.rows(), neg_inf<Real>());
    if (keep_p) r.p.resize(q.rows(), 0);
    return r;
  }
  if (segs.size() == 1)  // one run of rows: no copy
    return attend_rows(q, k.middleRows(segs[0].begin, segs[0].len),
                       v.middleRows(segs[0].begin, segs[0].len), scale, round, keep_p);
  return attend_rows(q, gather_rows(k, segs), gather_rows(v, segs), scale, round, keep_p);
}

}  // namespace nsa::ref::detail
