// The one code path of the forward, templated on the real type, the storage policy and the
// type of the stored outputs. Branch semantics live in compression.hpp, selection.hpp and
// window.hpp, put together per (query row, KV head) by row_attention.hpp; this file runs it over
// the selected rows and writes the outputs.
#pragma once

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>

#include "nsa/ref/forward.hpp"
#include "parallel.hpp"
#include "row_attention.hpp"

namespace nsa::ref::detail {

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

// A value of the computation as the outputs store it: rounded once to double, or kept.
template <class Out, class Real>
Out output_value(const Real& x) {
  if constexpr (std::is_same_v<Out, double>) {
    return to_double(x);
  } else {
    return Out(x);
  }
}

template <class Real, class Round, class Out = double>
BasicOutputs<Out> run_forward(const ValidConfig& vc, const Inputs& in, const RowSelection& sel,
                              const Round& round) {
  const auto& c = vc.cfg;
  const Plan plan = make_plan(vc, sel);
  const int64_t nr = static_cast<int64_t>(plan.rows.size());
  const int64_t nh = static_cast<int64_t>(plan.heads.size());
  const int64_t ng = static_cast<int64_t>(plan.groups.size());
  const int64_t G = vc.group, n = c.top_n;
  const bool compute_topn = c.enable_slc && !c.given_indices;

  BasicOutputs<Out> out;
  out.rows = plan.rows;
  out.heads = plan.heads;
  out.groups = plan.groups;
  out.d_v = c.d_v;
  out.top_n = n;
  out.nc_max = sel.keep_scores ? vc.max_cmp_blocks() : 0;
  out.ns_max = sel.keep_scores ? vc.max_slc_blocks() : 0;
  const Out ninf = Out(-std::numeric_limits<double>::infinity());
  for (int b = 0; b < 3; ++b) {
    out.o_branch[b].assign(static_cast<std::size_t>(nr * nh * c.d_v), Out(0));
    out.lse[b].assign(static_cast<std::size_t>(nr * nh), ninf);
  }
  out.o.assign(static_cast<std::size_t>(nr * nh * c.d_v), Out(0));
  out.p_cmp.assign(static_cast<std::size_t>(nr * nh * out.nc_max), Out(0));
  out.scores.assign(static_cast<std::size_t>(nr * ng * out.ns_max), ninf);
  out.indices.assign(static_cast<std::size_t>(nr * ng * n), -1);
  out.score_gap.assign(static_cast<std::size_t>(nr * ng),
                       Out(std::numeric_limits<double>::infinity()));

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
      heads[static_cast<std::size_t>(gi)] = load_head<Real>(vc, in, seq, plan.groups[gi], round);
    });

    parallel_for(static_cast<int64_t>(rows_of_seq.size()), sel.threads, [&](int64_t k) {
      const int64_t ri = rows_of_seq[static_cast<std::size_t>(k)];
      const int64_t row = plan.rows[ri];
      const int64_t t = seq.pos(row - seq.q_begin);
      for (int64_t gi = 0; gi < ng; ++gi) {
        const int64_t g = plan.groups[gi];
        const Mat<Real> q = group_queries<Real>(vc, in, row, g);
        const int32_t* given =
            c.given_indices ? in.indices.data() + (row * c.h_kv + g) * n : nullptr;
        const auto ra =
            attend_row(vc, heads[static_cast<std::size_t>(gi)], q, t, seq.t_k, given, scale, round);
        const int ci = static_cast<int>(Branch::cmp);
        if (needs_cmp_scores(c) && sel.keep_scores)
          for (const auto& [hi, h] : group_heads[static_cast<std::size_t>(gi)])
            for (int64_t i = 0; i < ra.visible; ++i)
              out.p_cmp[(ri * nh + hi) * out.nc_max + i] =
                  output_value<Out>(ra.res[ci].p(h - g * G, i));
        if (c.enable_slc) {
          std::copy(ra.listed.begin(), ra.listed.end(), out.indices.begin() + (ri * ng + gi) * n);
          if (compute_topn) {
            out.score_gap[ri * ng + gi] = Out(ra.top.gap);
            if (sel.keep_scores)
              for (std::size_t j = 0; j < ra.top.scores.size(); ++j)
                out.scores[(ri * ng + gi) * out.ns_max + static_cast<int64_t>(j)] =
                    output_value<Out>(ra.top.scores[j]);
          }
        }
        for (const auto& [hi, h] : group_heads[static_cast<std::size_t>(gi)]) {
          const int64_t hl = h - g * G;
          const int64_t base = (ri * nh + hi) * c.d_v;
          Vec<Real> mix = Vec<Real>::Zero(c.d_v);
          for (Branch b : kAllBranches) {
            if (!c.enabled(b)) continue;
            const int bi = static_cast<int>(b);
            const Real gate = Real(in.gate[bi][row * c.h_q + h]);
            for (int64_t e = 0; e < c.d_v; ++e) {
              const Real o_e = round.store(ra.res[bi].o(hl, e));
              out.o_branch[bi][base + e] = output_value<Out>(o_e);
              mix(e) += gate * o_e;
            }
            out.lse[bi][ri * nh + hi] = output_value<Out>(ra.res[bi].lse(hl));
          }
          for (int64_t e = 0; e < c.d_v; ++e)
            out.o[base + e] = output_value<Out>(round.store(mix(e)));
        }
      }
    });
  }
  return out;
}

}  // namespace nsa::ref::detail
