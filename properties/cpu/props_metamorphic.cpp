// Properties 3, 4 and 5: transformations of the inputs whose effect on the outputs the semantics
// fixes exactly (causality, varlen packing, head permutations).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "common.hpp"
#include "properties.hpp"

namespace nsa::props {
namespace {

// Copies rows [r0, r1) of a [rows, per_row] tensor from src to dst.
template <class T>
void copy_rows(std::vector<T>& dst, const std::vector<T>& src, int64_t r0, int64_t r1,
               int64_t per_row) {
  if (dst.empty()) return;
  std::copy(src.begin() + r0 * per_row, src.begin() + r1 * per_row, dst.begin() + r0 * per_row);
}

}  // namespace

void prop_causality(const Case& c) {
  const auto& cfg = c.cfg;
  NSA_PROP_REQUIRE(!cfg.enable_slc || cfg.slc_causal == nsa::ref::SlcCausal::token,
                   "slc_causal none reads keys after t by definition");
  auto p = prepare(c);
  const auto& vc = p.vc;
  const auto other = nsa::ref::generate_inputs(vc, c.seed ^ 0x9e3779b97f4a7c15ULL, c.regime);
  // Per sequence a cut position: every input at a position after it is replaced.
  auto changed = p.in;
  std::vector<int64_t> cut(vc.seqs.size());
  for (std::size_t s = 0; s < vc.seqs.size(); ++s) {
    const auto& seq = vc.seqs[s];
    cut[s] = static_cast<int64_t>(choose(c.seed, 3, s, static_cast<uint64_t>(seq.t_k + 1))) - 1;
    const int64_t k_from = seq.k_begin + cut[s] + 1, k_to = seq.k_begin + seq.t_k;
    for (int b = 0; b < 3; ++b) {
      copy_rows(changed.k[b], other.k[b], k_from, k_to, cfg.h_kv * cfg.d_k);
      copy_rows(changed.v[b], other.v[b], k_from, k_to, cfg.h_kv * cfg.d_v);
    }
    // Queries after the cut: first query row whose position exceeds it.
    const int64_t first_q =
        seq.q_begin + std::clamp<int64_t>(cut[s] + 1 - (seq.t_k - seq.t_q), 0, seq.t_q);
    const int64_t q_to = seq.q_begin + seq.t_q;
    copy_rows(changed.q, other.q, first_q, q_to, cfg.h_q * cfg.d_k);
    for (int b = 0; b < 3; ++b) copy_rows(changed.gate[b], other.gate[b], first_q, q_to, cfg.h_q);
    copy_rows(changed.indices, other.indices, first_q, q_to, cfg.h_kv * cfg.top_n);
  }
  nsa::ref::RowSelection sel;
  for (int64_t r = 0; r < vc.total_q; ++r) {
    const auto pos = row_pos(vc, r);
    if (pos.t <= cut[static_cast<std::size_t>(pos.seq)]) sel.rows.push_back(r);
  }
  if (sel.rows.empty()) return;
  const auto a = run(vc, p.in, nsa::ref::Precision::f64, sel);
  const auto b = run(vc, changed, nsa::ref::Precision::f64, sel);
  expect_same_outputs("outputs at t <= cut after changing inputs beyond it:", a, b);
  expect_same("p_cmp", a.p_cmp, b.p_cmp);
  expect_same("scores", a.scores, b.scores);
}

void prop_varlen_equals_separate_runs(const Case& c) {
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto& cfg = vc.cfg;
  const auto all = run(vc, p.in);
  for (std::size_t s = 0; s < vc.seqs.size(); ++s) {
    const auto& seq = vc.seqs[s];
    const auto one = sequence_alone(p, s);
    const int64_t q0 = seq.q_begin, q1 = q0 + seq.t_q;
    const auto alone = run(one.vc, one.in);
    const std::string what = "sequence " + std::to_string(s) + " alone vs packed:";
    const auto rows = [&](const std::vector<double>& x, int64_t per_row) {
      return slice_rows(x, q0, q1, per_row);
    };
    for (Branch br : nsa::ref::kAllBranches) {
      const int bi = static_cast<int>(br);
      const std::string name(nsa::ref::to_string(br));
      expect_same(what + " o_" + name, alone.o_branch[bi],
                  rows(all.o_branch[bi], cfg.h_q * cfg.d_v));
      expect_same(what + " lse_" + name, alone.lse[bi], rows(all.lse[bi], cfg.h_q));
    }
    expect_same(what + " o", alone.o, rows(all.o, cfg.h_q * cfg.d_v));
    expect_same(what + " indices", alone.indices,
                slice_rows(all.indices, q0, q1, cfg.h_kv * cfg.top_n));
    // Score rows: the sequence's own width, then padding (0 for p_cmp, -inf for scores).
    for (int64_t r = q0; r < q1; ++r) {
      for (int64_t h = 0; h < cfg.h_q; ++h)
        for (int64_t i = 0; i < all.nc_max; ++i) {
          const double got = all.p_cmp[(r * cfg.h_q + h) * all.nc_max + i];
          const double want =
              i < alone.nc_max ? alone.p_cmp[((r - q0) * cfg.h_q + h) * alone.nc_max + i] : 0.0;
          NSA_PROP_CHECK(got == want, what << " p_cmp row " << r << " head " << h << " block " << i
                                           << ": " << got << " vs " << want);
        }
      for (int64_t g = 0; g < cfg.h_kv; ++g)
        for (int64_t j = 0; j < all.ns_max; ++j) {
          const double got = all.scores[(r * cfg.h_kv + g) * all.ns_max + j];
          const double want = j < alone.ns_max
                                  ? alone.scores[((r - q0) * cfg.h_kv + g) * alone.ns_max + j]
                                  : -std::numeric_limits<double>::infinity();
          NSA_PROP_CHECK(got == want, what << " scores row " << r << " group " << g << " block "
                                           << j << ": " << got << " vs " << want);
        }
    }
  }
}

void prop_query_heads_permute_within_group(const Case& c) {
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto& cfg = vc.cfg;
  const int64_t G = vc.group;
  // Head h = g*G + i reads the query of head g*G + perm_g(i).
  std::vector<int64_t> perm(static_cast<std::size_t>(cfg.h_q));
  for (int64_t g = 0; g < cfg.h_kv; ++g) {
    const auto pg = permutation(c.seed, 10 + static_cast<uint64_t>(g), G);
    for (int64_t i = 0; i < G; ++i) perm[g * G + i] = g * G + pg[i];
  }
  Inputs in2 = p.in;
  in2.q = permute_axis(p.in.q, cfg.h_q, cfg.d_k, perm);
  for (int b = 0; b < 3; ++b) in2.gate[b] = permute_axis(p.in.gate[b], cfg.h_q, 1, perm);
  const auto a = run(vc, p.in);
  const auto b = run(vc, in2);
  // The group sum runs over the heads in another order: scores may differ in the last bits, so
  // the indices must agree where the selection is clear and be a valid selection elsewhere.
  const double delta = 1e-12 * max_abs(a.scores);
  std::vector<char> same_idx(static_cast<std::size_t>(vc.total_q * cfg.h_kv), 1);
  for (int64_t r = 0; r < vc.total_q; ++r) {
    const auto pos = row_pos(vc, r);
    for (int64_t g = 0; g < cfg.h_kv; ++g) {
      const int32_t* ia = a.indices.data() + (r * cfg.h_kv + g) * cfg.top_n;
      const int32_t* ib = b.indices.data() + (r * cfg.h_kv + g) * cfg.top_n;
      const bool equal = std::equal(ia, ia + cfg.top_n, ib);
      same_idx[r * cfg.h_kv + g] = equal;
      if (equal || !computes_top_n(cfg)) {
        NSA_PROP_CHECK(equal, "indices row " << r << " group " << g << " changed");
        continue;
      }
      const double gap = a.score_gap[r * cfg.h_kv + g];
      NSA_PROP_CHECK(gap <= delta, "indices row " << r << " (t " << pos.t << ") group " << g
                                                  << " changed although the score gap " << gap
                                                  << " is clear");
      const auto why =
          selection_within(cfg, pos.t, a.scores.data() + (r * cfg.h_kv + g) * a.ns_max, ib, delta);
      NSA_PROP_CHECK(why.empty(), "indices row " << r << " group " << g << ": " << why);
    }
  }
  const double o_tol =
      1e-13 * std::max({max_abs(a.o_branch[0]), max_abs(a.o_branch[1]), max_abs(a.o_branch[2])});
  for (int64_t r = 0; r < vc.total_q; ++r)
    for (int64_t h = 0; h < cfg.h_q; ++h) {
      const int64_t src = r * cfg.h_q + perm[h], dst = r * cfg.h_q + h;
      const bool slc_ok = same_idx[r * cfg.h_kv + h / G];
      for (int bi = 0; bi < 3; ++bi) {
        if (bi == 1 && !slc_ok) continue;
        const double la = a.lse[bi][src], lb = b.lse[bi][dst];
        NSA_PROP_CHECK(la == lb || std::fabs(la - lb) <= 1e-13 * (1 + std::fabs(la)),
                       "lse branch " << bi << " row " << r << " head " << h << ": " << lb
                                     << ", expected head " << perm[h] << "'s " << la);
        for (int64_t e = 0; e < cfg.d_v; ++e)
          NSA_PROP_CHECK(
              std::fabs(a.o_branch[bi][src * cfg.d_v + e] - b.o_branch[bi][dst * cfg.d_v + e]) <=
                  o_tol,
              "o branch " << bi << " row " << r << " head " << h << " element " << e << ": "
                          << b.o_branch[bi][dst * cfg.d_v + e] << ", expected head " << perm[h]
                          << "'s " << a.o_branch[bi][src * cfg.d_v + e]);
      }
      for (int64_t i = 0; i < a.nc_max; ++i)
        NSA_PROP_CHECK(
            std::fabs(a.p_cmp[src * a.nc_max + i] - b.p_cmp[dst * a.nc_max + i]) <= 1e-13,
            "p_cmp row " << r << " head " << h << " block " << i << " not permuted");
    }
}

void prop_kv_groups_permute(const Case& c) {
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto& cfg = vc.cfg;
  const int64_t G = vc.group;
  const auto sigma = permutation(c.seed, 20, cfg.h_kv);
  std::vector<int64_t> heads(static_cast<std::size_t>(cfg.h_q));
  for (int64_t g = 0; g < cfg.h_kv; ++g)
    for (int64_t i = 0; i < G; ++i) heads[g * G + i] = sigma[g] * G + i;
  Inputs in2 = p.in;
  in2.q = permute_axis(p.in.q, cfg.h_q, cfg.d_k, heads);
  for (int b = 0; b < 3; ++b) {
    in2.gate[b] = permute_axis(p.in.gate[b], cfg.h_q, 1, heads);
    in2.k[b] = permute_axis(p.in.k[b], cfg.h_kv, cfg.d_k, sigma);
    in2.v[b] = permute_axis(p.in.v[b], cfg.h_kv, cfg.d_v, sigma);
  }
  // phi parameters: KV head outermost, each head's block moves as a whole.
  auto heads_outer = [&](const std::vector<double>& x) {
    return x.empty() ? x
                     : permute_axis(x, cfg.h_kv, static_cast<int64_t>(x.size()) / cfg.h_kv, sigma);
  };
  for (auto* ph : {&in2.phi_k, &in2.phi_v})
    for (auto* t : {&ph->pos, &ph->w1, &ph->b1, &ph->w2, &ph->b2}) *t = heads_outer(*t);
  in2.indices = permute_axis(p.in.indices, cfg.h_kv, cfg.top_n, sigma);
  const auto a = run(vc, p.in);
  const auto b = run(vc, in2);
  // Each KV group is computed from its own data only, in the same order: bitwise.
  const auto moved = [&](const std::vector<double>& x, int64_t n, int64_t inner,
                         const std::vector<int64_t>& perm) {
    return permute_axis(x, n, inner, perm);
  };
  for (int bi = 0; bi < 3; ++bi) {
    expect_same("o branch " + std::to_string(bi), moved(a.o_branch[bi], cfg.h_q, cfg.d_v, heads),
                b.o_branch[bi]);
    expect_same("lse branch " + std::to_string(bi), moved(a.lse[bi], cfg.h_q, 1, heads), b.lse[bi]);
  }
  expect_same("o", moved(a.o, cfg.h_q, cfg.d_v, heads), b.o);
  expect_same("indices", permute_axis(a.indices, cfg.h_kv, cfg.top_n, sigma), b.indices);
  expect_same("scores", moved(a.scores, cfg.h_kv, a.ns_max, sigma), b.scores);
  expect_same("p_cmp", moved(a.p_cmp, cfg.h_q, a.nc_max, heads), b.p_cmp);
}

}  // namespace nsa::props
