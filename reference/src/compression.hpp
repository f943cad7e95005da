// Compression branch semantics: the compression function phi, block coverage and visibility.
//   block i covers keys [i*d, i*d + l);  N_c(L) = floor((L - l)/d) + 1 for L >= l, else 0
//   inclusive: query t sees block i iff i*d + l - 1 <= t  -> N_c(t + 1) visible blocks
//   strict:    query t sees block i iff i*d + l - 1 <  t  -> N_c(t) visible blocks
#pragma once

#include <cmath>

#include "nsa/ref/config.hpp"
#include "real.hpp"

namespace nsa::ref::detail {

inline int64_t visible_cmp_blocks(const ValidConfig& vc, int64_t t) {
  const int64_t reach = vc.cfg.cmp_visibility == CmpVisibility::inclusive ? t + 1 : t;
  return vc.num_cmp_blocks(reach);
}

template <class Real>
Real activate(const Real& x, Activation act) {
  using std::exp;
  if (act == Activation::relu) return x > Real(0) ? x : Real(0);
  return x / (Real(1) + exp(-x));  // silu
}

// One KV head's parameters of phi, widened to Real.
template <class Real>
struct PhiHead {
  Mat<Real> pos;  // [l, D]
  Mat<Real> w1;   // [l*D, D] (linear) or [l*D, m] (mlp)
  Vec<Real> b1;   // [m]
  Mat<Real> w2;   // [m, D]
  Vec<Real> b2;   // [D]
};

template <class Real>
PhiHead<Real> phi_head(const ValidConfig& vc, const PhiParams& p, int64_t g, int64_t dim) {
  const auto& c = vc.cfg;
  const int64_t l = c.cmp_block, m = c.phi_hidden, in = l * dim;
  auto load = [](const std::vector<double>& src, int64_t offset, int64_t rows, int64_t cols) {
    Mat<Real> out(rows, cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < cols; ++k) out(r, k) = Real(src[offset + r * cols + k]);
    return out;
  };
  PhiHead<Real> h;
  if (c.phi == Phi::mean) return h;
  h.pos = load(p.pos, g * l * dim, l, dim);
  if (c.phi == Phi::linear) {
    h.w1 = load(p.w1, g * in * dim, in, dim);
  } else {
    h.w1 = load(p.w1, g * in * m, in, m);
    h.b1 = load(p.b1, g * m, m, 1);
    h.w2 = load(p.w2, g * m * dim, m, dim);
    h.b2 = load(p.b2, g * dim, dim, 1);
  }
  return h;
}

// phi applied to the l x D block starting at row `begin` of x; returns a 1 x D row. Its sums
// and products are reduced as the arithmetic policy orders them.
// vec() is token-major: element [j, c] sits at j*D + c.
template <class Real, class Round>
Mat<Real> compress_block(const ValidConfig& vc, const PhiHead<Real>& ph, const Mat<Real>& x,
                         int64_t begin, const Round& round) {
  const auto& c = vc.cfg;
  const int64_t l = c.cmp_block, dim = x.cols();
  if (c.phi == Phi::mean) {
    Mat<Real> acc = round.colsum(x.middleRows(begin, l));
    return acc / Real(l);
  }
  Mat<Real> blk = x.middleRows(begin, l) + ph.pos;
  const Eigen::Map<const Mat<Real>> flat(blk.data(), 1, l * dim);  // row-major: token-major vec
  if (c.phi == Phi::linear) return round.mul(flat, ph.w1);
  Mat<Real> hidden = round.mul(flat, ph.w1) + ph.b1.transpose();
  hidden = hidden.unaryExpr([&](const Real& v) { return activate(v, c.phi_act); });
  return round.mul(hidden, ph.w2) + ph.b2.transpose();
}

// All compressed blocks of one sequence's K (or V) of one KV head: [N_c(t_k), D], each row
// rounded by the storage policy (a kernel keeps compressed K/V in the input dtype).
template <class Real, class Round>
Mat<Real> compress_all(const ValidConfig& vc, const PhiHead<Real>& ph, const Mat<Real>& x,
                       const Round& round) {
  const int64_t nc = vc.num_cmp_blocks(x.rows());
  Mat<Real> out(nc, x.cols());
  for (int64_t i = 0; i < nc; ++i)
    out.row(i) = compress_block(vc, ph, x, i * vc.cfg.cmp_stride, round);
  return out.unaryExpr([&](const Real& v) { return round.store(v); });
}

}  // namespace nsa::ref::detail
