// double against the high-precision instantiations (float128, cpp_bin_float_50). The bound is
// derived in docs/numerics.md ("double against truth"):
//   |X_f64 - X_truth| <= 4 (N + (d_k + l D)(1 + Z) + 8) u M
// with u = 2^-53, N the largest key set of a branch, D = max(d_k, d_v), Z a bound on |scores|,
// and M = max|v| for outputs, max(1, |lse|) for lse, 1 for p_cmp; the gated output adds the three
// branch bounds (gates are in [0, 1]).
#include <catch2/catch.hpp>
#include <cmath>

#include "test_support.hpp"

using namespace nsa;
using namespace nsa::ref;

namespace {

constexpr double kU = 0x1.0p-53;

struct Bounds {
  double o, lse, p;
};

Bounds double_bounds(const ValidConfig& vc, const Inputs& in) {
  const auto& c = vc.cfg;
  double max_q = test::max_abs(in.q), max_k = 0, max_v = 0;
  for (int b = 0; b < 3; ++b) {
    max_k = std::max(max_k, test::max_abs(in.k[b]));
    max_v = std::max(max_v, test::max_abs(in.v[b]));
  }
  // Compressed keys of a mean phi are no larger than the keys; linear/mlp keep the same scale
  // by construction of the generator's weights (fan-in scaled), a factor 4 covers them.
  const double key_scale = c.phi == Phi::mean ? 1.0 : 4.0;
  const double z = vc.scale * static_cast<double>(c.d_k) * max_q * max_k * key_scale;
  const double n = static_cast<double>(std::max(vc.max_t_k, c.top_n * c.slc_block));
  const double dim = static_cast<double>(std::max(c.d_k, c.d_v));
  const double depth = static_cast<double>(c.d_k) + static_cast<double>(c.cmp_block) * dim;
  const double k = 4.0 * (n + depth * (1.0 + z) + 8.0) * kU;
  return {k * std::max(1.0, max_v * key_scale), k, k};
}

// Largest |a - b| relative to the bound, over elements finite in both; -inf must match.
double worst_ratio(const std::vector<double>& a, const std::vector<double>& b, double bound,
                   double scale) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(b[i])) {
      CHECK(a[i] == b[i]);
      continue;
    }
    REQUIRE(std::isfinite(a[i]));
    const double s = scale > 0 ? scale : std::max(1.0, std::abs(b[i]));
    worst = std::max(worst, std::abs(a[i] - b[i]) / (bound * s));
  }
  return worst;
}

void check_double_vs(const ValidConfig& vc, const Inputs& in, Precision truth_precision) {
  const auto sel = test::single_thread();
  const auto d = forward(vc, in, Precision::f64, sel);
  const auto t = forward(vc, in, truth_precision, sel);
  const Bounds bd = double_bounds(vc, in);
  INFO(describe(vc.cfg) << " truth " << to_string(truth_precision));
  for (int b = 0; b < 3; ++b) {
    CHECK(worst_ratio(d.o_branch[b], t.o_branch[b], bd.o, 1.0) <= 1.0);
    CHECK(worst_ratio(d.lse[b], t.lse[b], bd.lse, 0.0) <= 1.0);
  }
  CHECK(worst_ratio(d.o, t.o, 3.0 * bd.o, 1.0) <= 1.0);
  CHECK(worst_ratio(d.p_cmp, t.p_cmp, bd.p, 1.0) <= 1.0);
  // Random inputs have no near-ties at this precision: the selections agree.
  CHECK(d.indices == t.indices);
}

}  // namespace

TEST_CASE("precision: double agrees with float128 and bin50 within the stated bound") {
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    const auto vc = validate(test::random_config(seed));
    const auto in = generate_inputs(vc, seed);
    check_double_vs(vc, in, Precision::f128);
    if (seed <= 4) check_double_vs(vc, in, Precision::bin50);
  }
  // One longer sequence, so that N dominates the bound.
  const auto vc = validate(test::precision_config());
  for (Regime r : {Regime::typical, Regime::peaked})
    check_double_vs(vc, generate_inputs(vc, 5, r), Precision::f128);
}

TEST_CASE("precision: float128 and bin50 round to the same doubles") {
  // Both carry >= 113 significant bits; after the single rounding to double they can differ only
  // where a value lies within ~2^-100 of a rounding boundary: at most 1 ulp, and by at most
  // 2^-100 relative to the tensor's scale near zero.
  for (uint64_t seed = 20; seed <= 24; ++seed) {
    const auto vc = validate(test::random_config(seed));
    const auto in = generate_inputs(vc, seed);
    const auto a = forward(vc, in, Precision::f128, test::single_thread());
    const auto b = forward(vc, in, Precision::bin50, test::single_thread());
    INFO(describe(vc.cfg));
    auto close = [](const std::vector<double>& x, const std::vector<double>& y) {
      const double scale = test::max_abs(y);
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (x[i] == y[i]) continue;
        const double ulp = std::abs(std::nextafter(y[i], INFINITY) - y[i]);
        if (!(std::abs(x[i] - y[i]) <= std::max(ulp, 0x1.0p-100 * scale))) return false;
      }
      return x.size() == y.size();
    };
    for (int br = 0; br < 3; ++br) {
      CHECK(close(a.o_branch[br], b.o_branch[br]));
      CHECK(close(a.lse[br], b.lse[br]));
    }
    CHECK(close(a.o, b.o));
    CHECK(close(a.p_cmp, b.p_cmp));
    CHECK(a.indices == b.indices);
  }
}

TEST_CASE("precision: the bound is tight enough to catch single-precision arithmetic") {
  // The dtype-faithful baseline computes in fp32: it must break the double bound, or the bound
  // would not tell double from float.
  Config c = test::precision_config();
  c.t_k = 120;
  const auto vc = validate(c);
  const auto in = generate_inputs(vc, 3);
  const auto f = forward(vc, in, Precision::baseline, test::single_thread());
  const auto t = forward(vc, in, Precision::f128, test::single_thread());
  CHECK(worst_ratio(f.o, t.o, 3.0 * double_bounds(vc, in).o, 1.0) > 1.0);
}
