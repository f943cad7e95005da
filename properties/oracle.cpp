#include "oracle.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "nsa/ref/generate.hpp"

namespace nsa::props {

DenseAttention dense_attention(const ValidConfig& vc, const Inputs& in, Branch branch, int64_t row,
                               int64_t head, const std::vector<int64_t>& keys) {
  const auto& c = vc.cfg;
  const int64_t g = head / vc.group;
  const auto& K = in.keys(branch);
  const auto& V = in.values(branch);
  DenseAttention r;
  r.o.assign(static_cast<std::size_t>(c.d_v), 0.0);
  r.lse = -std::numeric_limits<double>::infinity();
  r.keys = static_cast<int64_t>(keys.size());
  if (keys.empty()) return r;
  const double* q = in.q.data() + (row * c.h_q + head) * c.d_k;
  std::vector<long double> z(keys.size());
  long double m = -std::numeric_limits<long double>::infinity();
  for (std::size_t j = 0; j < keys.size(); ++j) {
    const double* k = K.data() + (keys[j] * c.h_kv + g) * c.d_k;
    long double dot = 0, dot_abs = 0;
    for (int64_t e = 0; e < c.d_k; ++e) {
      dot += static_cast<long double>(q[e]) * k[e];
      dot_abs += std::fabs(static_cast<long double>(q[e]) * k[e]);
    }
    z[j] = dot * static_cast<long double>(vc.scale);
    r.z_abs = std::max(r.z_abs, static_cast<double>(dot_abs * vc.scale));
    m = std::max(m, z[j]);
  }
  long double sum = 0;
  std::vector<long double> acc(static_cast<std::size_t>(c.d_v), 0);
  for (std::size_t j = 0; j < keys.size(); ++j) {
    const long double p = std::exp(z[j] - m);
    sum += p;
    const double* v = V.data() + (keys[j] * c.h_kv + g) * c.d_v;
    for (int64_t e = 0; e < c.d_v; ++e) acc[e] += p * v[e];
  }
  for (int64_t e = 0; e < c.d_v; ++e) r.o[e] = static_cast<double>(acc[e] / sum);
  r.lse = static_cast<double>(m + std::log(sum));
  return r;
}

AttentionGrad attention_grad(const std::vector<const double*>& k,
                             const std::vector<const double*>& v, const double* q,
                             const double* d_o_b, int64_t d_k, int64_t d_v, double scale) {
  using LD = long double;
  const std::size_t n = k.size();
  AttentionGrad g;
  g.o.assign(static_cast<std::size_t>(d_v), 0.0);
  g.o_mag = g.o;
  g.dq.assign(static_cast<std::size_t>(d_k), 0.0);
  g.dq_mag = g.dq;
  g.dk.assign(n, std::vector<double>(static_cast<std::size_t>(d_k), 0.0));
  g.dk_mag = g.dk;
  g.dv.assign(n, std::vector<double>(static_cast<std::size_t>(d_v), 0.0));
  g.dv_mag = g.dv;
  if (n == 0) return g;
  const LD s = scale;
  std::vector<LD> z(n), p(n), dp(n), dp_abs(n);
  LD m = -std::numeric_limits<LD>::infinity(), z_mag = 0;
  for (std::size_t i = 0; i < n; ++i) {
    LD dot = 0, dot_abs = 0;
    for (int64_t e = 0; e < d_k; ++e) {
      dot += static_cast<LD>(q[e]) * k[i][e];
      dot_abs += std::fabs(static_cast<LD>(q[e]) * k[i][e]);
    }
    z[i] = s * dot;
    z_mag = std::max(z_mag, s * dot_abs);
    m = std::max(m, z[i]);
  }
  LD sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += p[i] = std::exp(z[i] - m);
  LD D = 0, D_abs = 0;
  std::vector<LD> o(static_cast<std::size_t>(d_v), 0), o_mag(o.size(), 0);
  for (std::size_t i = 0; i < n; ++i) {
    p[i] /= sum;
    LD dot = 0, dot_abs = 0;
    for (int64_t e = 0; e < d_v; ++e) {
      o[e] += p[i] * v[i][e];
      o_mag[e] += p[i] * (1 + z_mag) * std::fabs(v[i][e]);
      dot += static_cast<LD>(d_o_b[e]) * v[i][e];
      dot_abs += std::fabs(static_cast<LD>(d_o_b[e]) * v[i][e]);
    }
    dp[i] = dot;
    dp_abs[i] = dot_abs;
    D += p[i] * dot;
    D_abs += p[i] * (1 + z_mag) * dot_abs;
  }
  std::vector<LD> dq(static_cast<std::size_t>(d_k), 0), dq_mag(dq.size(), 0);
  for (std::size_t i = 0; i < n; ++i) {
    const LD pm = p[i] * (1 + z_mag);
    const LD ds = p[i] * (dp[i] - D), ds_abs = pm * (dp_abs[i] + D_abs);
    for (int64_t e = 0; e < d_k; ++e) {
      dq[e] += s * ds * k[i][e];
      dq_mag[e] += s * ds_abs * std::fabs(k[i][e]);
      g.dk[i][e] = static_cast<double>(s * ds * q[e]);
      g.dk_mag[i][e] = static_cast<double>(s * ds_abs * std::fabs(q[e]));
    }
    for (int64_t e = 0; e < d_v; ++e) {
      g.dv[i][e] = static_cast<double>(p[i] * d_o_b[e]);
      g.dv_mag[i][e] = static_cast<double>(pm * std::fabs(d_o_b[e]));
    }
  }
  for (int64_t e = 0; e < d_k; ++e) {
    g.dq[e] = static_cast<double>(dq[e]);
    g.dq_mag[e] = static_cast<double>(dq_mag[e]);
  }
  for (int64_t e = 0; e < d_v; ++e) {
    g.o[e] = static_cast<double>(o[e]);
    g.o_mag[e] = static_cast<double>(o_mag[e]);
  }
  return g;
}

double attention_tol_o(const DenseAttention& a, double v_max) {
  return 1e-13 * v_max * (4.0 + a.z_abs + static_cast<double>(a.keys));
}

double attention_tol_lse(const DenseAttention& a) {
  return 1e-13 * (4.0 + a.z_abs + static_cast<double>(a.keys));
}

double max_abs(const std::vector<double>& x) {
  double m = 0;
  for (double v : x)
    if (std::isfinite(v)) m = std::max(m, std::fabs(v));
  return m > 0 ? m : 1.0;
}

RowPos row_pos(const ValidConfig& vc, int64_t row) {
  for (std::size_t s = 0; s < vc.seqs.size(); ++s) {
    const auto& q = vc.seqs[s];
    if (row >= q.q_begin && row < q.q_begin + q.t_q)
      return {static_cast<int64_t>(s), q.pos(row - q.q_begin)};
  }
  throw std::out_of_range("row " + std::to_string(row) + " is in no sequence");
}

std::vector<int64_t> spec_forced_blocks(const nsa::ref::Config& c, int64_t t) {
  const int64_t cur = t / c.slc_block;
  std::vector<int64_t> f;
  for (int64_t j = 0; j <= cur; ++j)
    if (j < c.n_init || (j > cur - c.n_local)) f.push_back(j);
  return f;
}

namespace {

// Free candidates ordered best first by the spec's rule.
std::vector<int64_t> ranked_free(const nsa::ref::Config& c, int64_t t, const double* P,
                                 const std::vector<int64_t>& chosen) {
  const int64_t n_cand = t / c.slc_block + 1;
  std::vector<int64_t> free;
  for (int64_t j = 0; j < n_cand; ++j)
    if (std::find(chosen.begin(), chosen.end(), j) == chosen.end()) free.push_back(j);
  const bool lower = c.tie_break == nsa::ref::TieBreak::lower_index_first;
  std::sort(free.begin(), free.end(), [&](int64_t a, int64_t b) {
    if (P[a] != P[b]) return P[a] > P[b];
    return lower ? a < b : a > b;
  });
  return free;
}

}  // namespace

std::vector<int32_t> spec_top_n(const nsa::ref::Config& c, int64_t t, const double* P) {
  const int64_t n_cand = t / c.slc_block + 1;
  std::vector<int64_t> chosen;
  if (c.forced_mode == nsa::ref::ForcedMode::always) chosen = spec_forced_blocks(c, t);
  const auto free = ranked_free(c, t, P, chosen);
  const int64_t want = std::min(c.top_n, n_cand);
  for (std::size_t i = 0; static_cast<int64_t>(chosen.size()) < want && i < free.size(); ++i)
    chosen.push_back(free[i]);
  std::sort(chosen.begin(), chosen.end());
  std::vector<int32_t> out(static_cast<std::size_t>(c.top_n), -1);
  for (std::size_t i = 0; i < chosen.size(); ++i) out[i] = static_cast<int32_t>(chosen[i]);
  return out;
}

std::string selection_within(const nsa::ref::Config& c, int64_t t, const double* P,
                             const int32_t* got, double delta) {
  const int64_t n_cand = t / c.slc_block + 1;
  std::vector<int64_t> sel;
  for (int64_t s = 0; s < c.top_n; ++s)
    if (got[s] >= 0) sel.push_back(got[s]);
  if (static_cast<int64_t>(sel.size()) != std::min(c.top_n, n_cand))
    return "selected " + std::to_string(sel.size()) +
           " blocks, expected min(n, candidates) = " + std::to_string(std::min(c.top_n, n_cand));
  std::vector<int64_t> forced;
  if (c.forced_mode == nsa::ref::ForcedMode::always) forced = spec_forced_blocks(c, t);
  for (int64_t f : forced)
    if (std::find(sel.begin(), sel.end(), f) == sel.end())
      return "forced block " + std::to_string(f) + " is missing";
  double worst_selected = std::numeric_limits<double>::infinity();
  double best_unselected = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n_cand; ++j) {
    if (std::find(forced.begin(), forced.end(), j) != forced.end()) continue;
    const bool in = std::find(sel.begin(), sel.end(), j) != sel.end();
    if (in)
      worst_selected = std::min(worst_selected, P[j]);
    else
      best_unselected = std::max(best_unselected, P[j]);
  }
  if (best_unselected > worst_selected + delta)
    return "an unselected block scores " + std::to_string(best_unselected) +
           " > a selected one's " + std::to_string(worst_selected) + " + delta " +
           std::to_string(delta);
  return "";
}

uint64_t choose(uint64_t seed, uint64_t stream, uint64_t i, uint64_t n) {
  return n == 0 ? 0 : nsa::ref::random_bits(seed, 0xA11CE + stream, i) % n;
}

}  // namespace nsa::props
