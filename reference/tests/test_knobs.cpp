// For every knob: its values give different results on some input (so a knob that is ignored,
// or wired to the wrong value, cannot pass), and every value agrees with the dense oracle.
#include <catch2/catch.hpp>
#include <functional>

#include "dense_oracle.hpp"
#include "test_support.hpp"

using namespace nsa;
using namespace nsa::ref;

namespace {

Config base() {
  Config c;
  c.profile = "custom";
  c.t_k = 40;
  c.h_q = 4;
  c.h_kv = 2;
  c.d_k = 4;
  c.d_v = 3;
  c.cmp_block = 4;
  c.cmp_stride = 2;
  c.slc_block = 8;
  c.top_n = 3;
  c.window = 6;
  return c;
}

using Tweak = std::function<void(const ValidConfig&, Inputs&)>;

Outputs run_checked(const Config& c, uint64_t seed, Regime regime, const Tweak& tweak) {
  const auto vc = validate(c);
  auto in = generate_inputs(vc, seed, regime);
  if (tweak) tweak(vc, in);
  auto out = forward(vc, in, Precision::f64, test::single_thread());
  INFO(describe(c) << " seed " << seed);
  CHECK(oracle::diff(out, oracle::dense_forward(vc, in), 1e-12) == "");
  return out;
}

// Whether configs a and b give different outputs for some seed in 1..8.
bool differ(const Config& a, const Config& b, Regime regime = Regime::typical,
            const Tweak& tweak = {}) {
  for (uint64_t seed = 1; seed <= 8; ++seed)
    if (test::outputs_differ(run_checked(a, seed, regime, tweak),
                             run_checked(b, seed, regime, tweak)))
      return true;
  return false;
}

template <class E>
void each_pair_differs(const Config& c, E Config::*knob, Regime regime = Regime::typical,
                       const Tweak& tweak = {}) {
  const auto n = EnumNames<E>::names.size();
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i + 1; j < n; ++j) {
      Config a = c, b = c;
      a.*knob = static_cast<E>(i);
      b.*knob = static_cast<E>(j);
      INFO(EnumNames<E>::names[i] << " vs " << EnumNames<E>::names[j]);
      CHECK(differ(a, b, regime, tweak));
    }
}

}  // namespace

TEST_CASE("knobs: cmp_visibility") { each_pair_differs(base(), &Config::cmp_visibility); }

TEST_CASE("knobs: score_mapping") {
  Config c = base();
  c.score_mapping = ScoreMapping::overlap;
  Config p = c;
  p.score_mapping = ScoreMapping::paper_eq9;
  CHECK(differ(c, p));
  // identity is only valid for l = d = l', where all three mappings coincide (each selection
  // block is one compressed block); it is told apart by validation instead.
  c.cmp_block = c.cmp_stride = c.slc_block = 4;
  for (auto m : {ScoreMapping::overlap, ScoreMapping::paper_eq9}) {
    Config i = c, o = c;
    i.score_mapping = ScoreMapping::identity;
    o.score_mapping = m;
    CHECK_FALSE(differ(i, o));
  }
  Config bad = base();
  bad.score_mapping = ScoreMapping::identity;
  CHECK_THROWS_AS(validate(bad), ConfigError);
}

TEST_CASE("knobs: group_reduce") {
  // Same ranking, scores differ by the factor G = 2.
  Config a = base(), b = base();
  b.group_reduce = GroupReduce::mean;
  CHECK(differ(a, b));
  const auto oa = run_checked(a, 1, Regime::typical, {});
  const auto ob = run_checked(b, 1, Regime::typical, {});
  CHECK(oa.indices == ob.indices);
  for (std::size_t i = 0; i < oa.scores.size(); ++i)
    if (std::isfinite(oa.scores[i])) CHECK(oa.scores[i] == Approx(2.0 * ob.scores[i]));
}

TEST_CASE("knobs: forced_mode") {
  // A peaked softmax makes an overlap score exceed a forced block's score of 1 per head.
  each_pair_differs(base(), &Config::forced_mode, Regime::peaked);
}

TEST_CASE("knobs: tie_break") {
  // q = 0 makes every visible compressed block equally likely: ties everywhere.
  Config c = base();
  c.n_init = c.n_local = 0;
  each_pair_differs(c, &Config::tie_break, Regime::typical, [](const ValidConfig&, Inputs& in) {
    std::fill(in.q.begin(), in.q.end(), 0.0);
  });
}

TEST_CASE("knobs: slc_causal") { each_pair_differs(base(), &Config::slc_causal); }

TEST_CASE("knobs: window_keys") { each_pair_differs(base(), &Config::window_keys); }

TEST_CASE("knobs: topn_rounding") {
  Config c = base();  // n = 3, up to 5 blocks of 8: rounding to 4 selects one more block
  each_pair_differs(c, &Config::topn_rounding);
  // next_power_of_two is exactly n replaced by the next power of two, bit for bit.
  Config rounded = c, four = c;
  rounded.topn_rounding = TopnRounding::next_power_of_two;
  four.top_n = 4;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    const auto a = run_checked(rounded, seed, Regime::typical, {});
    const auto b = run_checked(four, seed, Regime::typical, {});
    CHECK_FALSE(test::outputs_differ(a, b));
    CHECK(a.indices == b.indices);
  }
}

TEST_CASE("knobs: index_policy") {
  Config c = base();
  c.given_indices = true;
  const Tweak adversarial = [](const ValidConfig& vc, Inputs& in) {
    in.indices = generate_indices(vc, 11, true);
  };
  // strict rejects adversarial lists; the lenient policies differ on duplicates.
  Config s = c;
  s.index_policy = IndexPolicy::strict;
  const auto vs = validate(s);
  auto in = generate_inputs(vs, 1);
  adversarial(vs, in);
  CHECK_THROWS_AS(forward(vs, in, Precision::f64), std::invalid_argument);
  Config a = c, b = c, z = c;
  a.index_policy = IndexPolicy::skip_invalid;
  b.index_policy = IndexPolicy::multiset;
  z.index_policy = IndexPolicy::negative_to_zero;
  CHECK(differ(a, b, Regime::typical, adversarial));
  // negative_to_zero reads -1 (and any negative entry) as block 0: it differs from skip_invalid
  // on lists that hold negatives and block 0 is not listed, and agrees where they hold none.
  CHECK(differ(a, z, Regime::typical, adversarial));
  const Tweak no_block0 = [](const ValidConfig& vc, Inputs& inputs) {
    inputs.indices = generate_indices(vc, 12, false);  // distinct candidates, -1 elsewhere
    for (auto& j : inputs.indices)
      if (j == 0) j = -1;
  };
  CHECK(differ(a, z, Regime::typical, no_block0));
  const Tweak no_negatives = [](const ValidConfig& vc, Inputs& inputs) {
    inputs.indices = generate_indices(vc, 13, false);
    for (auto& j : inputs.indices)
      if (j < 0) j = 0;  // block 0 (repeats count once under both policies)
  };
  for (uint64_t seed = 1; seed <= 2; ++seed) {
    const auto oa = run_checked(a, seed, Regime::typical, no_negatives);
    const auto oz = run_checked(z, seed, Regime::typical, no_negatives);
    CHECK(test::max_diff(oa.o, oz.o) == 0);
  }
  // On valid lists (distinct candidates) all three policies agree, up to the summation order
  // (multiset keeps the listing order, the others sort).
  Config v = c;
  v.index_policy = IndexPolicy::strict;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    const auto ov = run_checked(v, seed, Regime::typical, {});
    for (const Config& other : {a, b}) {
      const auto oo = run_checked(other, seed, Regime::typical, {});
      CHECK(test::max_diff(ov.o, oo.o) <= 1e-14);
      CHECK(ov.indices == oo.indices);
    }
  }
}

TEST_CASE("knobs: phi and phi_act") {
  Config c = base();
  Config lin = c, mlp = c;
  lin.phi = Phi::linear;
  mlp.phi = Phi::mlp;
  mlp.phi_hidden = 5;
  CHECK(differ(c, lin));
  CHECK(differ(c, mlp));
  CHECK(differ(lin, mlp));
  Config silu = mlp;
  silu.phi_act = Activation::silu;
  CHECK(differ(mlp, silu));
}

TEST_CASE("knobs: shared_kv") {
  Config a = base(), b = base();
  b.shared_kv = true;
  CHECK(differ(a, b));
  // Shared K/V means the selection and window branches read the compression branch's tensors.
  const auto vb = validate(b);
  const auto in = generate_inputs(vb, 1);
  CHECK(in.k[1] == in.k[0]);
  CHECK(in.v[2] == in.v[0]);
}
