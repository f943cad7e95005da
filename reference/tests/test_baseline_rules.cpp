// Rules that only the byte-exact regeneration tests guarded, each with a semantic test: an
// independent computation of what the rule says on inputs chosen so that the rule and its likely
// wrong variants give clearly different numbers. A wrong change fails here even if the golden
// files were regenerated with it.
//   - the default softmax scale is 1/sqrt(d_k), whatever d_v;
//   - the dtype-faithful baseline (docs/tolerance.md) rounds the compressed K and V to the input
//     dtype, rounds exp(z - m) to the input dtype before P·V while the row sum uses the fp32
//     weights, rounds branch outputs and the gated output to the dtype, and keeps lse in fp32.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "attention.hpp"
#include "nsa/ref/forward.hpp"

using namespace nsa::ref;

namespace {

// bfloat16 round-to-nearest-even of a finite float, written here from the format's definition.
float bf16(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  b += 0x7FFFu + ((b >> 16) & 1u);
  b &= 0xFFFF0000u;
  float r;
  std::memcpy(&r, &b, sizeof r);
  return r;
}

bool is_bf16(double x) {
  const float f = static_cast<float>(x);
  if (static_cast<double>(f) != x) return false;
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return (b & 0xFFFFu) == 0;
}

double bf16_ulp(double x) { return std::ldexp(1.0, std::ilogb(x) - 7); }

// One KV head, one query head, d_k = d_v = 1, scale 1, bf16: every number below is chosen by hand.
Config tiny_bf16(int64_t t_k) {
  Config c;
  c.profile = "custom";
  c.t_k = t_k;
  c.h_q = c.h_kv = 1;
  c.d_k = c.d_v = 1;
  c.scale = 1.0;
  c.dtype = Dtype::bf16;
  c.cmp_block = c.cmp_stride = 2;
  c.slc_block = 2;
  c.top_n = 1;
  c.n_init = 0;
  c.n_local = 1;
  c.window = t_k;
  return c;
}

Inputs inputs_of(const ValidConfig& vc, std::vector<double> k, std::vector<double> v) {
  Inputs in;
  const auto s = input_shapes(vc);
  in.q.assign(static_cast<std::size_t>(s.q), 1.0);
  for (int b = 0; b < 3; ++b) {
    in.k[b] = k;
    in.v[b] = v;
    in.gate[b].assign(static_cast<std::size_t>(s.gate),
                      vc.cfg.enabled(static_cast<Branch>(b)) ? 1.0 : 0.0);
  }
  return in;
}

}  // namespace

TEST_CASE("semantics: the default softmax scale is 1/sqrt(d_k), also when d_v differs") {
  for (auto [dk, dv] : {std::pair<int64_t, int64_t>{192, 128}, {16, 64}, {64, 16}, {4, 1}}) {
    Config c;
    c.t_k = 10;
    c.d_k = dk;
    c.d_v = dv;
    const auto vc = validate(c);
    INFO("d_k " << dk << ", d_v " << dv);
    CHECK(vc.scale == 1.0 / std::sqrt(static_cast<double>(dk)));
    CHECK(vc.cfg.scale.value() == vc.scale);
  }
  // End to end: one query over a window of two keys, d_k = 4 (scale 1/2), d_v = 1 (where
  // 1/sqrt(d_v) would be 1).
  Config c;
  c.profile = "custom";
  c.t_k = 2;
  c.d_k = 4;
  c.d_v = 1;
  c.window = 2;
  c.enable_cmp = c.enable_slc = false;
  c.dtype = Dtype::f64;
  const auto vc = validate(c);
  Inputs in;
  in.q = {1, 2, 0, -1, 1, 2, 0, -1};  // both rows the same query
  const std::vector<double> k = {1, 0, 0, 0, 0, 1, 1, 0};
  for (int b = 0; b < 3; ++b) {
    in.k[b] = k;
    in.v[b] = {3.0, -1.0};
    in.gate[b] = {1.0, 1.0};
  }
  const auto out = forward(vc, in, Precision::f64);
  const double z0 = 0.5 * 1.0, z1 = 0.5 * 2.0;  // q·k_j / sqrt(4)
  const double e0 = std::exp(z0 - z1), e1 = 1.0;
  CHECK(out.o_branch[2][1] == Approx((3.0 * e0 - 1.0 * e1) / (e0 + e1)).epsilon(1e-15));
  CHECK(out.lse[2][1] == Approx(z1 + std::log(e0 + e1)).epsilon(1e-15));
}

TEST_CASE("baseline: exp(z - m) is rounded to the dtype before P·V, the row sum is not") {
  // White box (attention.hpp): with the baseline's storage policy and no output rounding, the
  // three readings of the rule give results ~2^-9 apart, far beyond fp32 rounding.
  using detail::Mat;
  Mat<float> q(1, 1), k(3, 1), v(3, 1);
  q << 1.0f;
  k << 0.0f, -0.0029296875f, -0.0029296875f;  // weights 1, 0.99707 (bf16: 0.99609) twice
  v << 1.0f, 1.0f, 1.0f;
  const auto r =
      detail::attend(q, k, v, {{0, 3}}, 1.0f, detail::DtypeFaithful{Dtype::bf16, {}}, {});
  float e[3], sum = 0, stored = 0;
  for (int j = 0; j < 3; ++j) {
    e[j] = std::exp(k(j, 0) - 0.0f);
    sum += e[j];
    stored += bf16(e[j]);
  }
  const double rule = static_cast<double>(stored / sum);  // rounded P over the fp32 row sum
  REQUIRE(std::abs(rule - 1.0) > 1e-4);                   // both other readings give 1
  CHECK(static_cast<double>(r.o(0, 0)) == Approx(rule).epsilon(1e-6));
  CHECK(static_cast<double>(r.lse(0)) == Approx(std::log(static_cast<double>(sum))).epsilon(1e-6));
}

TEST_CASE("baseline: rounded P in the forward, bf16 outputs, lse in fp32") {
  // Window branch, one query at t = 1 over keys z = (0, -3·2^-10) with v = (1, -1): the output
  // (P0 - P1) / (e0 + e1) cancels, so rounding P1 = 0.99707 to bf16 (0.99609) moves it by a third.
  auto c = tiny_bf16(2);
  c.enable_cmp = c.enable_slc = false;
  const auto vc = validate(c);
  const auto in = inputs_of(vc, {0.0, -0.0029296875}, {1.0, -1.0});
  const auto base = forward(vc, in, Precision::baseline);
  const float e1 = std::exp(-0.0029296875f), sum = 1.0f + e1;
  const double rule = static_cast<double>(bf16((1.0f - bf16(e1)) / sum));
  const double unrounded = static_cast<double>(bf16((1.0f - e1) / sum));
  REQUIRE(std::abs(rule - unrounded) > 10 * bf16_ulp(rule));
  const double o_win = base.o_branch[2][1];
  CHECK(o_win == Approx(rule).margin(0.25 * bf16_ulp(rule)));
  CHECK(is_bf16(o_win));
  CHECK(is_bf16(base.o[1]));  // the gated combination is rounded too
  // lse stays fp32: log(1 + e1) = 0.6917, which bf16 cannot hold.
  const double lse = base.lse[2][1];
  CHECK(lse == Approx(std::log(static_cast<double>(sum))).epsilon(1e-6));
  CHECK_FALSE(is_bf16(lse));
}

TEST_CASE("baseline: the compressed keys and values are rounded to the dtype") {
  // Mean phi over blocks of two tokens, t = 3 sees blocks 0 and 1. Keys (1, 1 + 2^-7) and (1, 1):
  // the block-0 mean 1 + 2^-8 rounds (to even) to 1, so both compressed keys are 1 and P is
  // exactly (1/2, 1/2). Values (1, 1 + 3·2^-7) and (-1, -1): the block-0 mean 1 + 3·2^-8 rounds
  // to 1 + 2^-6. Unrounded, the truth's keys differ and its value mean is 1 + 3·2^-8.
  auto c = tiny_bf16(4);
  c.enable_slc = c.enable_win = false;
  const auto vc = validate(c);
  const double a = std::ldexp(1.0, -7);
  const auto in = inputs_of(vc, {1.0, 1.0 + a, 1.0, 1.0}, {1.0, 1.0 + 3 * a, -1.0, -1.0});
  const auto base = forward(vc, in, Precision::baseline);
  const auto truth = forward(vc, in, Precision::f64);
  const double rounded_v = 1.0 + std::ldexp(1.0, -6);
  CHECK(base.o_branch[0][3] == (rounded_v - 1.0) / 2);  // 2^-7; unrounded values give 3·2^-9
  // lse of two equal compressed keys z = 1: 1 + log 2, in fp32.
  CHECK(base.lse[0][3] == Approx(1.0 + std::log(2.0)).epsilon(1e-7));
  CHECK(std::abs(truth.lse[0][3] - base.lse[0][3]) > 1e-3);
}
