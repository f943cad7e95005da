// The dense oracle (see dense_oracle.hpp). Deliberately naive: full matrices, explicit masks,
// loops that follow the wording of the semantics rather than any clever indexing.
#include "dense_oracle.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace nsa::oracle {
using ref::Config;

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

// Rows [row0, row0 + rows) of one head of a [tokens, heads, dim] tensor.
Matrix head_rows(const std::vector<double>& x, int64_t row0, int64_t rows, int64_t heads,
                 int64_t head, int64_t dim) {
  Matrix m(rows, dim);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t e = 0; e < dim; ++e) m(r, e) = x[((row0 + r) * heads + head) * dim + e];
  return m;
}

// phi applied to every complete block of x (one KV head, dim = x.cols()).
Matrix compress(const Config& c, const ref::PhiParams& prm, int64_t g, const Matrix& x) {
  const int64_t l = c.cmp_block, dim = x.cols(), m = c.phi_hidden;
  const int64_t nc = count_cmp_blocks(c, x.rows());
  Matrix out(nc, dim);
  for (int64_t i = 0; i < nc; ++i) {
    const int64_t first = i * c.cmp_stride;
    if (c.phi == ref::Phi::mean) {
      for (int64_t e = 0; e < dim; ++e) {
        double s = 0;
        for (int64_t j = 0; j < l; ++j) s += x(first + j, e);
        out(i, e) = s / static_cast<double>(l);
      }
      continue;
    }
    // vec(X + P), token-major: element [j, e] at j * dim + e.
    Eigen::VectorXd flat(l * dim);
    for (int64_t j = 0; j < l; ++j)
      for (int64_t e = 0; e < dim; ++e)
        flat(j * dim + e) = x(first + j, e) + prm.pos[(g * l + j) * dim + e];
    if (c.phi == ref::Phi::linear) {
      for (int64_t e = 0; e < dim; ++e) {
        double s = 0;
        for (int64_t r = 0; r < l * dim; ++r) s += flat(r) * prm.w1[(g * l * dim + r) * dim + e];
        out(i, e) = s;
      }
      continue;
    }
    Eigen::VectorXd hidden(m);
    for (int64_t k = 0; k < m; ++k) {
      double s = prm.b1[g * m + k];
      for (int64_t r = 0; r < l * dim; ++r) s += flat(r) * prm.w1[(g * l * dim + r) * m + k];
      hidden(k) = c.phi_act == ref::Activation::relu ? std::max(s, 0.0) : s / (1.0 + std::exp(-s));
    }
    for (int64_t e = 0; e < dim; ++e) {
      double s = prm.b2[g * dim + e];
      for (int64_t k = 0; k < m; ++k) s += hidden(k) * prm.w2[(g * m + k) * dim + e];
      out(i, e) = s;
    }
  }
  return out;
}

int64_t count_slc_blocks(const Config& c, int64_t len) {
  int64_t n = 0;
  while (n * c.slc_block < len) ++n;
  return n;
}

namespace {

// The block list an index row stands for, as multiplicities per block id.
std::vector<int> listed_blocks(const Config& c, int64_t t, const int32_t* row, bool computed,
                               int64_t n_slc) {
  std::vector<int> count(static_cast<std::size_t>(n_slc), 0);
  const int64_t cur = t / c.slc_block;
  for (int64_t s = 0; s < c.top_n; ++s) {
    int64_t j = row[s];
    if (!computed && c.index_policy == ref::IndexPolicy::negative_to_zero && j < 0) j = 0;
    if (j < 0 || j > cur) continue;  // padding, or invalid under the lenient policies
    int& k = count[static_cast<std::size_t>(j)];
    const bool multiset = !computed && c.index_policy == ref::IndexPolicy::multiset;
    k = multiset ? k + 1 : 1;
  }
  return count;
}

}  // namespace

Matrix selection_multiplicity(const Config& c, int64_t t_q, int64_t t_k, const int32_t* lists,
                              int64_t stride, bool computed) {
  const int64_t n_slc = count_slc_blocks(c, t_k);
  Matrix mult = Matrix::Zero(t_q, t_k);
  for (int64_t i = 0; i < t_q; ++i) {
    const int64_t t = t_k - t_q + i;
    const auto count = listed_blocks(c, t, lists + i * stride, computed, n_slc);
    for (int64_t u = 0; u < t_k; ++u) {
      if (c.slc_causal == ref::SlcCausal::token && u > t) continue;
      mult(i, u) = count[static_cast<std::size_t>(u / c.slc_block)];
    }
  }
  return mult;
}

int64_t count_cmp_blocks(const Config& c, int64_t len) {
  int64_t n = 0;
  while (n * c.cmp_stride + c.cmp_block <= len) ++n;
  return n;
}

Matrix cmp_visibility(const Config& c, int64_t t_q, int64_t t_k, int64_t n_cmp) {
  Matrix vis = Matrix::Zero(t_q, n_cmp);
  for (int64_t i = 0; i < t_q; ++i) {
    const int64_t t = t_k - t_q + i;
    for (int64_t b = 0; b < n_cmp; ++b) {
      const int64_t last = b * c.cmp_stride + c.cmp_block - 1;
      const bool seen = c.cmp_visibility == ref::CmpVisibility::inclusive ? last <= t : last < t;
      vis(i, b) = seen ? 1.0 : 0.0;
    }
  }
  return vis;
}

Matrix mapping_matrix(const Config& c, int64_t n_cmp, int64_t n_slc) {
  Matrix a = Matrix::Zero(n_cmp, n_slc);
  const int64_t d = c.cmp_stride;
  for (int64_t i = 0; i < n_cmp; ++i) {
    for (int64_t j = 0; j < n_slc; ++j) {
      switch (c.score_mapping) {
        case ref::ScoreMapping::overlap: {
          // Count the stride-aligned d-token chunks that both blocks cover.
          int64_t shared = 0;
          for (int64_t chunk = 0; chunk * d < (j + 1) * c.slc_block; ++chunk) {
            const int64_t lo = chunk * d, hi = lo + d;
            const bool in_cmp = lo >= i * d && hi <= i * d + c.cmp_block;
            const bool in_slc = lo >= j * c.slc_block && hi <= (j + 1) * c.slc_block;
            shared += in_cmp && in_slc;
          }
          a(i, j) = static_cast<double>(shared);
          break;
        }
        case ref::ScoreMapping::paper_eq9: {
          // The printed formula: p_slc[j] = sum_{m < l'/d} sum_{n < l/d} p_cmp[(l'/d) j - m - n].
          int64_t hits = 0;
          for (int64_t m = 0; m < c.slc_block / d; ++m)
            for (int64_t n = 0; n < c.cmp_block / d; ++n)
              hits += (c.slc_block / d) * j - m - n == i;
          a(i, j) = static_cast<double>(hits);
          break;
        }
        case ref::ScoreMapping::identity:
          a(i, j) = i == j ? 1.0 : 0.0;
          break;
      }
    }
  }
  return a;
}

Matrix window_mask(const Config& c, int64_t t_q, int64_t t_k) {
  Matrix m = Matrix::Zero(t_q, t_k);
  const int64_t span = c.window_keys == ref::WindowKeys::w ? c.window : c.window + 1;
  for (int64_t i = 0; i < t_q; ++i) {
    const int64_t t = t_k - t_q + i;
    for (int64_t u = 0; u <= t; ++u) m(i, u) = t - u < span ? 1.0 : 0.0;
  }
  return m;
}

std::vector<int64_t> forced_blocks(const Config& c, int64_t t) {
  const int64_t cur = t / c.slc_block;
  std::vector<int64_t> f;
  for (int64_t j = 0; j <= cur; ++j) {
    const bool initial = j < c.n_init;
    const bool local = j >= cur - c.n_local + 1;
    if (initial || local) f.push_back(j);
  }
  return f;
}

std::vector<int32_t> pick_top_n(const Config& c, int64_t t, const std::vector<double>& P,
                                double* gap) {
  const int64_t n_cand = static_cast<int64_t>(P.size());
  std::vector<char> taken(static_cast<std::size_t>(n_cand), 0), is_free(taken.size(), 1);
  int64_t count = 0;
  if (c.forced_mode == ref::ForcedMode::always) {
    for (int64_t j : forced_blocks(c, t)) {
      taken[j] = 1;
      is_free[j] = 0;
      ++count;
    }
  }
  const int64_t want = std::min(c.top_n, n_cand);
  const bool lower = c.tie_break == ref::TieBreak::lower_index_first;
  double min_free_taken = kInf;
  while (count < want) {
    int64_t best = -1;
    for (int64_t j = 0; j < n_cand; ++j) {
      if (taken[j]) continue;
      if (best < 0 || P[j] > P[best] || (P[j] == P[best] && (lower ? j < best : j > best)))
        best = j;
    }
    taken[best] = 1;
    min_free_taken = std::min(min_free_taken, P[best]);
    ++count;
  }
  double max_left = -kInf;
  bool any_taken_free = false, any_left = false;
  for (int64_t j = 0; j < n_cand; ++j) {
    if (!is_free[j]) continue;
    if (taken[j]) any_taken_free = true;
    if (!taken[j]) {
      any_left = true;
      max_left = std::max(max_left, P[j]);
    }
  }
  if (gap) *gap = any_taken_free && any_left ? min_free_taken - max_left : kInf;
  std::vector<int32_t> out(static_cast<std::size_t>(c.top_n), -1);
  int64_t slot = 0;
  for (int64_t j = 0; j < n_cand; ++j)
    if (taken[j]) out[slot++] = static_cast<int32_t>(j);
  return out;
}

Softmax masked_softmax(const Matrix& z, const Matrix& mult, const Matrix& v) {
  Softmax r;
  r.p = Matrix::Zero(z.rows(), z.cols());
  r.lse = Eigen::VectorXd::Constant(z.rows(), -kInf);
  for (int64_t i = 0; i < z.rows(); ++i) {
    double m = -kInf;
    for (int64_t j = 0; j < z.cols(); ++j)
      if (mult(i, j) > 0) m = std::max(m, z(i, j));
    if (m == -kInf) continue;  // empty key set
    double sum = 0;
    for (int64_t j = 0; j < z.cols(); ++j)
      if (mult(i, j) > 0) {
        r.p(i, j) = mult(i, j) * std::exp(z(i, j) - m);
        sum += r.p(i, j);
      }
    r.p.row(i) /= sum;
    r.lse(i) = m + std::log(sum);
  }
  r.o = r.p * v;
  return r;
}

DenseResult dense_forward(const ref::ValidConfig& vc, const ref::Inputs& in) {
  const Config& c = vc.cfg;
  const int64_t H = c.h_q, Hkv = c.h_kv, G = H / Hkv, n = c.top_n, dv = c.d_v;
  DenseResult r;
  r.nc_max = count_cmp_blocks(c, vc.max_t_k);
  r.ns_max = count_slc_blocks(c, vc.max_t_k);
  const int64_t Tq = vc.total_q;
  for (int b = 0; b < 3; ++b) {
    r.o_branch[b].assign(Tq * H * dv, 0.0);
    r.lse[b].assign(Tq * H, -kInf);
  }
  r.o.assign(Tq * H * dv, 0.0);
  r.p_cmp.assign(Tq * H * r.nc_max, 0.0);
  r.scores.assign(Tq * Hkv * r.ns_max, -kInf);
  r.indices.assign(Tq * Hkv * n, -1);
  r.score_gap.assign(Tq * Hkv, kInf);

  const bool need_cmp = c.enable_cmp || (c.enable_slc && !c.given_indices);
  for (const auto& seq : vc.seqs) {
    const int64_t tq = seq.t_q, tk = seq.t_k;
    if (tq == 0) continue;
    const int64_t nc = count_cmp_blocks(c, tk), ns = count_slc_blocks(c, tk);
    const Matrix vis = cmp_visibility(c, tq, tk, nc);
    const Matrix A = mapping_matrix(c, nc, ns);
    const Matrix win = window_mask(c, tq, tk);
    auto pos = [&](int64_t i) { return tk - tq + i; };
    for (int64_t g = 0; g < Hkv; ++g) {
      std::array<Matrix, 3> K, V;
      for (int b = 0; b < 3; ++b) {
        if (in.k[b].empty()) continue;
        K[b] = head_rows(in.k[b], seq.k_begin, tk, Hkv, g, c.d_k);
        V[b] = head_rows(in.v[b], seq.k_begin, tk, Hkv, g, dv);
      }
      Matrix Kc, Vc;
      if (need_cmp) {
        Kc = compress(c, in.phi_k, g, K[0]);
        Vc = compress(c, in.phi_v, g, V[0]);
      }
      std::vector<Matrix> Q(static_cast<std::size_t>(G));
      std::vector<std::array<Softmax, 3>> res(static_cast<std::size_t>(G));
      for (int64_t hl = 0; hl < G; ++hl) {
        Q[hl] = head_rows(in.q, seq.q_begin, tq, H, g * G + hl, c.d_k);
        if (need_cmp) res[hl][0] = masked_softmax(vc.scale * Q[hl] * Kc.transpose(), vis, Vc);
        if (c.enable_win)
          res[hl][2] = masked_softmax(vc.scale * Q[hl] * K[2].transpose(), win, V[2]);
      }

      if (c.enable_slc) {
        for (int64_t i = 0; i < tq; ++i) {
          const int64_t t = pos(i), row = seq.q_begin + i;
          int32_t* out_idx = r.indices.data() + (row * Hkv + g) * n;
          if (c.given_indices) {
            std::copy_n(in.indices.data() + (row * Hkv + g) * n, n, out_idx);
          } else {
            int64_t n_cand = 0;
            while (n_cand * c.slc_block <= t) ++n_cand;  // blocks starting at or before t
            const auto forced = forced_blocks(c, t);
            std::vector<double> P(static_cast<std::size_t>(n_cand), 0.0);
            for (int64_t hl = 0; hl < G; ++hl) {
              Eigen::RowVectorXd ps = res[hl][0].p.row(i) * A;
              if (c.forced_mode == ref::ForcedMode::score_one)
                for (int64_t j : forced) ps(j) = 1.0;
              for (int64_t j = 0; j < n_cand; ++j) P[j] += ps(j);
            }
            if (c.group_reduce == ref::GroupReduce::mean)
              for (auto& x : P) x /= static_cast<double>(G);
            for (int64_t j = 0; j < n_cand; ++j) r.scores[(row * Hkv + g) * r.ns_max + j] = P[j];
            const auto top = pick_top_n(c, t, P, &r.score_gap[row * Hkv + g]);
            std::copy(top.begin(), top.end(), out_idx);
          }
        }
        const int32_t* lists = c.given_indices ? in.indices.data() : r.indices.data();
        const Matrix mult = selection_multiplicity(c, tq, tk, lists + seq.q_begin * Hkv * n + g * n,
                                                   Hkv * n, !c.given_indices);
        for (int64_t hl = 0; hl < G; ++hl)
          res[hl][1] = masked_softmax(vc.scale * Q[hl] * K[1].transpose(), mult, V[1]);
      }

      for (int64_t hl = 0; hl < G; ++hl) {
        const int64_t h = g * G + hl;
        for (int64_t i = 0; i < tq; ++i) {
          const int64_t row = seq.q_begin + i;
          if (need_cmp)
            for (int64_t b = 0; b < nc; ++b)
              r.p_cmp[(row * H + h) * r.nc_max + b] = res[hl][0].p(i, b);
          for (int b = 0; b < 3; ++b) {
            if (!c.enabled(static_cast<ref::Branch>(b))) continue;
            const double gate = in.gate[b][row * H + h];
            r.lse[b][row * H + h] = res[hl][b].lse(i);
            for (int64_t e = 0; e < dv; ++e) {
              const double x = res[hl][b].o(i, e);
              r.o_branch[b][(row * H + h) * dv + e] = x;
              r.o[(row * H + h) * dv + e] += gate * x;
            }
          }
        }
      }
    }
  }
  return r;
}

namespace {

// First element where got and want differ by more than tol * max|want|; -inf must match exactly.
// scale_from: the tensor whose largest finite magnitude sets the absolute tolerance (default want).
template <class T>
std::string first_diff(const char* name, const std::vector<T>& got, const std::vector<T>& want,
                       double rel_tol, const std::vector<T>* scale_from = nullptr) {
  std::ostringstream o;
  o.precision(17);
  if (got.size() != want.size()) {
    o << name << ": size " << got.size() << " != oracle " << want.size();
    return o.str();
  }
  double scale = 0;
  for (const auto& x : scale_from ? *scale_from : want)
    if (std::isfinite(static_cast<double>(x)))
      scale = std::max(scale, std::abs(static_cast<double>(x)));
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double a = static_cast<double>(got[i]), b = static_cast<double>(want[i]);
    const bool same_inf = std::isinf(b) ? a == b : std::isfinite(a);
    const bool close = std::isinf(b) || std::abs(a - b) <= rel_tol * scale;
    if (!same_inf || !close || std::isnan(a)) {
      o << name << "[" << i << "]: reference " << a << ", oracle " << b << " (scale " << scale
        << ")";
      return o.str();
    }
  }
  return "";
}

}  // namespace

std::string diff(const ref::Outputs& out, const DenseResult& want, double rel_tol) {
  const char* names[3] = {"o_cmp", "o_slc", "o_win"};
  const char* lse_names[3] = {"lse_cmp", "lse_slc", "lse_win"};
  std::string d;
  for (int b = 0; b < 3 && d.empty(); ++b) {
    d = first_diff(names[b], out.o_branch[b], want.o_branch[b], rel_tol);
    if (d.empty()) d = first_diff(lse_names[b], out.lse[b], want.lse[b], rel_tol);
  }
  if (d.empty()) d = first_diff("o", out.o, want.o, rel_tol);
  if (d.empty() && out.nc_max == want.nc_max)
    d = first_diff("p_cmp", out.p_cmp, want.p_cmp, rel_tol);
  if (d.empty() && out.ns_max == want.ns_max)
    d = first_diff("scores", out.scores, want.scores, rel_tol);
  if (d.empty()) d = first_diff("score_gap", out.score_gap, want.score_gap, rel_tol, &want.scores);
  if (d.empty()) d = first_diff("indices", out.indices, want.indices, 0.0);
  if (d.empty() && (out.nc_max != want.nc_max || out.ns_max != want.ns_max))
    d = "score widths: reference nc_max " + std::to_string(out.nc_max) + ", ns_max " +
        std::to_string(out.ns_max) + "; oracle " + std::to_string(want.nc_max) + ", " +
        std::to_string(want.ns_max);
  return d;
}

}  // namespace nsa::oracle
