// The dense oracle's backward (see dense_oracle.hpp), written from docs/semantics.md section 10:
// per sequence, KV head and query head, each branch is one masked softmax over a full T_q x N
// matrix (the same multiplicity masks as dense_forward), differentiated as matrix formulas
//   P = softmax weights (a key of multiplicity m counts m times),  dO_b = diag(g_b) dO,
//   dP = dO_b V^T,  D = rowsum(P ∘ dP),  dS = P ∘ (dP - D 1^T),
//   dQ += s dS K,   dK += s dS^T Q,   dV += P^T dO_b,   dg_b = rowsum(dO ∘ O_b),
// and the compressed keys' gradients taken back through phi loop by loop.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "dense_oracle.hpp"

namespace nsa::oracle {
namespace {

using ref::Config;
using ref::PhiParams;

// The same parameters with every value replaced by its absolute value.
PhiParams absolute(const PhiParams& p) {
  PhiParams a = p;
  for (auto* t : {&a.pos, &a.w1, &a.b1, &a.w2, &a.b2})
    for (double& x : *t) x = std::abs(x);
  return a;
}

// Zero parameter gradients shaped as p (empty for mean phi, which has no parameters).
PhiParams zero_like(const PhiParams& p) {
  PhiParams z;
  z.pos.assign(p.pos.size(), 0.0);
  z.w1.assign(p.w1.size(), 0.0);
  z.b1.assign(p.b1.size(), 0.0);
  z.w2.assign(p.w2.size(), 0.0);
  z.b2.assign(p.b2.size(), 0.0);
  return z;
}

double act_grad(ref::Activation act, double h) {
  if (act == ref::Activation::relu) return h > 0 ? 1.0 : 0.0;  // relu'(0) = 0
  const double sig = 1.0 / (1.0 + std::exp(-h));
  return sig + h * sig * (1.0 - sig);  // d/dh of h * sigmoid(h)
}

// The gradient of compress() for one sequence of one KV head: dy [N_c, D] is the gradient of each
// compressed block. Returns dX [tokens, D] (a token gets a share from every block covering it) and
// adds the parameter gradients of head g to *grad. magnitude: the chain rule on absolute values
// (dy is then a magnitude too): flat = |x| + |P|, |W|, |W1|, |W2|, |b1|, and act' replaced by
// |act'(h)| plus, for silu, the magnitude of h (silu' moves by up to half of an error of h).
Matrix compress_backward(const Config& c, const PhiParams& prm, int64_t g, const Matrix& x,
                         const Matrix& dy, PhiParams& grad, bool magnitude) {
  const int64_t l = c.cmp_block, dim = x.cols(), m = c.phi_hidden, nc = dy.rows();
  const int64_t in = l * dim;
  auto val = [&](double v) { return magnitude ? std::abs(v) : v; };
  Matrix dx = Matrix::Zero(x.rows(), dim);
  for (int64_t i = 0; i < nc; ++i) {
    const int64_t first = i * c.cmp_stride;
    if (c.phi == ref::Phi::mean) {
      for (int64_t j = 0; j < l; ++j)
        for (int64_t e = 0; e < dim; ++e) dx(first + j, e) += dy(i, e) / static_cast<double>(l);
      continue;
    }
    Eigen::VectorXd flat(in), dflat = Eigen::VectorXd::Zero(in);
    for (int64_t j = 0; j < l; ++j)
      for (int64_t e = 0; e < dim; ++e) {
        const double p = prm.pos[(g * l + j) * dim + e];
        flat(j * dim + e) =
            magnitude ? std::abs(x(first + j, e)) + std::abs(p) : x(first + j, e) + p;
      }
    if (c.phi == ref::Phi::linear) {
      // y_e = sum_r flat_r W[r, e]
      for (int64_t r = 0; r < in; ++r)
        for (int64_t e = 0; e < dim; ++e) {
          const double w = prm.w1[(g * in + r) * dim + e];
          grad.w1[(g * in + r) * dim + e] += flat(r) * dy(i, e);
          dflat(r) += val(w) * dy(i, e);
        }
    } else {
      // h_k = b1_k + sum_r flat_r W1[r, k];  a_k = act(h_k);  y_e = b2_e + sum_k a_k W2[k, e]
      Eigen::VectorXd h(m), h_real(m), a(m), dh(m);
      for (int64_t k = 0; k < m; ++k) {
        double s = val(prm.b1[g * m + k]), s_real = prm.b1[g * m + k];
        for (int64_t r = 0; r < in; ++r) {
          const double w = prm.w1[(g * in + r) * m + k];
          s += flat(r) * val(w);
          if (magnitude) {
            const int64_t j = r / dim, e = r % dim;
            s_real += (x(first + j, e) + prm.pos[(g * l + j) * dim + e]) * w;
          }
        }
        h(k) = s;
        h_real(k) = magnitude ? s_real : s;
        // |act(h)| <= |h| for relu and silu: the magnitude of a is that of h.
        a(k) = magnitude                            ? s
               : c.phi_act == ref::Activation::relu ? std::max(s, 0.0)
                                                    : s / (1.0 + std::exp(-s));
      }
      for (int64_t k = 0; k < m; ++k) {
        double da = 0;
        for (int64_t e = 0; e < dim; ++e) da += val(prm.w2[(g * m + k) * dim + e]) * dy(i, e);
        const double slope = act_grad(c.phi_act, h_real(k));
        dh(k) = magnitude
                    ? da * (std::abs(slope) + (c.phi_act == ref::Activation::silu ? h(k) : 0.0))
                    : da * slope;
      }
      for (int64_t e = 0; e < dim; ++e) grad.b2[g * dim + e] += dy(i, e);
      for (int64_t k = 0; k < m; ++k) {
        for (int64_t e = 0; e < dim; ++e) grad.w2[(g * m + k) * dim + e] += a(k) * dy(i, e);
        grad.b1[g * m + k] += dh(k);
      }
      for (int64_t r = 0; r < in; ++r)
        for (int64_t k = 0; k < m; ++k) {
          grad.w1[(g * in + r) * m + k] += flat(r) * dh(k);
          dflat(r) += val(prm.w1[(g * in + r) * m + k]) * dh(k);
        }
    }
    // vec(X + P): the block's tokens and the position table get the same gradient.
    for (int64_t j = 0; j < l; ++j)
      for (int64_t e = 0; e < dim; ++e) {
        grad.pos[(g * l + j) * dim + e] += dflat(j * dim + e);
        dx(first + j, e) += dflat(j * dim + e);
      }
  }
  return dx;
}

// Gradients of one branch of one sequence and KV head with respect to its keys and values
// ([N, d_k], [N, d_v]; for cmp the compressed blocks), and their magnitudes.
struct KeyGrads {
  Matrix dk, dv, dk_mag, dv_mag;
};

// Writes rows [row0, row0 + rows) of one head of a [tokens, heads, dim] tensor.
void add_head_rows(std::vector<double>& dst, const Matrix& m, int64_t row0, int64_t heads,
                   int64_t head) {
  const int64_t dim = m.cols();
  for (int64_t r = 0; r < m.rows(); ++r)
    for (int64_t e = 0; e < dim; ++e) dst[((row0 + r) * heads + head) * dim + e] += m(r, e);
}

void zero_gradients(const ref::ValidConfig& vc, const ref::Inputs& in, ref::Gradients& g) {
  const Config& c = vc.cfg;
  for (int64_t r = 0; r < vc.total_q; ++r) g.rows.push_back(r);
  for (int64_t k = 0; k < vc.total_k; ++k) g.keys.push_back(k);
  g.dq.assign(static_cast<std::size_t>(vc.total_q * c.h_q * c.d_k), 0.0);
  for (int b = 0; b < 3; ++b) {
    g.dg[b].assign(static_cast<std::size_t>(vc.total_q * c.h_q), 0.0);
    g.dk[b].assign(static_cast<std::size_t>(vc.total_k * c.h_kv * c.d_k), 0.0);
    g.dv[b].assign(static_cast<std::size_t>(vc.total_k * c.h_kv * c.d_v), 0.0);
  }
  if (c.shared_kv) {
    g.dk_shared.assign(g.dk[0].size(), 0.0);
    g.dv_shared.assign(g.dv[0].size(), 0.0);
  }
  g.dphi_k = zero_like(in.phi_k);
  g.dphi_v = zero_like(in.phi_v);
}

}  // namespace

DenseGradients dense_backward(const ref::ValidConfig& vc, const ref::Inputs& in,
                              const std::vector<double>& d_o,
                              const std::vector<int32_t>& selection) {
  const Config& c = vc.cfg;
  const int64_t H = c.h_q, Hkv = c.h_kv, G = H / Hkv, n = c.top_n, dk = c.d_k, dv = c.d_v;
  const double s = vc.scale;
  DenseGradients out;
  zero_gradients(vc, in, out.grad);
  zero_gradients(vc, in, out.magnitude);
  // The selection is a constant of the backward: the forward's index lists (given or computed).
  const DenseResult fwd = dense_forward(vc, in);
  const int32_t* lists = c.given_indices     ? in.indices.data()
                         : selection.empty() ? fwd.indices.data()
                                             : selection.data();
  const PhiParams abs_k = absolute(in.phi_k), abs_v = absolute(in.phi_v);

  for (const auto& seq : vc.seqs) {
    const int64_t tq = seq.t_q, tk = seq.t_k;
    if (tq == 0) continue;
    const int64_t nc = count_cmp_blocks(c, tk);
    for (int64_t g = 0; g < Hkv; ++g) {
      // Each enabled branch as (keys, values, their magnitudes, multiplicity mask).
      std::array<Matrix, 3> K, V, Ka, Va, mult;
      for (int b = 0; b < 3; ++b) {
        if (!c.enabled(static_cast<ref::Branch>(b))) continue;
        const Matrix k = head_rows(in.k[b], seq.k_begin, tk, Hkv, g, dk);
        const Matrix v = head_rows(in.v[b], seq.k_begin, tk, Hkv, g, dv);
        if (b == 0) {
          K[b] = compress(c, in.phi_k, g, k);
          V[b] = compress(c, in.phi_v, g, v);
          Ka[b] = compress(c, abs_k, g, k.cwiseAbs());
          Va[b] = compress(c, abs_v, g, v.cwiseAbs());
          mult[b] = cmp_visibility(c, tq, tk, nc);
        } else {
          K[b] = k;
          V[b] = v;
          Ka[b] = k.cwiseAbs();
          Va[b] = v.cwiseAbs();
          mult[b] = b == 1 ? selection_multiplicity(c, tq, tk, lists + (seq.q_begin * Hkv + g) * n,
                                                    Hkv * n, !c.given_indices)
                           : window_mask(c, tq, tk);
        }
      }
      std::array<KeyGrads, 3> kg;
      for (int b = 0; b < 3; ++b) {
        if (!c.enabled(static_cast<ref::Branch>(b))) continue;
        const int64_t N = K[b].rows();
        kg[b] = {Matrix::Zero(N, dk), Matrix::Zero(N, dv), Matrix::Zero(N, dk),
                 Matrix::Zero(N, dv)};
      }
      for (int64_t hl = 0; hl < G; ++hl) {
        const int64_t h = g * G + hl;
        const Matrix Q = head_rows(in.q, seq.q_begin, tq, H, h, dk), Qa = Q.cwiseAbs();
        const Matrix dO = head_rows(d_o, seq.q_begin, tq, H, h, dv);
        Matrix dq = Matrix::Zero(tq, dk), dq_mag = Matrix::Zero(tq, dk);
        for (int b = 0; b < 3; ++b) {
          if (!c.enabled(static_cast<ref::Branch>(b))) continue;
          const Softmax sm = masked_softmax(s * Q * K[b].transpose(), mult[b], V[b]);
          const Matrix& P = sm.p;
          Eigen::VectorXd gate(tq), z_mag = Eigen::VectorXd::Zero(tq);
          for (int64_t i = 0; i < tq; ++i) gate(i) = in.gate[b][(seq.q_begin + i) * H + h];
          const Matrix Z_abs = s * Qa * Ka[b].transpose();
          for (int64_t i = 0; i < tq; ++i)
            for (int64_t j = 0; j < Z_abs.cols(); ++j)
              if (mult[b](i, j) > 0) z_mag(i) = std::max(z_mag(i), Z_abs(i, j));
          // The weights as magnitudes: an error of a score moves a weight by that much relative.
          const Matrix Pm = (Eigen::VectorXd::Ones(tq) + z_mag).asDiagonal() * P;

          const Matrix dOb = gate.asDiagonal() * dO, dOb_abs = dOb.cwiseAbs();
          const Matrix dP = dOb * V[b].transpose();
          const Eigen::VectorXd D = P.cwiseProduct(dP).rowwise().sum();
          const Matrix dS = P.cwiseProduct(dP - D * Eigen::RowVectorXd::Ones(P.cols()));
          const Matrix dP_abs = dOb_abs * Va[b].transpose();
          const Eigen::VectorXd D_abs = Pm.cwiseProduct(dP_abs).rowwise().sum();
          const Matrix dS_abs =
              Pm.cwiseProduct(dP_abs + D_abs * Eigen::RowVectorXd::Ones(P.cols()));

          dq += s * dS * K[b];
          dq_mag += s * dS_abs * Ka[b];
          kg[b].dk += s * dS.transpose() * Q;
          kg[b].dk_mag += s * dS_abs.transpose() * Qa;
          kg[b].dv += P.transpose() * dOb;
          kg[b].dv_mag += Pm.transpose() * dOb_abs;

          const Matrix O_mag = Pm * Va[b];
          for (int64_t i = 0; i < tq; ++i) {
            const int64_t at = (seq.q_begin + i) * H + h;
            out.grad.dg[b][at] = dO.row(i).dot(sm.o.row(i));
            out.magnitude.dg[b][at] = dO.row(i).cwiseAbs().dot(O_mag.row(i));
          }
        }
        add_head_rows(out.grad.dq, dq, seq.q_begin, H, h);
        add_head_rows(out.magnitude.dq, dq_mag, seq.q_begin, H, h);
      }
      // Back to the branches' own K/V: through phi for the compressed blocks.
      for (int b = 0; b < 3; ++b) {
        if (!c.enabled(static_cast<ref::Branch>(b))) continue;
        Matrix dk_tok = kg[b].dk, dv_tok = kg[b].dv, dk_tok_mag = kg[b].dk_mag,
               dv_tok_mag = kg[b].dv_mag;
        if (b == 0) {
          const Matrix k = head_rows(in.k[0], seq.k_begin, tk, Hkv, g, dk);
          const Matrix v = head_rows(in.v[0], seq.k_begin, tk, Hkv, g, dv);
          dk_tok = compress_backward(c, in.phi_k, g, k, kg[0].dk, out.grad.dphi_k, false);
          dv_tok = compress_backward(c, in.phi_v, g, v, kg[0].dv, out.grad.dphi_v, false);
          dk_tok_mag =
              compress_backward(c, in.phi_k, g, k, kg[0].dk_mag, out.magnitude.dphi_k, true);
          dv_tok_mag =
              compress_backward(c, in.phi_v, g, v, kg[0].dv_mag, out.magnitude.dphi_v, true);
        }
        add_head_rows(out.grad.dk[b], dk_tok, seq.k_begin, Hkv, g);
        add_head_rows(out.grad.dv[b], dv_tok, seq.k_begin, Hkv, g);
        add_head_rows(out.magnitude.dk[b], dk_tok_mag, seq.k_begin, Hkv, g);
        add_head_rows(out.magnitude.dv[b], dv_tok_mag, seq.k_begin, Hkv, g);
      }
    }
  }
  if (c.shared_kv)
    for (auto* gr : {&out.grad, &out.magnitude})
      for (int b = 0; b < 3; ++b) {
        for (std::size_t i = 0; i < gr->dk_shared.size(); ++i) gr->dk_shared[i] += gr->dk[b][i];
        for (std::size_t i = 0; i < gr->dv_shared.size(); ++i) gr->dv_shared[i] += gr->dv[b][i];
      }
  return out;
}

std::string tie_aware_selection(const ref::ValidConfig& vc, const ref::Inputs& in,
                                const ref::Outputs& forward, double tie_tol,
                                std::vector<int32_t>& selection) {
  selection.clear();
  const Config& c = vc.cfg;
  if (!c.enable_slc || c.given_indices) return "";
  const DenseResult own = dense_forward(vc, in);
  if (own.indices == forward.indices) return "";
  double top = 0;
  for (double x : forward.scores)
    if (std::isfinite(x)) top = std::max(top, std::abs(x));
  for (std::size_t k = 0; k < forward.score_gap.size(); ++k) {
    const auto a = forward.indices.begin() + static_cast<std::ptrdiff_t>(k) * c.top_n;
    if (std::equal(a, a + c.top_n, own.indices.begin() + (a - forward.indices.begin()))) continue;
    if (forward.score_gap[k] > tie_tol * top) {
      std::ostringstream o;
      o << "selection of (row, KV head) " << k << " differs from the oracle's at a score gap "
        << forward.score_gap[k] << " (tie tolerance " << tie_tol * top << ")";
      return o.str();
    }
  }
  selection = forward.indices;
  return "";
}

double grad_rel_tol(const ref::ValidConfig& vc) {
  const Config& c = vc.cfg;
  const int64_t G = c.h_q / c.h_kv;
  // A block listed up to n times (multiset) is that many terms of its keys' sums.
  const bool multiset = c.given_indices && c.index_policy == ref::IndexPolicy::multiset;
  const int64_t listings = multiset ? c.top_n : 1;
  const int64_t keys = std::max(vc.max_t_k, c.top_n * c.slc_block * listings);
  int64_t blocks = 0;
  for (const auto& seq : vc.seqs) blocks += count_cmp_blocks(c, seq.t_k);
  const int64_t D = std::max(c.d_k, c.d_v);
  const double K =
      static_cast<double>(G * vc.max_t_k * listings + keys + c.d_k + c.d_v + c.cmp_block * D +
                          c.phi_hidden + blocks + c.cmp_block / c.cmp_stride + 8);
  return 4.0 * K * std::ldexp(1.0, -53);
}

std::string diff(const ref::Gradients& got, const DenseGradients& want, double rel_tol) {
  const ref::Gradients& w = want.grad;
  const ref::Gradients& m = want.magnitude;
  std::ostringstream o;
  o.precision(17);
  if (got.rows != w.rows || got.keys != w.keys)
    return "rows or keys: not every row and key in order";
  struct Entry {
    std::string name;
    const std::vector<double>*a, *b, *mag;
  };
  std::vector<Entry> list{{"dq", &got.dq, &w.dq, &m.dq}};
  const char* branch[3] = {"cmp", "slc", "win"};
  for (int b = 0; b < 3; ++b) {
    const std::string sfx = branch[b];
    list.push_back({"dk_" + sfx, &got.dk[b], &w.dk[b], &m.dk[b]});
    list.push_back({"dv_" + sfx, &got.dv[b], &w.dv[b], &m.dv[b]});
    list.push_back({"dg_" + sfx, &got.dg[b], &w.dg[b], &m.dg[b]});
  }
  list.push_back({"dk_shared", &got.dk_shared, &w.dk_shared, &m.dk_shared});
  list.push_back({"dv_shared", &got.dv_shared, &w.dv_shared, &m.dv_shared});
  for (const auto& [t, gp, wp, mp] : {std::tuple{"k", &got.dphi_k, &w.dphi_k, &m.dphi_k},
                                      std::tuple{"v", &got.dphi_v, &w.dphi_v, &m.dphi_v}}) {
    const std::string pre = std::string("dphi_") + t + "_";
    list.push_back({pre + "pos", &gp->pos, &wp->pos, &mp->pos});
    list.push_back({pre + "w1", &gp->w1, &wp->w1, &mp->w1});
    list.push_back({pre + "b1", &gp->b1, &wp->b1, &mp->b1});
    list.push_back({pre + "w2", &gp->w2, &wp->w2, &mp->w2});
    list.push_back({pre + "b2", &gp->b2, &wp->b2, &mp->b2});
  }
  for (const auto& e : list) {
    if (e.a->size() != e.b->size()) {
      o << e.name << ": size " << e.a->size() << " != oracle " << e.b->size();
      return o.str();
    }
    double scale = 0;
    for (double x : *e.mag) scale = std::max(scale, x);
    const double bound = rel_tol * scale;
    for (std::size_t i = 0; i < e.a->size(); ++i) {
      const double a = (*e.a)[i], b = (*e.b)[i];
      if (std::abs(a - b) <= bound) continue;  // false for NaN
      o << e.name << "[" << i << "]: reference " << a << ", oracle " << b << ", |diff| "
        << std::abs(a - b) << " > bound " << bound << " (" << rel_tol << " x magnitude " << scale
        << ")";
      return o.str();
    }
  }
  return "";
}

}  // namespace nsa::oracle
