// The one code path of the forward, templated on the real type and the storage policy.
// Branch semantics live in compression.hpp, selection.hpp and window.hpp; this file only wires
// them together per (query row, KV head) and writes the outputs.
#pragma once

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>

#include "attention.hpp"
#include "compression.hpp"
#include "nsa/ref/forward.hpp"
#include "parallel.hpp"
#include "selection.hpp"
#include "window.hpp"

namespace nsa::ref::detail {

// One KV head of one sequence, widened to Real: raw K/V per branch and compressed K/V.
template <class Real>
struct HeadData {
  std::array<Mat<Real>, 3> k, v;
  Mat<Real> k_cmp, v_cmp;  // compressed blocks [N_c(t_k), D]
};

template <class Real>
Mat<Real> load_rows(const std::vector<double>& src, int64_t row0, int64_t rows, int64_t heads,
                    int64_t head, int64_t dim) {
  Mat<Real> m(rows, dim);
  for (int64_t r = 0; r < rows; ++r) {
    const double* p = src.data() + ((row0 + r) * heads + head) * dim;
    for (int64_t c = 0; c < dim; ++c) m(r, c) = Real(p[c]);
  }
  return m;
}

struct Plan {
  std::vector<int64_t> rows, heads, groups;
  std::vector<int64_t> row_seq;  // sequence of each selected row
};

inline Plan make_plan(const ValidConfig& vc, const RowSelection& sel) {
  Plan p;
  const auto& c = vc.cfg;
  if (sel.rows.empty()) {
    for (int64_t r = 0; r < vc.total_q; ++r) p.rows.push_back(r);
  } else {
    p.rows = sel.rows;
  }
  if (sel.heads.empty()) {
    for (int64_t h = 0; h < c.h_q; ++h) p.heads.push_back(h);
  } else {
    p.heads = sel.heads;
  }
  for (std::size_t i = 0; i < p.rows.size(); ++i)
    if (p.rows[i] < 0 || p.rows[i] >= vc.total_q)
      throw std::invalid_argument("row selection: rows[" + std::to_string(i) +
                                  "] = " + std::to_string(p.rows[i]) +
                                  " is outside [0, total_q = " + std::to_string(vc.total_q) + ")");
  for (std::size_t i = 0; i < p.heads.size(); ++i) {
    if (p.heads[i] < 0 || p.heads[i] >= c.h_q)
      throw std::invalid_argument("row selection: heads[" + std::to_string(i) +
                                  "] = " + std::to_string(p.heads[i]) +
                                  " is outside [0, h_q = " + std::to_string(c.h_q) + ")");
    p.groups.push_back(p.heads[i] / vc.group);
  }
  std::sort(p.groups.begin(), p.groups.end());
  p.groups.erase(std::unique(p.groups.begin(), p.groups.end()), p.groups.end());
  for (int64_t r : p.rows) {
    const auto it = std::upper_bound(c.cu_seqlens_q.begin(), c.cu_seqlens_q.end() - 1, r,
                                     [](int64_t x, int64_t off) { return x < off; });
    p.row_seq.push_back(static_cast<int64_t>(it - c.cu_seqlens_q.begin()) - 1);
  }
  // Empty sequences share their offset with the next one; upper_bound already lands on the
  // last sequence starting at or before r, which is the non-empty one holding r.
  return p;
}

template <class Real, class Round>
Outputs run_forward(const ValidConfig& vc, const Inputs& in, const RowSelection& sel,
                    const Round& round) {
  const auto& c = vc.cfg;
  const Plan plan = make_plan(vc, sel);
  const int64_t nr = static_cast<int64_t>(plan.rows.size());
  const int64_t nh = static_cast<int64_t>(plan.heads.size());
  const int64_t ng = static_cast<int64_t>(plan.groups.size());
  const int64_t G = vc.group, n = c.top_n;
  const bool want_cmp_scores = c.enable_cmp || (c.enable_slc && !c.given_indices);
  const bool compute_topn = c.enable_slc && !c.given_indices;

  Outputs out;
  out.rows = plan.rows;
  out.heads = plan.heads;
  out.groups = plan.groups;
  out.d_v = c.d_v;
  out.top_n = n;
  out.nc_max = sel.keep_scores ? vc.max_cmp_blocks() : 0;
  out.ns_max = sel.keep_scores ? vc.max_slc_blocks() : 0;
  const double ninf = -std::numeric_limits<double>::infinity();
  for (int b = 0; b < 3; ++b) {
    out.o_branch[b].assign(static_cast<std::size_t>(nr * nh * c.d_v), 0.0);
    out.lse[b].assign(static_cast<std::size_t>(nr * nh), ninf);
  }
  out.o.assign(static_cast<std::size_t>(nr * nh * c.d_v), 0.0);
  out.p_cmp.assign(static_cast<std::size_t>(nr * nh * out.nc_max), 0.0);
  out.scores.assign(static_cast<std::size_t>(nr * ng * out.ns_max), ninf);
  out.indices.assign(static_cast<std::size_t>(nr * ng * n), -1);
  out.score_gap.assign(static_cast<std::size_t>(nr * ng), std::numeric_limits<double>::infinity());

  // Selected heads of each group, as (position in plan.heads, head) pairs.
  std::vector<std::vector<std::pair<int64_t, int64_t>>> group_heads(static_cast<std::size_t>(ng));
  for (int64_t hi = 0; hi < nh; ++hi) {
    const int64_t g = plan.heads[hi] / G;
    const auto gi =
        std::lower_bound(plan.groups.begin(), plan.groups.end(), g) - plan.groups.begin();
    group_heads[static_cast<std::size_t>(gi)].push_back({hi, plan.heads[hi]});
  }

  // Rows of each touched sequence.
  std::map<int64_t, std::vector<int64_t>> seq_rows;
  for (int64_t ri = 0; ri < nr; ++ri) seq_rows[plan.row_seq[ri]].push_back(ri);

  const Real scale = Real(vc.scale);
  // Named members, not a structured binding: clang 14 (the libFuzzer build) cannot capture
  // structured bindings in the lambdas below.
  for (const auto& seq_entry : seq_rows) {
    const int64_t s = seq_entry.first;
    const std::vector<int64_t>& rows_of_seq = seq_entry.second;
    const Sequence& seq = vc.seqs[static_cast<std::size_t>(s)];
    std::vector<HeadData<Real>> heads(static_cast<std::size_t>(ng));
    parallel_for(ng, sel.threads, [&](int64_t gi) {
      const int64_t g = plan.groups[gi];
      auto& hd = heads[static_cast<std::size_t>(gi)];
      for (Branch b : kAllBranches) {
        const bool needed = b == Branch::cmp ? want_cmp_scores : c.enabled(b);
        if (!needed) continue;
        const int bi = static_cast<int>(b);
        hd.k[bi] = load_rows<Real>(in.k[bi], seq.k_begin, seq.t_k, c.h_kv, g, c.d_k);
        hd.v[bi] = load_rows<Real>(in.v[bi], seq.k_begin, seq.t_k, c.h_kv, g, c.d_v);
      }
      if (want_cmp_scores) {
        const int bi = static_cast<int>(Branch::cmp);
        hd.k_cmp = compress_all(vc, phi_head<Real>(vc, in.phi_k, g, c.d_k), hd.k[bi], round);
        hd.v_cmp = compress_all(vc, phi_head<Real>(vc, in.phi_v, g, c.d_v), hd.v[bi], round);
      }
    });

    parallel_for(static_cast<int64_t>(rows_of_seq.size()), sel.threads, [&](int64_t k) {
      const int64_t ri = rows_of_seq[static_cast<std::size_t>(k)];
      const int64_t row = plan.rows[ri];
      const int64_t t = seq.pos(row - seq.q_begin);
      for (int64_t gi = 0; gi < ng; ++gi) {
        const int64_t g = plan.groups[gi];
        const auto& hd = heads[static_cast<std::size_t>(gi)];
        Mat<Real> q(G, c.d_k);
        for (int64_t h = 0; h < G; ++h)
          for (int64_t e = 0; e < c.d_k; ++e)
            q(h, e) = Real(in.q[(row * c.h_q + g * G + h) * c.d_k + e]);
        std::array<AttnResult<Real>, 3> res;
        const int ci = 0, si = 1, wi = 2;

        const int64_t vis = want_cmp_scores ? visible_cmp_blocks(vc, t) : 0;
        if (want_cmp_scores) {
          res[ci] = attend(q, hd.k_cmp, hd.v_cmp, {{0, vis}}, scale, round, true);
          if (sel.keep_scores)
            for (const auto& [hi, h] : group_heads[static_cast<std::size_t>(gi)])
              for (int64_t i = 0; i < vis; ++i)
                out.p_cmp[(ri * nh + hi) * out.nc_max + i] = to_double(res[ci].p(h - g * G, i));
        }

        if (c.enable_slc) {
          const int32_t* idx = nullptr;
          std::vector<int32_t> chosen;
          if (compute_topn) {
            const int64_t n_cand = num_candidates(vc, t);
            const auto forced = forced_mask(vc, t);
            std::vector<Real> total(static_cast<std::size_t>(n_cand), Real(0));
            for (int64_t h = 0; h < G; ++h) {
              auto ps = map_scores<Real>(vc, res[ci].p.row(h), vis, n_cand);
              if (c.forced_mode == ForcedMode::score_one)
                for (int64_t j = 0; j < n_cand; ++j)
                  if (forced[j]) ps[j] = Real(1);
              for (int64_t j = 0; j < n_cand; ++j) total[j] += ps[j];
            }
            if (c.group_reduce == GroupReduce::mean)
              for (auto& x : total) x /= Real(G);
            const auto top = top_n(vc, t, std::move(total));
            chosen = top.indices;
            idx = chosen.data();
            std::copy(chosen.begin(), chosen.end(), out.indices.begin() + (ri * ng + gi) * n);
            out.score_gap[ri * ng + gi] = top.gap;
            if (sel.keep_scores)
              for (int64_t j = 0; j < n_cand; ++j)
                out.scores[(ri * ng + gi) * out.ns_max + j] = to_double(top.scores[j]);
          } else {
            idx = in.indices.data() + (row * c.h_kv + g) * n;
            std::copy(idx, idx + n, out.indices.begin() + (ri * ng + gi) * n);
          }
          const auto segs = selected_segments(vc, t, seq.t_k, idx, !compute_topn);
          res[si] = attend(q, hd.k[si], hd.v[si], segs, scale, round, false);
        }

        if (c.enable_win)
          res[wi] = attend(q, hd.k[wi], hd.v[wi], {window_segment(vc, t)}, scale, round, false);

        for (const auto& [hi, h] : group_heads[static_cast<std::size_t>(gi)]) {
          const int64_t hl = h - g * G;
          const int64_t base = (ri * nh + hi) * c.d_v;
          Vec<Real> mix = Vec<Real>::Zero(c.d_v);
          for (Branch b : kAllBranches) {
            if (!c.enabled(b)) continue;
            const int bi = static_cast<int>(b);
            const Real gate = Real(in.gate[bi][row * c.h_q + h]);
            for (int64_t e = 0; e < c.d_v; ++e) {
              const Real o_e = round.store(res[bi].o(hl, e));
              out.o_branch[bi][base + e] = to_double(o_e);
              mix(e) += gate * o_e;
            }
            out.lse[bi][ri * nh + hi] = to_double(res[bi].lse(hl));
          }
          for (int64_t e = 0; e < c.d_v; ++e) out.o[base + e] = to_double(round.store(mix(e)));
        }
      }
    });
  }
  return out;
}

}  // namespace nsa::ref::detail
