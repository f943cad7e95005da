// The double backward against the high-precision ones (float128, cpp_bin_float_50), within the
// bound of docs/numerics.md ("Gradients: double against truth"):
//   |G_f64 - G*| <= 4 (N + R + (d_k + l D)(1 + Z) + 8) u (1 + Z) max(1, max |G*|)
// N and Z as for the forward, R the most (query row, head) listings that reach one key; and
// float128 and bin50 round to the same doubles. The bound must be tight enough that the fp32
// baseline breaks it.
#include <catch2/catch.hpp>
#include <cmath>

#include "nsa/ref/backward.hpp"
#include "test_support.hpp"

using namespace nsa;
using namespace nsa::ref;

namespace {

constexpr double kU = 0x1.0p-53;

// The bound's factor 4 (N + R + (d_k + l D)(1 + Z) + 8) u (1 + Z), before the magnitude.
double grad_bound(const ValidConfig& vc, const Inputs& in) {
  const auto& c = vc.cfg;
  double max_q = test::max_abs(in.q), max_k = 0;
  for (int b = 0; b < 3; ++b) max_k = std::max(max_k, test::max_abs(in.k[b]));
  const double key_scale = c.phi == Phi::mean ? 1.0 : 4.0;
  const double z = vc.scale * static_cast<double>(c.d_k) * max_q * max_k * key_scale;
  const double n = static_cast<double>(std::max(vc.max_t_k, c.top_n * c.slc_block));
  const double listings = c.index_policy == IndexPolicy::multiset ? c.top_n : 1;
  const double r = static_cast<double>(vc.group * vc.max_t_k) * listings;
  const double dim = static_cast<double>(std::max(c.d_k, c.d_v));
  const double depth = static_cast<double>(c.d_k) + static_cast<double>(c.cmp_block) * dim;
  return 4.0 * (n + r + depth * (1.0 + z) + 8.0) * kU * (1.0 + z);
}

// The worst |a - t| / (bound · max(1, max|t|)) over every gradient tensor of the config.
double worst_ratio(const ValidConfig& vc, const Gradients& a, const Gradients& t, double bound,
                   std::string* where) {
  double worst = 0;
  for (const auto& name : grad_tensor_names(vc)) {
    const auto& x = grad_tensor(vc, a, name);
    const auto& y = grad_tensor(vc, t, name);
    REQUIRE(x.size() == y.size());
    const double scale = bound * std::max(1.0, test::max_abs(y));
    for (std::size_t i = 0; i < x.size(); ++i) {
      REQUIRE(std::isfinite(x[i]));
      const double r = std::abs(x[i] - y[i]) / scale;
      if (r > worst) {
        worst = r;
        *where = name + "[" + std::to_string(i) + "]";
      }
    }
  }
  return worst;
}

GradSelection one_thread() {
  GradSelection s;
  s.threads = 1;
  return s;
}

}  // namespace

TEST_CASE("grad precision: double agrees with float128 and bin50 within the stated bound") {
  double worst = 0;
  auto check = [&](const ValidConfig& vc, const Inputs& in, Precision truth) {
    INFO(describe(vc.cfg) << " truth " << to_string(truth));
    const auto d_o = generate_grad_output(vc, 3);
    const auto d = backward(vc, in, d_o, Precision::f64, one_thread());
    const auto t = backward(vc, in, d_o, truth, one_thread());
    std::string where;
    const double r = worst_ratio(vc, d, t, grad_bound(vc, in), &where);
    INFO("worst at " << where << ": " << r << " of the bound");
    CHECK(r <= 1.0);
    worst = std::max(worst, r);
  };
  for (uint64_t seed = 1; seed <= 16; ++seed) {
    const auto vc = validate(test::random_config(seed));
    const auto in = test::random_inputs(vc, seed);
    check(vc, in, Precision::f128);
    if (seed <= 4) check(vc, in, Precision::bin50);
  }
  const auto vc = validate(test::precision_config());
  for (Regime r : {Regime::typical, Regime::peaked})
    check(vc, generate_inputs(vc, 5, r), Precision::f128);
  WARN("double backward: worst error " << worst << " of the bound");
}

TEST_CASE("grad precision: float128 and bin50 round to the same doubles") {
  // As for the forward (test_precision.cpp): both carry >= 113 bits, so after the one rounding
  // they differ by at most 1 ulp, or 2^-100 of the tensor's scale near zero.
  for (uint64_t seed = 20; seed <= 23; ++seed) {
    const auto vc = validate(test::random_config(seed));
    const auto in = test::random_inputs(vc, seed);
    const auto d_o = generate_grad_output(vc, seed);
    const auto a = backward(vc, in, d_o, Precision::f128, one_thread());
    const auto b = backward(vc, in, d_o, Precision::bin50, one_thread());
    INFO(describe(vc.cfg));
    for (const auto& name : grad_tensor_names(vc)) {
      INFO("gradient " << name);
      const auto& x = grad_tensor(vc, a, name);
      const auto& y = grad_tensor(vc, b, name);
      REQUIRE(x.size() == y.size());
      const double scale = test::max_abs(y);
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (x[i] == y[i]) continue;
        const double ulp = std::abs(std::nextafter(y[i], INFINITY) - y[i]);
        CHECK(std::abs(x[i] - y[i]) <= std::max(ulp, 0x1.0p-100 * scale));
      }
    }
  }
}

TEST_CASE("grad precision: the bound is tight enough to catch single-precision arithmetic") {
  const auto vc = validate(test::precision_config());
  const auto in = generate_inputs(vc, 3);
  const auto d_o = generate_grad_output(vc, 3);
  const auto f = backward(vc, in, d_o, Precision::baseline, one_thread());
  const auto t = backward(vc, in, d_o, Precision::f128, one_thread());
  std::string where;
  CHECK(worst_ratio(vc, f, t, grad_bound(vc, in), &where) > 1.0);
}
