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

// --- backward ----------------------------------------------------------------------------
// The gradient of each compressed block flows back through phi into the block's l tokens (a
// token covered by several overlapping blocks receives from each) and into phi's parameters.
//   mean:   dX[i*d + j] += dy_i / l
//   linear: y = vec(X + P) W            ->  dW += vec(X + P)^T dy,  d vec(X) = d vec(P) = dy W^T
//   mlp:    h = vec(X + P) W1 + b1, a = act(h), y = a W2 + b2
//           ->  db2 += dy, dW2 += a^T dy, dh = (dy W2^T) ∘ act'(h), db1 += dh,
//               dW1 += vec(X + P)^T dh,  d vec(X) = d vec(P) = dh W1^T
// relu'(0) is taken as 0.

// Gradients of one KV head's phi parameters, shaped as PhiHead.
template <class Real>
struct PhiHeadGrad {
  Mat<Real> pos, w1, w2;
  Vec<Real> b1, b2;
};

template <class Real>
PhiHeadGrad<Real> zero_phi_grad(const PhiHead<Real>& ph) {
  PhiHeadGrad<Real> g;
  g.pos = Mat<Real>::Zero(ph.pos.rows(), ph.pos.cols());
  g.w1 = Mat<Real>::Zero(ph.w1.rows(), ph.w1.cols());
  g.w2 = Mat<Real>::Zero(ph.w2.rows(), ph.w2.cols());
  g.b1 = Vec<Real>::Zero(ph.b1.size());
  g.b2 = Vec<Real>::Zero(ph.b2.size());
  return g;
}

template <class Real>
void add_phi_grad(PhiHeadGrad<Real>& acc, const PhiHeadGrad<Real>& g) {
  acc.pos += g.pos;
  acc.w1 += g.w1;
  acc.w2 += g.w2;
  acc.b1 += g.b1;
  acc.b2 += g.b2;
}

template <class Real>
Real activate_grad(const Real& x, Activation act) {
  using std::exp;
  if (act == Activation::relu) return x > Real(0) ? Real(1) : Real(0);
  const Real sig = Real(1) / (Real(1) + exp(-x));
  return sig * (Real(1) + x * (Real(1) - sig));  // d/dx of x * sigmoid(x)
}

// Backward of compress_all for one sequence of one KV head: dy [N_c, D] holds the gradient of
// each compressed block. Returns dX [tokens, D]; adds the parameter gradients to `grad`. Products
// and sums over blocks are reduced as the arithmetic policy orders them.
template <class Real, class Round>
Mat<Real> compress_all_backward(const ValidConfig& vc, const PhiHead<Real>& ph, const Mat<Real>& x,
                                const Mat<Real>& dy, PhiHeadGrad<Real>& grad, const Round& round) {
  const auto& c = vc.cfg;
  const int64_t l = c.cmp_block, d = c.cmp_stride, dim = x.cols(), nc = dy.rows();
  Mat<Real> dx = Mat<Real>::Zero(x.rows(), dim);
  if (nc == 0) return dx;
  if (c.phi == Phi::mean) {
    for (int64_t i = 0; i < nc; ++i) {
      const Mat<Real> share = dy.row(i) / Real(l);
      for (int64_t j = 0; j < l; ++j) dx.row(i * d + j) += share;
    }
    return dx;
  }
  // One row per block: vec(X_i + P), token-major.
  Mat<Real> flat(nc, l * dim);
  for (int64_t i = 0; i < nc; ++i) {
    const Mat<Real> blk = x.middleRows(i * d, l) + ph.pos;
    flat.row(i) = Eigen::Map<const Mat<Real>>(blk.data(), 1, l * dim);
  }
  Mat<Real> dflat;
  if (c.phi == Phi::linear) {
    grad.w1 += round.mul(flat.transpose(), dy);
    dflat = round.mul_nt(dy, ph.w1);
  } else {
    Mat<Real> h = round.mul(flat, ph.w1);
    h.rowwise() += ph.b1.transpose();
    const Mat<Real> a = h.unaryExpr([&](const Real& v) { return activate(v, c.phi_act); });
    const Mat<Real> act_grad =
        h.unaryExpr([&](const Real& v) { return activate_grad(v, c.phi_act); });
    grad.b2 += round.colsum(dy).transpose();
    grad.w2 += round.mul(a.transpose(), dy);
    const Mat<Real> dh = round.mul_nt(dy, ph.w2).cwiseProduct(act_grad);
    grad.b1 += round.colsum(dh).transpose();
    grad.w1 += round.mul(flat.transpose(), dh);
    dflat = round.mul_nt(dh, ph.w1);
  }
  for (int64_t i = 0; i < nc; ++i) {
    const Eigen::Map<const Mat<Real>> dblk(dflat.row(i).data(), l, dim);
    grad.pos += dblk;
    dx.middleRows(i * d, l) += dblk;
  }
  return dx;
}

}  // namespace nsa::ref::detail
