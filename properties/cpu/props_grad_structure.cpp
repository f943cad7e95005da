// Gradient properties G3, G4, G6 and G11 to G13: transformations whose effect on the gradients
// the semantics fixes (causality, varlen packing, head permutations), and the bookkeeping of the
// backward (row/key subsets, thread counts, the selection as a constant).
#include <algorithm>
#include <cmath>

#include "dense_oracle.hpp"
#include "grad_common.hpp"
#include "properties.hpp"

namespace nsa::props {

void prop_grad_causality(const Case& c) {
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto& cfg = vc.cfg;
  auto d_o = grad_output(vc, c.seed);
  // Per sequence a cut: dO is zeroed at every row after it.
  std::vector<int64_t> cut(vc.seqs.size());
  for (std::size_t s = 0; s < vc.seqs.size(); ++s)
    cut[s] =
        static_cast<int64_t>(choose(c.seed, 80, s, static_cast<uint64_t>(vc.seqs[s].t_k + 1))) - 1;
  const int64_t per_row = cfg.h_q * cfg.d_v;
  const auto pos = row_positions(vc);
  for (int64_t r = 0; r < vc.total_q; ++r)
    if (pos[r].t > cut[static_cast<std::size_t>(pos[r].seq)])
      std::fill_n(d_o.begin() + r * per_row, per_row, 0.0);
  const auto g = run_backward(vc, p.in, d_o);
  // Rows after the cut: dq and dg exactly 0.
  for (int64_t r = 0; r < vc.total_q; ++r) {
    if (pos[r].t <= cut[static_cast<std::size_t>(pos[r].seq)]) continue;
    for (int64_t e = 0; e < cfg.h_q * cfg.d_k; ++e)
      NSA_PROP_CHECK(g.dq[r * cfg.h_q * cfg.d_k + e] == 0,
                     "dq row " << r << " (t " << pos[r].t
                               << ") = " << g.dq[r * cfg.h_q * cfg.d_k + e]
                               << " with dO = 0 from t > " << cut[pos[r].seq] << " on");
    for (int b = 0; b < 3; ++b)
      for (int64_t h = 0; h < cfg.h_q; ++h)
        NSA_PROP_CHECK(g.dg[b][r * cfg.h_q + h] == 0,
                       "dg branch " << b << " row " << r << " (t " << pos[r].t << ") is not 0");
  }
  // Keys: a token after the cut is attended only by rows after it, except under slc_causal =
  // none, where a row attends its whole current block. The compressed blocks a row sees end at
  // or before it, so a token after the cut is in none of them.
  const bool block_wise = cfg.slc_causal == nsa::ref::SlcCausal::none;
  for (std::size_t s = 0; s < vc.seqs.size(); ++s) {
    const auto& seq = vc.seqs[s];
    const int64_t last = cut[s];
    const int64_t slc_from =
        last < 0 ? 0 : (block_wise ? (last / cfg.slc_block + 1) * cfg.slc_block : last + 1);
    for (int64_t u = 0; u < seq.t_k; ++u) {
      const int64_t tok = seq.k_begin + u;
      for (Branch br : nsa::ref::kAllBranches) {
        const int bi = static_cast<int>(br);
        const int64_t from = br == Branch::slc ? slc_from : last + 1;
        if (u < from) continue;
        for (int64_t e = 0; e < cfg.h_kv * cfg.d_k; ++e)
          NSA_PROP_CHECK(g.dk[bi][tok * cfg.h_kv * cfg.d_k + e] == 0,
                         "dk_" << nsa::ref::to_string(br) << " token " << tok << " (seq " << s
                               << ", u " << u << ") = " << g.dk[bi][tok * cfg.h_kv * cfg.d_k + e]
                               << " but dO is 0 after t = " << last);
        for (int64_t e = 0; e < cfg.h_kv * cfg.d_v; ++e)
          NSA_PROP_CHECK(g.dv[bi][tok * cfg.h_kv * cfg.d_v + e] == 0,
                         "dv_" << nsa::ref::to_string(br) << " token " << tok << " (seq " << s
                               << ", u " << u << ") = " << g.dv[bi][tok * cfg.h_kv * cfg.d_v + e]
                               << " but dO is 0 after t = " << last);
      }
      if (!cfg.shared_kv || u < std::max(slc_from, last + 1)) continue;
      for (int64_t e = 0; e < cfg.h_kv * cfg.d_k; ++e)
        NSA_PROP_CHECK(g.dk_shared[tok * cfg.h_kv * cfg.d_k + e] == 0,
                       "dk_shared token " << tok << " is not 0 after the cut " << last);
    }
  }
}

void prop_grad_varlen_equals_separate_runs(const Case& c) {
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto& cfg = vc.cfg;
  const auto d_o = grad_output(vc, c.seed);
  const auto all = run_backward(vc, p.in, d_o);
  // phi's parameter gradients are a sum over the sequences, in order.
  Gradients sum = all;
  for (const auto& [name, t] : all_tensors(sum))
    if (name.rfind("dphi_", 0) == 0) std::fill(t->begin(), t->end(), 0.0);
  const int64_t qd = cfg.h_q * cfg.d_k, kd = cfg.h_kv * cfg.d_k, vd = cfg.h_kv * cfg.d_v;
  for (std::size_t s = 0; s < vc.seqs.size(); ++s) {
    const auto& seq = vc.seqs[s];
    const auto one = sequence_alone(p, s);
    const int64_t q0 = seq.q_begin, q1 = q0 + seq.t_q, k0 = seq.k_begin, k1 = k0 + seq.t_k;
    const auto alone = run_backward(one.vc, one.in, slice_rows(d_o, q0, q1, cfg.h_q * cfg.d_v));
    const std::string what = "sequence " + std::to_string(s) + " alone vs packed:";
    expect_same(what + " dq", alone.dq, slice_rows(all.dq, q0, q1, qd));
    for (Branch br : nsa::ref::kAllBranches) {
      const int bi = static_cast<int>(br);
      const std::string name(nsa::ref::to_string(br));
      expect_same(what + " dg_" + name, alone.dg[bi], slice_rows(all.dg[bi], q0, q1, cfg.h_q));
      expect_same(what + " dk_" + name, alone.dk[bi], slice_rows(all.dk[bi], k0, k1, kd));
      expect_same(what + " dv_" + name, alone.dv[bi], slice_rows(all.dv[bi], k0, k1, vd));
    }
    expect_same(what + " dk_shared", alone.dk_shared, slice_rows(all.dk_shared, k0, k1, kd));
    expect_same(what + " dv_shared", alone.dv_shared, slice_rows(all.dv_shared, k0, k1, vd));
    const auto from = all_tensors(alone);
    auto to = all_tensors(sum);
    for (std::size_t i = 0; i < to.size(); ++i) {
      if (to[i].first.rfind("dphi_", 0) != 0) continue;
      NSA_PROP_CHECK(to[i].second->size() == from[i].second->size(),
                     what << " " << to[i].first << " sizes differ");
      for (std::size_t e = 0; e < to[i].second->size(); ++e)
        (*to[i].second)[e] += (*from[i].second)[e];
    }
  }
  expect_same_grads("packed vs the sum of the sequences' phi gradients:", all, sum);
}

void prop_grad_query_heads_permute_within_group(const Case& c) {
  const auto p = prepare(c);
  auto vc = p.vc;
  const auto& cfg = p.vc.cfg;
  const int64_t G = vc.group;
  std::vector<int64_t> perm(static_cast<std::size_t>(cfg.h_q));
  for (int64_t g = 0; g < cfg.h_kv; ++g) {
    const auto pg = permutation(c.seed, 90 + static_cast<uint64_t>(g), G);
    for (int64_t i = 0; i < G; ++i) perm[g * G + i] = g * G + pg[i];
  }
  Inputs in1 = p.in, in2 = p.in;
  in2.q = permute_axis(p.in.q, cfg.h_q, cfg.d_k, perm);
  for (int b = 0; b < 3; ++b) in2.gate[b] = permute_axis(p.in.gate[b], cfg.h_q, 1, perm);
  const auto d_o = grad_output(vc, c.seed);
  const auto d_o2 = permute_axis(d_o, cfg.h_q, cfg.d_v, perm);
  // The group sum of the selection scores runs in another order: where that moves a near-tie,
  // both runs take the first one's selection as given (the backward never differentiates it).
  if (computes_top_n(cfg)) {
    const auto a = run_forward(vc, in1), b = run_forward(vc, in2);
    if (a.indices != b.indices) {
      nsa::ref::Config fixed = cfg;
      make_custom(fixed);
      fixed.given_indices = true;
      fixed.index_policy = nsa::ref::IndexPolicy::strict;
      vc = nsa::ref::validate(fixed);
      in1.indices = in2.indices = a.indices;
    }
  }
  const auto ga = run_backward(vc, in1, d_o), gb = run_backward(vc, in2, d_o2);
  auto mag = nsa::oracle::dense_backward(vc, in1, d_o).magnitude;
  Gradients want = ga;
  want.dq = permute_axis(ga.dq, cfg.h_q, cfg.d_k, perm);
  mag.dq = permute_axis(mag.dq, cfg.h_q, cfg.d_k, perm);
  for (int b = 0; b < 3; ++b) {
    want.dg[b] = permute_axis(ga.dg[b], cfg.h_q, 1, perm);
    mag.dg[b] = permute_axis(mag.dg[b], cfg.h_q, 1, perm);
  }
  // dK, dV and phi's gradients sum over the group's heads, now in another order.
  expect_close_grads("heads permuted within their groups:", gb, want, mag, 2 * grad_tol(vc));
}

void prop_grad_row_key_subsets(const Case& c) {
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto& cfg = vc.cfg;
  const auto d_o = grad_output(vc, c.seed);
  const auto full = run_backward(vc, p.in, d_o);
  nsa::ref::GradSelection sel;
  sel.query_grads = choose(c.seed, 100, 0, 4) != 0;
  sel.key_grads = choose(c.seed, 100, 1, 4) != 0;
  sel.phi_params = choose(c.seed, 100, 2, 4) != 0;
  // Seed-chosen subsets in a seed-chosen order (an empty list means every row / key).
  auto subset = [&](int64_t total, uint64_t stream) {
    std::vector<int64_t> list;
    for (int64_t i : permutation(c.seed, stream, total))
      if (choose(c.seed, stream + 1, static_cast<uint64_t>(i), 3) == 0) list.push_back(i);
    return list;
  };
  sel.rows = subset(vc.total_q, 101);
  sel.keys = subset(vc.total_k, 103);
  const auto part = run_backward(vc, p.in, d_o, sel);
  std::vector<int64_t> rows = sel.rows, keys = sel.keys;
  if (rows.empty())
    for (int64_t r = 0; r < vc.total_q; ++r) rows.push_back(r);
  if (keys.empty())
    for (int64_t k = 0; k < vc.total_k; ++k) keys.push_back(k);
  if (!sel.query_grads) rows.clear();
  if (!sel.key_grads) keys.clear();
  NSA_PROP_CHECK(part.rows == rows, "the result's rows are not the requested ones");
  NSA_PROP_CHECK(part.keys == keys, "the result's keys are not the requested ones");
  auto pick = [](const std::vector<double>& x, const std::vector<int64_t>& at, int64_t width) {
    std::vector<double> y;
    for (int64_t i : at) y.insert(y.end(), x.begin() + i * width, x.begin() + (i + 1) * width);
    return y;
  };
  const int64_t qd = cfg.h_q * cfg.d_k, kd = cfg.h_kv * cfg.d_k, vd = cfg.h_kv * cfg.d_v;
  expect_same("dq of the chosen rows", part.dq, pick(full.dq, rows, qd));
  for (int b = 0; b < 3; ++b) {
    const std::string s(nsa::ref::to_string(static_cast<Branch>(b)));
    expect_same("dg_" + s + " of the chosen rows", part.dg[b], pick(full.dg[b], rows, cfg.h_q));
    expect_same("dk_" + s + " of the chosen keys", part.dk[b], pick(full.dk[b], keys, kd));
    expect_same("dv_" + s + " of the chosen keys", part.dv[b], pick(full.dv[b], keys, vd));
  }
  if (cfg.shared_kv) {
    expect_same("dk_shared of the chosen keys", part.dk_shared, pick(full.dk_shared, keys, kd));
    expect_same("dv_shared of the chosen keys", part.dv_shared, pick(full.dv_shared, keys, vd));
  }
  const auto tp = all_tensors(part), tf = all_tensors(full);
  const bool phi = sel.key_grads && sel.phi_params;
  for (std::size_t i = 0; i < tp.size(); ++i) {
    if (tp[i].first.rfind("dphi_", 0) != 0) continue;
    if (phi)
      expect_same(tp[i].first + " (a sum over every block, whatever the keys)", *tp[i].second,
                  *tf[i].second);
    else
      NSA_PROP_CHECK(tp[i].second->empty(), tp[i].first << " computed although not asked for");
  }
}

void prop_grad_threads_bitwise(const Case& c) {
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto d_o = grad_output(vc, c.seed);
  const auto one = run_backward(vc, p.in, d_o);
  for (int threads : {2, 3}) {
    nsa::ref::GradSelection sel;
    sel.threads = threads;
    expect_same_grads(
        "threads = " + std::to_string(threads) + " vs 1:", run_backward(vc, p.in, d_o, sel), one);
  }
}

void prop_grad_selection_is_constant(const Case& c) {
  NSA_PROP_REQUIRE(computes_top_n(c.cfg), "needs the selection branch with computed indices");
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto d_o = grad_output(vc, c.seed);
  const auto computed = run_backward(vc, p.in, d_o);
  nsa::ref::Config given = vc.cfg;
  make_custom(given);
  given.given_indices = true;
  given.index_policy = nsa::ref::IndexPolicy::strict;
  const auto vc2 = nsa::ref::validate(given);
  Inputs in2 = p.in;
  in2.indices = run_forward(vc, p.in).indices;
  expect_same_grads("computed selection vs the same lists given:", run_backward(vc2, in2, d_o),
                    computed);
}

}  // namespace nsa::props
