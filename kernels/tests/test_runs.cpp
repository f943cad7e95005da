// Run-level properties: two runs are bitwise identical; every output element is written (the
// host API poisons outputs with NaN before each launch, the comparator rejects NaN); a config
// whose tensors have more than 2^31 elements (64-bit offsets), checked on sampled rows;
// unsupported configs are refused with a reason.
#include <catch2/catch.hpp>
#include <cmath>

#include "gpu_case.hpp"

using namespace nsa::ref;
using nsa::cuda::test::base_config;
using nsa::cuda::test::run_case;

TEST_CASE("two runs are bitwise identical", "[gpu][runs]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::bf16);
  Config c = base_config(2000, dt, 2, 8);
  c.d_k = 128;
  c.top_n = 8;
  const auto vc = validate(c);
  nsa::cuda::test::require_bitwise_repeatable(vc, generate_inputs(vc, 131), true);
}

TEST_CASE("every output element is written", "[gpu][runs]") {
  Config c = base_config(129, Dtype::f16, 2, 3);
  const auto r = run_case(c, 141);
  NSA_REQUIRE_CASE(r);
  for (int b = 0; b < 3; ++b)
    for (double x : r.gpu.o_branch[b]) REQUIRE(std::isfinite(x));
  for (int32_t j : r.gpu.indices) REQUIRE(j >= -1);
}

TEST_CASE("unsupported configs are refused with a reason", "[gpu][runs]") {
  Config c = base_config(64, Dtype::f64);
  const auto vc = validate(c);
  REQUIRE_THAT(nsa::cuda::unsupported(vc), Catch::Contains("fp64"));
  REQUIRE_THROWS_WITH(nsa::cuda::forward(vc, generate_inputs(vc, 1)), Catch::Contains("fp64"));
}

TEST_CASE("tensors beyond 2^31 elements (64-bit offsets)", "[gpu][runs][large]") {
  // Selection only, given index lists, a query suffix of 48 rows over 2^23 + 64 keys with
  // d_k = 256: K holds 2^31 + 16384 elements. Inputs are built directly (cheap pattern values,
  // exactly representable in bf16) to keep host memory and time down.
  Config c = base_config(0, Dtype::bf16, 1, 2);
  c.t_k = (int64_t{1} << 23) + 64;
  c.t_q = 48;
  c.d_k = 256;
  c.d_v = 64;
  c.enable_cmp = false;
  c.enable_win = false;
  c.given_indices = true;
  c.top_n = 8;
  const auto vc = validate(c);
  const auto shapes = input_shapes(vc);
  REQUIRE(shapes.k > (int64_t{1} << 31));
  auto pattern = [](int64_t n, uint64_t salt) {
    std::vector<double> x(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t h = splitmix64(static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ull + salt);
      x[static_cast<std::size_t>(i)] =
          static_cast<double>(static_cast<int64_t>(h % 64) - 32) / 32.0;
    }
    return x;
  };
  Inputs in;
  in.q = pattern(shapes.q, 1);
  in.k[1] = pattern(shapes.k, 2);
  in.v[1] = pattern(shapes.v, 3);
  in.gate[1] = pattern(shapes.gate, 4);
  // Index lists: the first block, the last candidates and a far block, all valid.
  in.indices.assign(static_cast<std::size_t>(shapes.indices), -1);
  for (int64_t r = 0; r < vc.total_q; ++r) {
    const int64_t t = vc.seqs[0].pos(r), last = t / c.slc_block;
    int32_t* row = in.indices.data() + r * c.top_n;
    row[0] = 0;
    row[1] = static_cast<int32_t>(last);
    row[2] = static_cast<int32_t>(last - 1 - r);
    row[3] = static_cast<int32_t>(last / 2 + r);
    row[4] = static_cast<int32_t>(last - 1000);
  }
  NSA_REQUIRE_CASE(run_case(c, 151, Regime::typical, &in));
}

// The small subset that ci/gpu-sanitize.sh runs under compute-sanitizer (also part of the suite).
TEST_CASE("sanitizer subset", "[gpu][sanitize]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::bf16);
  const auto dk = GENERATE(int64_t{64}, int64_t{128});
  Config c = base_config(150, dt, 2, 4);
  c.d_k = dk;
  c.top_n = 3;
  NSA_REQUIRE_CASE(run_case(c, 161));
  Config g = c;
  g.given_indices = true;
  g.index_policy = IndexPolicy::multiset;
  g.profile = "custom";
  const auto vc = validate(g);
  Inputs in = generate_inputs(vc, 162);
  in.indices = generate_indices(vc, 163, true);
  NSA_REQUIRE_CASE(run_case(g, 162, Regime::typical, &in));
}
