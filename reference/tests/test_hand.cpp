// Hand-worked cases, T <= 8, d_k = d_v = 1. With q = 0 every score is 0, so every softmax is a
// plain average over the key set: o = mean of the values, lse = log(#keys). The expected numbers
// are worked out in the comments, not produced by the code under test.
#include <catch2/catch.hpp>
#include <cmath>

#include "dense_oracle.hpp"
#include "selection.hpp"  // detail::map_scores, for the l=32, d=16, l'=64 worked example
#include "test_support.hpp"

using namespace nsa;
using namespace nsa::ref;
using Catch::Matchers::Contains;

namespace {

constexpr double kNegInf = -INFINITY;

// One head, d_k = d_v = 1: the same k and v feed all three branches, every gate is 1.
Inputs scalar_inputs(const ValidConfig& vc, std::vector<double> q, std::vector<double> k,
                     std::vector<double> v) {
  Inputs in;
  in.q = std::move(q);
  for (int b = 0; b < 3; ++b) {
    in.k[b] = k;
    in.v[b] = v;
    in.gate[b].assign(static_cast<std::size_t>(vc.total_q * vc.cfg.h_q), 1.0);
  }
  in.indices.assign(static_cast<std::size_t>(input_shapes(vc).indices), -1);
  return in;
}

std::vector<double> iota(int64_t n, double step = 1.0) {
  std::vector<double> x(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = step * static_cast<double>(i);
  return x;
}

Config only(Config c, Branch b) {
  c.enable_cmp = b == Branch::cmp;
  c.enable_slc = b == Branch::slc;
  c.enable_win = b == Branch::win;
  return c;
}

}  // namespace

TEST_CASE("hand: compression visibility, l=2 d=1, mean phi, q=0") {
  // v = [0, 2, 4, 6, 8]; compressed blocks (mean of 2 tokens) are v~ = [1, 3, 5, 7]
  // (N_c(5) = (5-2)/1 + 1 = 4; block i covers tokens i, i+1, its last token is i+1).
  // inclusive: t sees block i iff i+1 <= t -> t blocks: o(t) = mean(1,3,..,2t-1) = t.
  //   t=0: none -> o = 0, lse = -inf; t=1: {1} -> 1, lse log 1 = 0; t=2: {1,3} -> 2, log 2; ...
  // strict: iff i+1 < t -> t-1 blocks: t=0,1 none; t=2: {1} -> 1; t=3: {1,3} -> 2; t=4 -> 3.
  auto c = only(test::tiny(5), Branch::cmp);
  const std::vector<double> zero(5, 0.0);
  for (auto vis : {CmpVisibility::inclusive, CmpVisibility::strict}) {
    c.cmp_visibility = vis;
    const auto vc = validate(c);
    const auto out = forward(vc, scalar_inputs(vc, zero, zero, iota(5, 2.0)), Precision::f64);
    const int64_t shift = vis == CmpVisibility::inclusive ? 0 : 1;
    for (int64_t t = 0; t < 5; ++t) {
      INFO(to_string(vis) << " t=" << t);
      const int64_t seen = std::max<int64_t>(0, t - shift);
      CHECK(out.out(Branch::cmp)[t] == Approx(static_cast<double>(seen)).margin(1e-15));
      if (seen == 0) {
        CHECK(out.lse_of(Branch::cmp)[t] == kNegInf);
        CHECK(out.out(Branch::cmp)[t] == 0.0);
      } else {
        CHECK(out.lse_of(Branch::cmp)[t] == Approx(std::log(static_cast<double>(seen))));
      }
      // p_cmp: 1/seen on the visible blocks, exactly 0 elsewhere.
      for (int64_t i = 0; i < 4; ++i)
        CHECK(out.p_cmp[t * 4 + i] ==
              Approx(i < seen ? 1.0 / static_cast<double>(seen) : 0.0).margin(1e-15));
    }
  }
}

TEST_CASE("hand: score mapping l=2 d=1 l'=2, overlap vs paper_eq9, q=0") {
  // T=6, query t=5: blocks i=0..4 are visible (i+1 <= 5), each p = 1/5. l'/d = 2, l/d = 2.
  // overlap:   P[j] = sum_{b<2} sum_{m<2} p[2j+b-m] = p[2j-1] + 2p[2j] + p[2j+1]
  //   j=0: 0 + 2/5 + 1/5 = 3/5;  j=1: 1/5 + 2/5 + 1/5 = 4/5;  j=2: 1/5 + 2/5 + p[5]=0 -> 3/5
  // paper_eq9: P[j] = sum_{m<2} sum_{n<2} p[2j-m-n] = p[2j] + 2p[2j-1] + p[2j-2]
  //   j=0: 1/5;  j=1: 1/5 + 2/5 + 1/5 = 4/5;  j=2: 1/5 + 2/5 + 1/5 = 4/5
  auto c = only(test::tiny(6), Branch::slc);
  const std::vector<double> zero(6, 0.0);
  const std::vector<std::pair<ScoreMapping, std::vector<double>>> cases = {
      {ScoreMapping::overlap, {0.6, 0.8, 0.6}}, {ScoreMapping::paper_eq9, {0.2, 0.8, 0.8}}};
  for (const auto& [mapping, want] : cases) {
    c.score_mapping = mapping;
    const auto vc = validate(c);
    const auto out = forward(vc, scalar_inputs(vc, zero, zero, zero), Precision::f64);
    REQUIRE(out.ns_max == 3);
    for (int64_t j = 0; j < 3; ++j) {
      INFO(to_string(mapping) << " j=" << j);
      CHECK(out.scores[5 * 3 + j] == Approx(want[j]).epsilon(1e-14));
    }
  }
}

TEST_CASE("hand: worked example l=32 d=16 l'=64 on a synthetic p") {
  // l'/d = 4 strides per selection block, l/d = 2 strides per compressed block.
  // overlap:   compressed block i covers strides i, i+1; selection block j covers 4j .. 4j+3.
  //   Shared strides: i = 4j-1 -> 1 (stride 4j), i = 4j..4j+2 -> 2, i = 4j+3 -> 1 (stride 4j+3):
  //   P[j] = p[4j-1] + 2p[4j] + 2p[4j+1] + 2p[4j+2] + p[4j+3]
  // paper_eq9: P[j] = sum_{m<4} sum_{n<2} p[4j-m-n]; s = m+n takes 0..4 with counts 1,2,2,2,1:
  //   P[j] = p[4j] + 2p[4j-1] + 2p[4j-2] + 2p[4j-3] + p[4j-4]
  // p[i] = (i+1)^2 makes every coefficient visible; p outside [0, visible) is 0.
  Config c;
  c.profile = "custom";
  c.cmp_block = 32;
  c.cmp_stride = 16;
  c.slc_block = 64;
  c.t_k = 640;  // N_c = (640-32)/16 + 1 = 39 compressed blocks, 10 selection blocks
  for (int64_t visible : {int64_t{39}, int64_t{13}}) {
    Eigen::RowVectorXd p(39);
    for (int64_t i = 0; i < 39; ++i)
      p(i) = i < visible ? static_cast<double>((i + 1) * (i + 1)) : 0.0;
    auto at = [&](int64_t i) { return i >= 0 && i < visible ? p(i) : 0.0; };
    for (auto mapping : {ScoreMapping::overlap, ScoreMapping::paper_eq9}) {
      c.score_mapping = mapping;
      const auto vc = validate(c);
      const auto got = detail::map_scores<double>(vc, p, visible, 10);
      const Eigen::RowVectorXd dense = p * oracle::mapping_matrix(vc.cfg, 39, 10);
      for (int64_t j = 0; j < 10; ++j) {
        const double want = mapping == ScoreMapping::overlap
                                ? at(4 * j - 1) + 2 * at(4 * j) + 2 * at(4 * j + 1) +
                                      2 * at(4 * j + 2) + at(4 * j + 3)
                                : at(4 * j) + 2 * at(4 * j - 1) + 2 * at(4 * j - 2) +
                                      2 * at(4 * j - 3) + at(4 * j - 4);
        INFO(to_string(mapping) << " visible=" << visible << " j=" << j);
        CHECK(got[j] == want);    // integers: exact
        CHECK(dense(j) == want);  // and the oracle's mapping matrix agrees
      }
    }
  }
}

TEST_CASE("hand: forced blocks (always) ignore scores, and are clipped to the candidates") {
  // l = d = l' = 2 (identity), T = 8, q = 1, scale 1, k = [0,0,1,1,0,0,0,0].
  // Compressed keys (pair means): [0, 1, 0, 0]; at t = 7 all 4 are visible (2i+1 <= 7):
  //   P = [1, e, 1, 1] / (e + 3): block 1 has the top score.
  auto c = only(test::tiny(8), Branch::slc);
  c.cmp_block = c.cmp_stride = c.slc_block = 2;
  c.score_mapping = ScoreMapping::identity;
  c.scale = 1.0;
  const std::vector<double> q(8, 1.0), k = {0, 0, 1, 1, 0, 0, 0, 0}, v(8, 0.0);
  struct Row {
    int64_t n_init, n_local, top_n, t;
    std::vector<int32_t> want;
  };
  const std::vector<Row> rows = {
      // forced {0} + local {2, 3} fill all 3 slots: block 1 loses despite the top score.
      {1, 2, 3, 7, {0, 2, 3}},
      // forced {0, 3}; one free slot: block 1 (e/(e+3)) beats block 2 (1/(e+3)).
      {1, 1, 3, 7, {0, 1, 3}},
      // nothing forced, one slot: the top score.
      {0, 0, 1, 7, {1}},
      // t = 1: current block 0, local {-1, 0} clips to {0}; one candidate only.
      {1, 2, 3, 1, {0, -1, -1}},
      // t = 2: candidates {0, 1}, both forced.
      {1, 2, 3, 2, {0, 1, -1}},
  };
  for (const auto& r : rows) {
    c.n_init = r.n_init;
    c.n_local = r.n_local;
    c.top_n = r.top_n;
    const auto vc = validate(c);
    const auto out = forward(vc, scalar_inputs(vc, q, k, v), Precision::f64);
    const std::vector<int32_t> got(out.indices.begin() + r.t * r.top_n,
                                   out.indices.begin() + (r.t + 1) * r.top_n);
    INFO("n_init " << r.n_init << " n_local " << r.n_local << " n " << r.top_n << " t " << r.t);
    CHECK(got == r.want);
  }
}

TEST_CASE("hand: forced_mode score_one lets a high overlap score displace a forced block") {
  // l=2, d=1, l'=2 (overlap), T=8, q=1, scale 1, k = [0,0,20,20,0,0,0,0].
  // Compressed keys (pair means): [0,10,20,10,0,0,0]; at t=7 all 7 are visible, p is ~one-hot
  // on block 2 (p2 = e^20 / (e^20 + 2e^10 + 4) > 0.9999).
  // Overlap scores P[j] = p[2j-1] + 2p[2j] + p[2j+1]: P[1] = p1 + 2p2 + p3 ~ 2 > 1.
  // always (n_init 1, n_local 2, n 3): forced {0, 2, 3} fill every slot -> {0, 2, 3}.
  // score_one: forced blocks score exactly 1; ranking {1 (~2), 0 (1), 2 (1), 3 (1)} with the
  // lower index winning the tie at 1 -> {0, 1, 2}.
  auto c = only(test::tiny(8), Branch::slc);
  c.scale = 1.0;
  const std::vector<double> q(8, 1.0), k = {0, 0, 20, 20, 0, 0, 0, 0}, v(8, 0.0);
  for (auto mode : {ForcedMode::always, ForcedMode::score_one}) {
    c.forced_mode = mode;
    const auto vc = validate(c);
    const auto out = forward(vc, scalar_inputs(vc, q, k, v), Precision::f64);
    const std::vector<int32_t> got(out.indices.begin() + 7 * 3, out.indices.begin() + 8 * 3);
    INFO(to_string(mode));
    CHECK(got == (mode == ForcedMode::always ? std::vector<int32_t>{0, 2, 3}
                                             : std::vector<int32_t>{0, 1, 2}));
    if (mode == ForcedMode::score_one) {
      CHECK(out.scores[7 * 4 + 0] == 1.0);  // forced: set to exactly 1
      CHECK(out.scores[7 * 4 + 1] > 1.99);
    }
  }
}

TEST_CASE("hand: ties and zero-score candidates") {
  // l = d = l' = 2 (identity), T = 8, q = 0, nothing forced.
  // inclusive, t = 7: 4 visible blocks, P = 1/4 each (a 4-way tie).
  //   n = 2: lower_index_first -> {0, 1}; higher_index_first -> {2, 3}; score gap 0.
  // strict, t = 7: blocks with 2i+1 < 7 -> {0,1,2}, P = 1/3; block 3 is a candidate with P = 0.
  //   n = 4 -> {0,1,2,3} (zero-score candidates stay eligible);
  //   n = 2, higher_index_first -> {1, 2} (block 3 ranks last, below the tie).
  auto c = only(test::tiny(8), Branch::slc);
  c.cmp_block = c.cmp_stride = c.slc_block = 2;
  c.score_mapping = ScoreMapping::identity;
  c.n_init = c.n_local = 0;
  const std::vector<double> zero(8, 0.0);
  struct Row {
    CmpVisibility vis;
    TieBreak tie;
    int64_t n;
    std::vector<int32_t> want;
  };
  for (const auto& r :
       std::vector<Row>{{CmpVisibility::inclusive, TieBreak::lower_index_first, 2, {0, 1}},
                        {CmpVisibility::inclusive, TieBreak::higher_index_first, 2, {2, 3}},
                        {CmpVisibility::strict, TieBreak::lower_index_first, 4, {0, 1, 2, 3}},
                        {CmpVisibility::strict, TieBreak::higher_index_first, 2, {1, 2}}}) {
    c.cmp_visibility = r.vis;
    c.tie_break = r.tie;
    c.top_n = r.n;
    const auto vc = validate(c);
    const auto out = forward(vc, scalar_inputs(vc, zero, zero, zero), Precision::f64);
    const std::vector<int32_t> got(out.indices.begin() + 7 * r.n, out.indices.begin() + 8 * r.n);
    INFO(to_string(r.vis) << " " << to_string(r.tie) << " n=" << r.n);
    CHECK(got == r.want);
    if (r.vis == CmpVisibility::inclusive) CHECK(out.score_gap[7] == 0.0);
  }
}

TEST_CASE("hand: window keys w and w_plus_one") {
  // T = 8, v = [0..7], q = 0: o_win(t) = mean of v over the window, lse = log(#keys).
  // w = 3:          keys [t-2, t]:  t=0 -> 0 (1 key), t=1 -> 0.5 (2), t>=2 -> t-1 (3 keys)
  // w_plus_one, 3:  keys [t-3, t]:  t=0 -> 0, t=1 -> 0.5, t=2 -> 1, t>=3 -> t-1.5 (4 keys)
  // w = 1:          key t only:     o = t, lse = 0
  auto c = only(test::tiny(8), Branch::win);
  const std::vector<double> zero(8, 0.0);
  struct Row {
    int64_t w;
    WindowKeys keys;
  };
  for (const auto& r :
       std::vector<Row>{{3, WindowKeys::w}, {3, WindowKeys::w_plus_one}, {1, WindowKeys::w}}) {
    c.window = r.w;
    c.window_keys = r.keys;
    const auto vc = validate(c);
    const auto out = forward(vc, scalar_inputs(vc, zero, zero, iota(8)), Precision::f64);
    const int64_t span = r.keys == WindowKeys::w ? r.w : r.w + 1;
    for (int64_t t = 0; t < 8; ++t) {
      const int64_t first = std::max<int64_t>(0, t - span + 1), count = t - first + 1;
      const double mean = 0.5 * static_cast<double>(first + t);  // mean of first..t
      INFO("w=" << r.w << " " << to_string(r.keys) << " t=" << t);
      CHECK(out.out(Branch::win)[t] == Approx(mean).margin(1e-15));
      CHECK(out.lse_of(Branch::win)[t] ==
            Approx(std::log(static_cast<double>(count))).margin(1e-15));
    }
  }
}

TEST_CASE("hand: selection key sets under slc_causal and index policies") {
  // l = d = l' = 4, T = 8, v = [0..7], q = 0, given indices; row t = 5 (block 1 is current).
  //   [0, 1, 1], multiset, token:    keys 0..3 once, 4,5 twice: (0+1+2+3 + 2*(4+5)) / 8 = 3,
  //                                  lse log 8
  //   [0, 1, 1], skip_invalid, token: keys 0..5: 15/6 = 2.5, lse log 6
  //   [0, 1, 1], skip_invalid, none:  keys 0..7 (block 1 whole): 28/8 = 3.5, lse log 8
  //   [-3, 2, 1], skip_invalid:       -3 and the future block 2 ignored: keys 4,5 -> 4.5, log 2
  //   [-3, 2, 1], multiset:           same set -> 4.5, log 2
  // Every other row lists only -1: empty key set -> o = 0 exactly, lse = -inf.
  auto c = only(test::tiny(8), Branch::slc);
  c.cmp_block = c.cmp_stride = c.slc_block = 4;
  c.given_indices = true;
  const std::vector<double> zero(8, 0.0);
  struct Row {
    std::vector<int32_t> list;
    IndexPolicy policy;
    SlcCausal causal;
    double o, keys;
  };
  for (const auto& r :
       std::vector<Row>{{{0, 1, 1}, IndexPolicy::multiset, SlcCausal::token, 3.0, 8},
                        {{0, 1, 1}, IndexPolicy::skip_invalid, SlcCausal::token, 2.5, 6},
                        {{0, 1, 1}, IndexPolicy::skip_invalid, SlcCausal::none, 3.5, 8},
                        {{-3, 2, 1}, IndexPolicy::skip_invalid, SlcCausal::token, 4.5, 2},
                        {{-3, 2, 1}, IndexPolicy::multiset, SlcCausal::token, 4.5, 2}}) {
    c.index_policy = r.policy;
    c.slc_causal = r.causal;
    const auto vc = validate(c);
    auto in = scalar_inputs(vc, zero, zero, iota(8));
    std::copy(r.list.begin(), r.list.end(), in.indices.begin() + 5 * 3);
    const auto out = forward(vc, in, Precision::f64);
    INFO(to_string(r.policy) << " " << to_string(r.causal) << " list " << r.list[0] << ","
                             << r.list[1] << "," << r.list[2]);
    CHECK(out.out(Branch::slc)[5] == Approx(r.o).margin(1e-15));
    CHECK(out.lse_of(Branch::slc)[5] == Approx(std::log(r.keys)).margin(1e-15));
    for (int64_t t = 0; t < 8; ++t) {
      if (t == 5) continue;
      CHECK(out.out(Branch::slc)[t] == 0.0);
      CHECK(out.lse_of(Branch::slc)[t] == kNegInf);
    }
    // The index output echoes the given list unchanged.
    CHECK(std::vector<int32_t>(out.indices.begin() + 15, out.indices.begin() + 18) == r.list);
  }
  // The strict policy rejects the duplicate, naming where it is.
  c.index_policy = IndexPolicy::strict;
  const auto vc = validate(c);
  auto in = scalar_inputs(vc, zero, zero, iota(8));
  in.indices[5 * 3 + 0] = 0;
  in.indices[5 * 3 + 1] = 1;
  in.indices[5 * 3 + 2] = 1;
  CHECK_THROWS_WITH(forward(vc, in, Precision::f64),
                    Contains("t 5") && Contains("slot 2") && Contains("duplicate"));
}

TEST_CASE("hand: gated combination and disabled branches") {
  // T = 4, v = [0, 4, 8, 12], q = 0, l=2 d=1 l'=2, w=2; row t=3:
  //   cmp: v~ = [2, 6, 10], visible i+1 <= 3 -> all three: o_cmp = 6
  //   slc: candidates j <= 1, n=3 with forced {0, 1}: keys 0..3 -> o_slc = 6
  //   win: keys 2, 3 -> o_win = 10
  // gates (0.5, 0.25, 2): o = 0.5*6 + 0.25*6 + 2*10 = 24.5. With the window disabled (its gate
  // tensor left empty, never read): o = 0.5*6 + 0.25*6 = 4.5.
  auto c = test::tiny(4);
  c.window = 2;
  const std::vector<double> zero(4, 0.0), v = {0, 4, 8, 12};
  auto vc = validate(c);
  auto in = scalar_inputs(vc, zero, zero, v);
  in.gate[0].assign(4, 0.5);
  in.gate[1].assign(4, 0.25);
  in.gate[2].assign(4, 2.0);
  auto out = forward(vc, in, Precision::f64);
  CHECK(out.out(Branch::cmp)[3] == Approx(6.0));
  CHECK(out.out(Branch::slc)[3] == Approx(6.0));
  CHECK(out.out(Branch::win)[3] == Approx(10.0));
  CHECK(out.o[3] == Approx(24.5));
  c.enable_win = false;
  vc = validate(c);
  in.gate[2].clear();
  out = forward(vc, in, Precision::f64);
  CHECK(out.o[3] == Approx(4.5));
  CHECK(out.out(Branch::win)[3] == 0.0);
  CHECK(out.lse_of(Branch::win)[3] == kNegInf);
}
