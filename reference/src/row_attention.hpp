// What one (query row, KV head) attends to in each branch, and the forward attention over it.
// This is the one place where the three branches' key sets are put together (from
// compression.hpp, selection.hpp and window.hpp); the forward writes its outputs from it, and the
// backward differentiates exactly these key sets.
#pragma once

#include <array>
#include <vector>

#include "attention.hpp"
#include "compression.hpp"
#include "nsa/ref/forward.hpp"
#include "selection.hpp"
#include "window.hpp"

namespace nsa::ref::detail {

// The compressed K/V feed the compression branch, and the selection scores when the selection is
// computed rather than given.
inline bool needs_cmp_scores(const Config& c) {
  return c.enable_cmp || (c.enable_slc && !c.given_indices);
}

// One KV head of one sequence, widened to Real: raw K/V per branch and compressed K/V.
template <class Real>
struct HeadData {
  std::array<Mat<Real>, 3> k, v;  // cmp_given: no raw K/V of the compression branch
  // Compressed blocks [N_c(t_k), D]: phi's output rounded by the storage policy, or the given
  // cache's rows (cmp_given; already in the dtype, so the storage policy leaves them as they are).
  Mat<Real> k_cmp, v_cmp;
};

// Rows [row0, row0 + rows) of one head of a [tokens, heads, dim] tensor.
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

template <class Real, class Round>
HeadData<Real> load_head(const ValidConfig& vc, const Inputs& in, const Sequence& seq, int64_t g,
                         const Round& round) {
  const auto& c = vc.cfg;
  const bool want_cmp = needs_cmp_scores(c);
  HeadData<Real> hd;
  for (Branch b : kAllBranches) {
    if (!(b == Branch::cmp ? want_cmp && !c.cmp_given : c.enabled(b))) continue;
    const int bi = static_cast<int>(b);
    hd.k[bi] = load_rows<Real>(in.k[bi], seq.k_begin, seq.t_k, c.h_kv, g, c.d_k);
    hd.v[bi] = load_rows<Real>(in.v[bi], seq.k_begin, seq.t_k, c.h_kv, g, c.d_v);
  }
  if (want_cmp && c.cmp_given) {
    const int64_t nc = vc.num_cmp_blocks(seq.t_k);
    hd.k_cmp = load_rows<Real>(in.k_tilde, seq.c_begin, nc, c.h_kv, g, c.d_k);
    hd.v_cmp = load_rows<Real>(in.v_tilde, seq.c_begin, nc, c.h_kv, g, c.d_v);
  } else if (want_cmp) {
    const int bi = static_cast<int>(Branch::cmp);
    hd.k_cmp = compress_all(vc, phi_head<Real>(vc, in.phi_k, g, c.d_k), hd.k[bi], round);
    hd.v_cmp = compress_all(vc, phi_head<Real>(vc, in.phi_v, g, c.d_v), hd.v[bi], round);
  }
  return hd;
}

// The G query heads of KV head g at packed row `row`: [G, d_k].
template <class Real>
Mat<Real> group_queries(const ValidConfig& vc, const Inputs& in, int64_t row, int64_t g) {
  // The G heads are consecutive: read them as G rows of a one-head tensor.
  return load_rows<Real>(in.q, row * vc.cfg.h_q + g * vc.group, vc.group, 1, 0, vc.cfg.d_k);
}

template <class Real>
struct RowAttention {
  // Each branch's key set: rows of K_b/V_b (for cmp: rows of the compressed K/V). A branch that
  // is not computed has no segments and a default result.
  std::array<std::vector<Segment>, 3> segs;
  std::array<AttnResult<Real>, 3> res;
  int64_t visible = 0;          // compressed blocks visible to t
  bool computed_top = false;    // the selection was computed here (not given)
  TopN<Real> top;               // the computed selection: indices, ranked scores, gap
  std::vector<int32_t> listed;  // the index list the selection branch used
  // The selection branch's keys and values in key-set order, gathered once when its key set has
  // several segments (every product of the row reads them); empty otherwise.
  Mat<Real> slc_k, slc_v;
};

// The forward of every branch for the G heads `q` of one KV head at position t of a sequence of
// t_k keys. `given` is the row's given index list (given_indices) or nullptr. `keep` says what
// each branch's result holds (the compression branch always keeps its weights: the selection
// scores come from them).
template <class Real, class Round>
RowAttention<Real> attend_row(const ValidConfig& vc, const HeadData<Real>& hd, const Mat<Real>& q,
                              int64_t t, int64_t t_k, const int32_t* given, const Real& scale,
                              const Round& round, AttnKeep keep = {}) {
  const auto& c = vc.cfg;
  const int64_t G = vc.group;
  const int ci = static_cast<int>(Branch::cmp), si = static_cast<int>(Branch::slc),
            wi = static_cast<int>(Branch::win);
  RowAttention<Real> r;
  if (needs_cmp_scores(c)) {
    r.visible = visible_cmp_blocks(vc, t);
    r.segs[ci] = {{0, r.visible}};
    AttnKeep cmp_keep = keep;
    cmp_keep.p = true;
    r.res[ci] = attend(q, hd.k_cmp, hd.v_cmp, r.segs[ci], scale, round, cmp_keep);
  }
  if (c.enable_slc) {
    if (given == nullptr) {
      const int64_t n_cand = num_candidates(vc, t);
      const auto forced = forced_mask(vc, t);
      std::vector<Real> total(static_cast<std::size_t>(n_cand), Real(0));
      for (int64_t h = 0; h < G; ++h) {
        auto ps = map_scores<Real>(vc, r.res[ci].p.row(h), r.visible, n_cand);
        if (c.forced_mode == ForcedMode::score_one)
          for (int64_t j = 0; j < n_cand; ++j)
            if (forced[j]) ps[j] = Real(1);
        for (int64_t j = 0; j < n_cand; ++j) total[j] += ps[j];
      }
      if (c.group_reduce == GroupReduce::mean)
        for (auto& x : total) x /= Real(G);
      r.top = top_n(vc, t, std::move(total));
      r.computed_top = true;
      r.listed = r.top.indices;
    } else {
      r.listed.assign(given, given + c.top_n);
    }
    r.segs[si] = selected_segments(vc, t, t_k, r.listed.data(), given != nullptr);
    if (r.segs[si].size() > 1) {
      r.slc_k = gather_rows(hd.k[si], r.segs[si]);
      r.slc_v = gather_rows(hd.v[si], r.segs[si]);
      r.res[si] = attend(q, r.slc_k, r.slc_v, {{0, r.slc_k.rows()}}, scale, round, keep);
    } else {
      r.res[si] = attend(q, hd.k[si], hd.v[si], r.segs[si], scale, round, keep);
    }
  }
  if (c.enable_win) {
    r.segs[wi] = {window_segment(vc, t)};
    r.res[wi] = attend(q, hd.k[wi], hd.v[wi], r.segs[wi], scale, round, keep);
  }
  return r;
}

}  // namespace nsa::ref::detail
