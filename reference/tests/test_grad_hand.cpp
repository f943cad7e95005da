// Hand-worked gradients, T <= 4, one head, d_k = d_v = 1, scale 1, every gate 1. The expected
// numbers are worked out in the comments from docs/semantics.md section 10, not produced by the
// code under test. Softmax backward (one query, key set S, weights P, upstream dO):
//   dP_j = dO v_j,  D = Σ_j P_j dP_j = dO o,  dS_j = P_j (dP_j - D),
//   dq = Σ_j dS_j k_j,  dk_j += dS_j q,  dv_j += P_j dO.
#include <catch2/catch.hpp>
#include <cmath>

#include "nsa/ref/backward.hpp"
#include "test_support.hpp"

using namespace nsa;
using namespace nsa::ref;

namespace {

Config one_branch(int64_t t_k, Branch b) {
  Config c = test::tiny(t_k);
  c.scale = 1.0;
  c.enable_cmp = b == Branch::cmp;
  c.enable_slc = b == Branch::slc;
  c.enable_win = b == Branch::win;
  return c;
}

// The same k and v for every branch, every gate 1.
Inputs inputs_of(const ValidConfig& vc, std::vector<double> q, std::vector<double> k,
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

}  // namespace

TEST_CASE("grad hand: window of two keys, T=2") {
  // w = 2 (keys t-1, t). q = [0, 1], k = [0, ln 3], v = [2, 6], dO = [1/2, 1].
  // t = 0: S = {0}, P = [1]: D = dP_0, so dS = 0: dq_0 = 0, nothing to dk; dv_0 += 1 * 1/2.
  //        o_0 = 2, dg_0 = dO o = 1.
  // t = 1: z = q k = [0, ln 3] -> P = [1/4, 3/4], o_1 = 1/2 + 9/2 = 5; dP = [2, 6], D = 5,
  //        dS = [1/4 (2 - 5), 3/4 (6 - 5)] = [-3/4, 3/4];
  //        dq_1 = -3/4 * 0 + 3/4 * ln 3;  dk += dS q_1 = [-3/4, 3/4];  dv += P = [1/4, 3/4];
  //        dg_1 = 1 * 5 = 5.
  // Totals: dq = [0, 0.75 ln 3], dk = [-0.75, 0.75], dv = [0.75, 0.75], dg = [1, 5].
  auto c = one_branch(2, Branch::win);
  c.window = 2;
  const auto vc = validate(c);
  const auto in = inputs_of(vc, {0, 1}, {0, std::log(3.0)}, {2, 6});
  const auto g = backward(vc, in, {0.5, 1.0}, Precision::f64);
  CHECK(g.dq[0] == 0.0);
  CHECK(g.dq[1] == Approx(0.75 * std::log(3.0)));
  CHECK(g.dk_of(Branch::win)[0] == Approx(-0.75));
  CHECK(g.dk_of(Branch::win)[1] == Approx(0.75));
  CHECK(g.dv_of(Branch::win)[0] == Approx(0.75));
  CHECK(g.dv_of(Branch::win)[1] == Approx(0.75));
  CHECK(g.dg_of(Branch::win)[0] == Approx(1.0));
  CHECK(g.dg_of(Branch::win)[1] == Approx(5.0));
  // The disabled branches' gradients are exactly zero.
  for (Branch b : {Branch::cmp, Branch::slc}) {
    for (double x : g.dk_of(b)) CHECK(x == 0.0);
    for (double x : g.dv_of(b)) CHECK(x == 0.0);
    for (double x : g.dg_of(b)) CHECK(x == 0.0);
  }
}

TEST_CASE("grad hand: compression, mean phi l=2 d=1, a token in two blocks, T=3") {
  // Blocks: 0 = tokens {0, 1}, 1 = tokens {1, 2} (token 1 is in both). q = 0: every visible block
  // weighs the same. k = [1, 5, 9] -> k~ = [3, 7]; v = [0, 2, 4] -> v~ = [1, 3].
  // dO = [7, 1, 1] (t = 0 sees no block: its dO reaches nothing).
  // t = 0: empty set: o = 0, every gradient term 0, dg_0 = 7 * 0 = 0.
  // t = 1: block 0 alone, P = [1]: dS = 0; dv~_0 += 1; o = 1, dg_1 = 1.
  // t = 2: P = [1/2, 1/2], o = 2, dP = v~ = [1, 3], D = 2, dS = [-1/2, 1/2];
  //        dq_2 = -1/2 * 3 + 1/2 * 7 = 2;  dk~ += dS * 0 = 0;  dv~ += [1/2, 1/2];  dg_2 = 2.
  // dv~ = [3/2, 1/2] flows back through the mean (1/l = 1/2 to each token of a block):
  //   dv = [3/4, (3/2 + 1/2)/2, 1/4] = [0.75, 1, 0.25]; dk = 0 (q = 0).
  const auto vc = validate(one_branch(3, Branch::cmp));
  const auto in = inputs_of(vc, {0, 0, 0}, {1, 5, 9}, {0, 2, 4});
  const auto g = backward(vc, in, {7, 1, 1}, Precision::f64);
  CHECK(g.dq[0] == 0.0);
  CHECK(g.dq[1] == 0.0);
  CHECK(g.dq[2] == Approx(2.0));
  const auto& dv = g.dv_of(Branch::cmp);
  CHECK(dv[0] == Approx(0.75));
  CHECK(dv[1] == Approx(1.0));
  CHECK(dv[2] == Approx(0.25));
  for (double x : g.dk_of(Branch::cmp)) CHECK(x == 0.0);
  const auto& dg = g.dg_of(Branch::cmp);
  CHECK(dg[0] == 0.0);
  CHECK(dg[1] == Approx(1.0));
  CHECK(dg[2] == Approx(2.0));
}

TEST_CASE("grad hand: a block listed twice under multiset counts twice, once under skip_invalid") {
  // l' = 2: block 0 = tokens {0, 1}, block 1 = tokens {2, 3}. Only row t = 3 lists blocks,
  // [1, 1, 0]; rows 0..2 list nothing (-1): empty sets, exactly zero. q = 0, so every listed key
  // weighs the same; k = [0, 0, 0, 1], v = [0, 6, 12, 18], dO_3 = 1.
  // multiset: listings 0, 1, 2, 2, 3, 3 (six), P = 1/6 each:
  //   o = (0 + 6 + 2*12 + 2*18) / 6 = 11;  dv = [1/6, 1/6, 2/6, 2/6];
  //   dS per listing = (v - 11)/6, dq = Σ dS k = 2 * (18 - 11)/6 * 1 = 7/3;  dg_3 = 11.
  // skip_invalid: the set {0, 1, 2, 3}, P = 1/4: o = 9; dv = [1/4] * 4;
  //   dq = (18 - 9)/4 * 1 = 9/4;  dg_3 = 9.
  for (IndexPolicy policy : {IndexPolicy::multiset, IndexPolicy::skip_invalid}) {
    INFO(to_string(policy));
    auto c = one_branch(4, Branch::slc);
    c.given_indices = true;
    c.index_policy = policy;
    c.n_init = 0;
    c.n_local = 0;
    const auto vc = validate(c);
    auto in = inputs_of(vc, {0, 0, 0, 0}, {0, 0, 0, 1}, {0, 6, 12, 18});
    in.indices = {-1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 1, 0};
    const auto g = backward(vc, in, {5, 5, 5, 1}, Precision::f64);
    const bool twice = policy == IndexPolicy::multiset;
    const auto& dv = g.dv_of(Branch::slc);
    CHECK(dv[0] == Approx(twice ? 1.0 / 6 : 0.25));
    CHECK(dv[1] == Approx(twice ? 1.0 / 6 : 0.25));
    CHECK(dv[2] == Approx(twice ? 2.0 / 6 : 0.25));
    CHECK(dv[3] == Approx(twice ? 2.0 / 6 : 0.25));
    for (int t = 0; t < 3; ++t) {
      CHECK(g.dq[t] == 0.0);
      CHECK(g.dg_of(Branch::slc)[t] == 0.0);
    }
    CHECK(g.dq[3] == Approx(twice ? 7.0 / 3 : 9.0 / 4));
    CHECK(g.dg_of(Branch::slc)[3] == Approx(twice ? 11.0 : 9.0));
    for (double x : g.dk_of(Branch::slc)) CHECK(x == 0.0);
  }
}

TEST_CASE("grad hand: slc_causal none sends gradient to a key after the query, token does not") {
  // l' = 2, T = 2, both rows select block 0 (computed: the only candidate). q = 0, v = [2, 4],
  // dO = [1, 0] (only row 0's gradient). token: row 0 sees {0}: P = [1], dv = [1, 0].
  // none: row 0 sees {0, 1}: P = [1/2, 1/2], dv = [1/2, 1/2].
  for (SlcCausal mask : {SlcCausal::token, SlcCausal::none}) {
    INFO(to_string(mask));
    auto c = one_branch(2, Branch::slc);
    c.slc_causal = mask;
    const auto vc = validate(c);
    const auto in = inputs_of(vc, {0, 0}, {1, 3}, {2, 4});
    const auto g = backward(vc, in, {1, 0}, Precision::f64);
    const bool all = mask == SlcCausal::none;
    CHECK(g.dv_of(Branch::slc)[0] == Approx(all ? 0.5 : 1.0));
    CHECK(g.dv_of(Branch::slc)[1] == Approx(all ? 0.5 : 0.0).margin(1e-300));
  }
}
