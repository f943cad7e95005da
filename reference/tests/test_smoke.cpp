#include <catch2/catch.hpp>

#include "nsa/ref/forward.hpp"

using namespace nsa::ref;

TEST_CASE("smoke: canonical forward runs in every precision") {
  Config c;
  c.t_k = 130;
  c.h_q = 4;
  c.h_kv = 2;
  c.d_k = 8;
  c.d_v = 8;
  c.top_n = 3;
  c.window = 20;
  const auto vc = validate(c);
  Inputs in;
  auto fill = [](std::vector<double>& x, int64_t n, double s) {
    x.resize(n);
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(std::sin(s * (i + 1)));
  };
  const auto sh = input_shapes(vc);
  fill(in.q, sh.q, 0.7);
  for (int b = 0; b < 3; ++b) {
    fill(in.k[b], sh.k, 1.1 + b);
    fill(in.v[b], sh.v, 1.3 + b);
    fill(in.gate[b], sh.gate, 0.3 + b);
  }
  const auto a = forward(vc, in, Precision::f64);
  const auto q = forward(vc, in, Precision::f128);
  const auto bl = forward(vc, in, Precision::baseline);
  REQUIRE(a.o.size() == q.o.size());
  double err = 0, berr = 0;
  for (std::size_t i = 0; i < a.o.size(); ++i) {
    err = std::max(err, std::abs(a.o[i] - q.o[i]));
    berr = std::max(berr, std::abs(bl.o[i] - q.o[i]));
  }
  CHECK(err < 1e-13);
  CHECK(berr < 1e-4);
  CHECK(a.indices == q.indices);
}
