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

// Result for the G rows of Q: outputs O [G, d_v], lse [G], and (when asked) the softmax weights
// P and the scaled scores z [G, keys], laid out segment after segment.
template <class Real>
struct AttnResult {
  Mat<Real> o;
  Vec<Real> lse;
  Mat<Real> p;
  Mat<Real> z;
};

// What attend() keeps besides lse: the output (the exact backward needs only P), the weights,
// the scaled scores.
struct AttnKeep {
  bool o = true;
  bool p = false;
  bool z = false;
};

// A matrix as the storage policy keeps it (the exact policy: the matrix itself, no copy).
template <class Real, class Round>
decltype(auto) stored(const Mat<Real>& m, const Round& round) {
  if constexpr (std::is_same_v<Round, Exact>) {
    return (m);
  } else {
    return Mat<Real>(m.unaryExpr([&](const Real& x) { return round.store(x); }));
  }
}

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
                             const Real& scale, const Round& round, AttnKeep keep) {
  using std::exp;
  using std::log;
  const int64_t g = q.rows(), total = keys.rows();
  AttnResult<Real> r;
  r.lse.resize(g);
  Mat<Real> z = round.mul_nt(q, keys);
  z *= scale;
  if (keep.z) r.z = z;
  Vec<Real> sum(g);
  for (int64_t h = 0; h < g; ++h) {
    const Real m = z.row(h).maxCoeff();
    for (int64_t j = 0; j < total; ++j) z(h, j) = exp(z(h, j) - m);
    sum(h) = round.sum(z.row(h));
    r.lse(h) = m + log(sum(h));
  }
  // P·V uses the weights as the kernel stores them; normalisation happens once at the end.
  if (keep.o) {
    r.o = round.mul(stored(z, round), vals);
    for (int64_t h = 0; h < g; ++h) r.o.row(h) /= sum(h);
  } else {
    r.o = Mat<Real>::Zero(g, vals.cols());
  }
  if (keep.p) {
    for (int64_t h = 0; h < g; ++h) z.row(h) /= sum(h);
    r.p = std::move(z);
  }
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
                        AttnKeep keep = {}) {
  int64_t total = 0;
  for (const auto& s : segs) total += s.len;
  if (total == 0) {
    AttnResult<Real> r;
    r.o = Mat<Real>::Zero(q.rows(), v.cols());
    r.lse = Vec<Real>::Constant(q.rows(), neg_inf<Real>());
    if (keep.p) r.p.resize(q.rows(), 0);
    if (keep.z) r.z.resize(q.rows(), 0);
    return r;
  }
  if (segs.size() == 1)  // one run of rows: no copy
    return attend_rows(q, k.middleRows(segs[0].begin, segs[0].len),
                       v.middleRows(segs[0].begin, segs[0].len), scale, round, keep);
  return attend_rows(q, gather_rows(k, segs), gather_rows(v, segs), scale, round, keep);
}

// --- backward ----------------------------------------------------------------------------
// The gradient of Attn(q, S) for an upstream gradient dO of the output (SPEC section 6), in the
// form flash-style kernels compute it: with the forward's lse and D = rowsum(dO ∘ o),
//   P_j = exp(z_j - lse),  dP_j = <dO, v_j>,  dS_j = P_j (dP_j - D),
//   dq = s Σ_j dS_j k_j,   dk_j += s dS_j q,   dv_j += P_j dO.
// A key listed twice (multiset) is two terms of these sums. The arithmetic policy reduces every
// product in its kernel model's order and rounds P and dS as a kernel stores them for its
// tensor-core products (the exact policy leaves them alone).

// a · M_S^T over the key rows of segs (the scores' and dP's shape, [a.rows(), |S|]).
template <class Real, class Round>
Mat<Real> times_keys(const Mat<Real>& a, const Mat<Real>& m, const std::vector<Segment>& segs,
                     const Round& round) {
  if (segs.size() == 1) return round.mul_nt(a, m.middleRows(segs[0].begin, segs[0].len));
  return round.mul_nt(a, gather_rows(m, segs));
}

// P = exp(z - lse) row by row: the weights as a backward recomputes them from the forward's lse.
template <class Real>
Mat<Real> weights_from_lse(const Mat<Real>& z, const Vec<Real>& lse) {
  using std::exp;
  Mat<Real> p(z.rows(), z.cols());
  for (int64_t r = 0; r < z.rows(); ++r)
    for (int64_t j = 0; j < z.cols(); ++j) p(r, j) = exp(z(r, j) - lse(r));
  return p;
}

// dS = P ∘ (dP − D) for the G rows of one (query, KV head) over its key set, [G, |S|]: the
// gradient of the scaled scores (the scale is applied once, to dq and dk).
template <class Real>
Mat<Real> scores_grad(const Mat<Real>& p, const Mat<Real>& dp, const Vec<Real>& D) {
  return p.cwiseProduct(dp - D.replicate(1, p.cols()));
}

// Query side: dq = s · dS K_S [G, d_k] from dS as the kernel stores it. An empty key set gives
// exactly 0.
template <class Real, class Round>
Mat<Real> attend_backward_q(const Mat<Real>& ds, const Mat<Real>& k,
                            const std::vector<Segment>& segs, const Real& scale,
                            const Round& round) {
  if (ds.cols() == 0) return Mat<Real>::Zero(ds.rows(), k.cols());
  Mat<Real> dq = segs.size() == 1 ? round.mul(ds, k.middleRows(segs[0].begin, segs[0].len))
                                  : round.mul(ds, gather_rows(k, segs));
  return dq * scale;
}

// Key side, for a range of n keys and a batch of R query rows (q [R, d_k], d_o [R, d_v]) whose
// weights and score gradients over those keys, as the query side stored them, are p and ds
// [R, n] (0 where a row does not attend a key). Accumulates dk += dS^T q (without the scale: the
// caller applies it once) and dv += P^T dO.
template <class Real, class Round>
void attend_backward_kv(const Mat<Real>& p, const Mat<Real>& ds, const Mat<Real>& q,
                        const Mat<Real>& d_o, const Round& round, Mat<Real>& dk, Mat<Real>& dv) {
  dv += round.mul(p.transpose(), d_o);
  dk += round.mul(ds.transpose(), q);
}

}  // namespace nsa::ref::detail
