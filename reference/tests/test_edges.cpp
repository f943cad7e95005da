// Edge shapes against the dense oracle, row subsets against the full computation, and the
// empty-key-set rule (o exactly 0, lse = -inf, never NaN).
#include <catch2/catch.hpp>
#include <cmath>

#include "dense_oracle.hpp"
#include "test_support.hpp"

using namespace nsa;
using namespace nsa::ref;

namespace {

// l = 4, d = 2, l' = 8.
Config blocks(int64_t t_k, int64_t h_q, int64_t h_kv) {
  Config c;
  c.profile = "custom";
  c.t_k = t_k;
  c.h_q = h_q;
  c.h_kv = h_kv;
  c.d_k = 3;
  c.d_v = 2;
  c.cmp_block = 4;
  c.cmp_stride = 2;
  c.slc_block = 8;
  c.top_n = 3;
  c.window = 5;
  return c;
}

void check_oracle(const Config& c, uint64_t seed = 1) {
  const auto vc = validate(c);
  const auto in = generate_inputs(vc, seed);
  const auto out = forward(vc, in, Precision::f64, test::single_thread());
  INFO(describe(c));
  CHECK(oracle::diff(out, oracle::dense_forward(vc, in), 1e-12) == "");
  // Never NaN; lse is finite or -inf.
  for (int b = 0; b < 3; ++b) {
    for (double x : out.o_branch[b]) CHECK(std::isfinite(x));
    for (double x : out.lse[b]) CHECK((std::isfinite(x) || x == -INFINITY));
  }
}

}  // namespace

TEST_CASE("edges: T_k around l and l', G = 1 and G = H_q, n beyond the block count, w = 1") {
  for (int64_t t_k : {0, 1, 3, 4, 5, 7, 8, 9}) {  // 0, 1, l-1, l, l+1, l'-1, l', l'+1
    for (auto [h_q, h_kv] : {std::pair<int64_t, int64_t>{2, 2}, {3, 1}}) {
      Config c = blocks(t_k, h_q, h_kv);
      check_oracle(c);
      c.top_n = 6;  // more than N_s(9) = 2 blocks: -1 padding
      c.window = 1;
      check_oracle(c);
      c.cmp_visibility = CmpVisibility::strict;
      c.window_keys = WindowKeys::w_plus_one;
      check_oracle(c);
    }
  }
}

TEST_CASE("edges: varlen with empty and short sequences, and query suffixes") {
  Config c = blocks(0, 4, 2);
  c.layout = Layout::varlen;
  c.cu_seqlens_k = {0, 0, 1, 1, 4, 13, 13, 30};
  check_oracle(c);
  c.cu_seqlens_q = {0, 0, 1, 1, 2, 5, 5, 22};  // decode (1 query) and suffixes
  check_oracle(c);
  Config p = blocks(25, 2, 1);
  p.batch = 3;
  p.t_q = 1;  // decode
  check_oracle(p);
  p.t_q = 0;  // no queries at all
  check_oracle(p);
  // A suffix row equals the same position's row of the full prefill.
  Config full = blocks(25, 2, 1), tail = full;
  tail.t_q = 6;
  const auto vf = validate(full), vt = validate(tail);
  auto in_t = generate_inputs(vt, 4);
  auto in_f = generate_inputs(vf, 4);
  in_f.q.assign(in_f.q.size(), 0.0);
  for (int b = 0; b < 3; ++b) in_f.gate[b].assign(in_f.gate[b].size(), 0.0);
  const int64_t qrow = 2 * 3, grow = 2;  // elements per query row (h_q * d_k), per gate row
  std::copy(in_t.q.begin(), in_t.q.end(), in_f.q.begin() + 19 * qrow);
  for (int b = 0; b < 3; ++b)
    std::copy(in_t.gate[b].begin(), in_t.gate[b].end(), in_f.gate[b].begin() + 19 * grow);
  in_f.k = in_t.k;
  in_f.v = in_t.v;
  const auto of = forward(vf, in_f, Precision::f64), ot = forward(vt, in_t, Precision::f64);
  const int64_t orow = 2 * 2;  // h_q * d_v
  CHECK(std::vector<double>(of.o.begin() + 19 * orow, of.o.end()) == ot.o);
  CHECK(std::vector<int32_t>(of.indices.begin() + 19 * 3, of.indices.end()) == ot.indices);
}

TEST_CASE("edges: row and head subsets equal the full computation's rows") {
  for (uint64_t seed : {3u, 8u, 13u}) {
    Config c = test::random_config(seed);
    c.h_kv = 2;
    c.h_q = 6;
    c.layout = Layout::padded;  // at least 3 query rows
    c.cu_seqlens_k.clear();
    c.cu_seqlens_q.clear();
    c.batch = 2;
    c.t_k = 11;
    c.t_q = 9;
    const auto vc = validate(c);
    const auto in = generate_inputs(vc, seed);
    const auto full = forward(vc, in, Precision::f64);
    RowSelection s;
    s.rows = {vc.total_q - 1, 0, vc.total_q / 2};
    s.heads = {5, 0, 4};  // G = 3: KV heads 1, 0, 1
    const auto sub = forward(vc, in, Precision::f64, s);
    REQUIRE(sub.groups == std::vector<int64_t>{0, 1});
    INFO(describe(c));
    const int64_t dv = c.d_v, n = c.top_n;
    for (std::size_t ri = 0; ri < s.rows.size(); ++ri) {
      const int64_t r = s.rows[ri];
      for (std::size_t hi = 0; hi < s.heads.size(); ++hi) {
        const int64_t h = s.heads[hi];
        for (int64_t e = 0; e < dv; ++e) {
          CHECK(sub.o[(ri * 3 + hi) * dv + e] == full.o[(r * 6 + h) * dv + e]);
          for (int b = 0; b < 3; ++b)
            CHECK(sub.o_branch[b][(ri * 3 + hi) * dv + e] ==
                  full.o_branch[b][(r * 6 + h) * dv + e]);
        }
        for (int b = 0; b < 3; ++b) CHECK(sub.lse[b][ri * 3 + hi] == full.lse[b][r * 6 + h]);
        for (int64_t i = 0; i < full.nc_max; ++i)
          CHECK(sub.p_cmp[(ri * 3 + hi) * full.nc_max + i] ==
                full.p_cmp[(r * 6 + h) * full.nc_max + i]);
      }
      for (int64_t g = 0; g < 2; ++g) {
        for (int64_t k = 0; k < n; ++k)
          CHECK(sub.indices[(ri * 2 + g) * n + k] == full.indices[(r * 2 + g) * n + k]);
        for (int64_t j = 0; j < full.ns_max; ++j)
          CHECK(sub.scores[(ri * 2 + g) * full.ns_max + j] ==
                full.scores[(r * 2 + g) * full.ns_max + j]);
      }
    }
  }
}

TEST_CASE("edges: select_rows of full outputs equals computing only those rows") {
  for (uint64_t seed : {4u, 9u}) {
    Config c = test::random_config(seed);
    c.layout = Layout::padded;
    c.cu_seqlens_k.clear();
    c.cu_seqlens_q.clear();
    c.batch = 2;
    c.t_k = 13;
    c.t_q = 7;
    const auto vc = validate(c);
    const auto in = generate_inputs(vc, seed);
    const auto full = forward(vc, in, Precision::f64);
    RowSelection s;
    s.rows = {vc.total_q - 1, 0, 5, 5};
    const auto sub = forward(vc, in, Precision::f64, s);
    const auto picked = select_rows(full, s.rows);
    INFO(describe(c));
    CHECK(picked.rows == sub.rows);
    CHECK(picked.o == sub.o);
    for (int b = 0; b < 3; ++b) {
      CHECK(picked.o_branch[b] == sub.o_branch[b]);
      CHECK(picked.lse[b] == sub.lse[b]);
    }
    CHECK(picked.p_cmp == sub.p_cmp);
    CHECK(picked.scores == sub.scores);
    CHECK(picked.score_gap == sub.score_gap);
    CHECK(picked.indices == sub.indices);
    CHECK_THROWS_WITH(select_rows(full, {vc.total_q}),
                      Catch::Contains("row " + std::to_string(vc.total_q) + " is not in [0, "));
    CHECK_THROWS_WITH(select_rows(sub, {0}), Catch::Contains("not every row in order"));
  }
}

TEST_CASE("edges: empty key sets give o = 0 exactly and lse = -inf in every precision") {
  // T_k = 3 < l = 4: no compressed block exists. Given indices all -1: no selected key.
  Config c = blocks(3, 2, 1);
  c.given_indices = true;
  c.index_policy = IndexPolicy::skip_invalid;
  const auto vc = validate(c);
  auto in = generate_inputs(vc, 2);
  in.indices.assign(in.indices.size(), -1);
  for (auto p : {Precision::f64, Precision::f128, Precision::bin50, Precision::baseline}) {
    const auto out = forward(vc, in, p);
    INFO(to_string(p));
    for (Branch b : {Branch::cmp, Branch::slc}) {
      for (double x : out.out(b)) CHECK(x == 0.0);
      for (double x : out.lse_of(b)) CHECK(x == -INFINITY);
    }
    // The window always holds t itself: finite, and o is the gated window output alone.
    for (double x : out.lse_of(Branch::win)) CHECK(std::isfinite(x));
    for (std::size_t i = 0; i < out.o.size(); ++i) CHECK(std::isfinite(out.o[i]));
  }
  // Lists of invalid entries only, under both lenient policies, are empty sets too.
  for (auto policy : {IndexPolicy::skip_invalid, IndexPolicy::multiset}) {
    Config d = blocks(20, 2, 1);
    d.given_indices = true;
    d.index_policy = policy;
    const auto vd = validate(d);
    auto id = generate_inputs(vd, 2);
    id.indices.assign(id.indices.size(), 99);
    const auto out = forward(vd, id, Precision::f64);
    for (double x : out.out(Branch::slc)) CHECK(x == 0.0);
    for (double x : out.lse_of(Branch::slc)) CHECK(x == -INFINITY);
  }
}
