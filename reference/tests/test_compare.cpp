// The comparator against hand-made candidates: each structural rule and the tolerance bound
// must turn a verdict red, and legal candidates (the baseline itself, tie swaps) must pass.
#include <catch2/catch.hpp>
#include <cmath>

#include "nsa/ref/compare.hpp"
#include "nsa/ref/generate.hpp"

using namespace nsa::ref;

namespace {

Config small_cfg(Dtype dt = Dtype::bf16) {
  Config c;
  c.t_k = 300;
  c.h_q = 4;
  c.h_kv = 2;
  c.d_k = 16;
  c.d_v = 16;
  c.top_n = 3;
  c.window = 40;
  c.dtype = dt;
  return c;
}

ValidConfig small_config(Dtype dt = Dtype::bf16) { return validate(small_cfg(dt)); }

}  // namespace

TEST_CASE("compare: ulp of each dtype") {
  CHECK(ulp(1.0, Dtype::f32) == std::ldexp(1.0, -23));
  CHECK(ulp(1.0, Dtype::f16) == std::ldexp(1.0, -10));
  CHECK(ulp(1.0, Dtype::bf16) == std::ldexp(1.0, -7));
  CHECK(ulp(3.0, Dtype::bf16) == std::ldexp(1.0, -6));
  CHECK(ulp(0.0, Dtype::f16) == std::ldexp(1.0, -24));  // subnormal spacing
  CHECK(ulp(1e-30, Dtype::f32) == std::ldexp(1.0, -123));
  CHECK(ulp(1e-40, Dtype::f32) == std::ldexp(1.0, -149));
}

TEST_CASE("compare: the baseline and the double reference pass against f128 truth") {
  for (Dtype dt : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    const auto vc = small_config(dt);
    const auto in = generate_inputs(vc, 7);
    for (Precision p : {Precision::baseline, Precision::f64}) {
      RowSelection all;
      const auto cand = forward(vc, in, p, all);
      const auto v = check_candidate(vc, in, cand);
      INFO(to_string(dt) << " " << to_string(p) << "\n" << v.table());
      CHECK(v.pass());
      if (p == Precision::f64) CHECK(v.find("o")->max_err < 1e-12);
    }
  }
}

TEST_CASE("compare: an error beyond the bound fails and names the worst element") {
  const auto vc = small_config();
  const auto in = generate_inputs(vc, 8);
  auto cand = forward(vc, in, Precision::baseline);
  const auto ok = check_candidate(vc, in, cand);
  const double bound = ok.find("o_win")->bound;
  REQUIRE(bound > 0);
  cand.o_branch[2][123] += 3 * bound;
  const auto v = check_candidate(vc, in, cand);
  CHECK_FALSE(v.pass());
  CHECK_FALSE(v.find("o_win")->pass);
  CHECK(v.find("o_win")->worst == 123);
  CHECK(v.find("o_cmp")->pass);
}

TEST_CASE("compare: NaN, unwritten and -inf rules") {
  const auto vc = small_config();
  const auto in = generate_inputs(vc, 9);
  const auto good = forward(vc, in, Precision::f64);
  SECTION("NaN in an output") {
    auto cand = good;
    cand.o[5] = std::nan("");
    const auto v = check_candidate(vc, in, cand);
    CHECK_FALSE(v.find("o")->pass);
    CHECK(v.find("o")->note.find("NaN") != std::string::npos);
  }
  SECTION("finite lse where the truth is -inf (row 0 sees no compressed block)") {
    auto cand = good;
    REQUIRE(std::isinf(good.lse[0][0]));
    cand.lse[0][0] = 0.0;
    CHECK_FALSE(check_candidate(vc, in, cand).find("lse_cmp")->pass);
  }
  SECTION("-inf lse where the truth is finite") {
    auto cand = good;
    cand.lse[2][0] = -INFINITY;
    CHECK_FALSE(check_candidate(vc, in, cand).find("lse_win")->pass);
  }
  SECTION("a missing tensor is reported as not checked") {
    auto cand = good;
    cand.o_branch[0].clear();
    const auto v = check_candidate(vc, in, cand);
    CHECK_FALSE(v.find("o_cmp")->checked);
    CHECK(v.pass());
  }
}

TEST_CASE("compare: indices differing only within exact ties pass; real differences fail") {
  Config c = small_cfg();
  c.profile = "custom";
  c.t_k = 1000;
  c.top_n = 5;  // two free slots beside the three forced blocks
  const auto vc = validate(c);
  auto in = generate_inputs(vc, 10);
  // Identical compressed keys make every block score depend only on how many compressed
  // blocks overlap it, so interior blocks tie exactly.
  std::fill(in.k[0].begin(), in.k[0].end(), 0.5);
  Config hi = c;
  hi.tie_break = TieBreak::higher_index_first;
  const auto vhi = validate(hi);
  const auto cand = forward(vhi, in, Precision::f64);
  const auto truth = forward(vc, in, Precision::f64);
  REQUIRE(cand.indices != truth.indices);
  const auto v = check_candidate(vc, in, cand);
  INFO(v.table());
  CHECK(v.pass());
  CHECK(v.find("indices")->max_err > 0);
  CHECK(v.find("o_slc")->note.find("candidate's indices") != std::string::npos);

  SECTION("a forced block missing fails") {
    auto bad = truth;
    // last row, kv head 0: the forced initial block 0 is first; replace it by another block.
    const std::size_t base = (bad.rows.size() - 1) * bad.groups.size() * c.top_n;
    int32_t* row = bad.indices.data() + base;
    REQUIRE(row[0] == 0);
    int32_t spare = 1;
    while (std::find(row, row + c.top_n, spare) != row + c.top_n) ++spare;
    row[0] = spare;
    std::sort(row, row + c.top_n);
    CHECK_FALSE(check_candidate(vc, in, bad).find("indices")->pass);
  }
  SECTION("an unsorted list fails") {
    auto bad = truth;
    const std::size_t base = (bad.rows.size() - 1) * bad.groups.size() * c.top_n;
    std::swap(bad.indices[base], bad.indices[base + 1]);
    const auto vb = check_candidate(vc, in, bad);
    CHECK_FALSE(vb.find("indices")->pass);
    CHECK(vb.find("indices")->note.find("ascending") != std::string::npos);
  }
}

TEST_CASE("compare: a block swap outside ties fails") {
  Config c = small_cfg(Dtype::f32);
  c.top_n = 5;  // two free slots beside the three forced blocks
  c.t_k = 1000;
  const auto vc = validate(c);
  const auto in = generate_inputs(vc, 11, Regime::peaked);
  auto truth = forward(vc, in, Precision::f64);
  // Find a (row, group) with a finite positive gap and swap its weakest free block for the best
  // unselected one: the gap is a real score difference, far above delta for f32.
  bool swapped = false;
  const auto n = vc.cfg.top_n;
  for (std::size_t r = 0; r < truth.rows.size() && !swapped; ++r)
    for (std::size_t g = 0; g < truth.groups.size() && !swapped; ++g) {
      const std::size_t rg = r * truth.groups.size() + g;
      if (!(truth.score_gap[rg] > 1e-2) || std::isinf(truth.score_gap[rg])) continue;
      const double* sc = truth.scores.data() + rg * truth.ns_max;
      int32_t* idx = truth.indices.data() + rg * n;
      const int64_t t = vc.seqs[0].pos(truth.rows[r]), cur = t / vc.cfg.slc_block;
      int best_un = -1, worst_sel = -1;
      for (int64_t j = 0; j <= cur; ++j) {
        const bool sel = std::find(idx, idx + n, j) != idx + n;
        const bool forced = j < vc.cfg.n_init || j > cur - vc.cfg.n_local;
        if (!sel && (best_un < 0 || sc[j] > sc[best_un])) best_un = static_cast<int>(j);
        if (sel && !forced && (worst_sel < 0 || sc[j] < sc[worst_sel]))
          worst_sel = static_cast<int>(j);
      }
      if (best_un < 0 || worst_sel < 0) continue;
      std::replace(idx, idx + n, worst_sel, best_un);
      std::sort(idx, idx + n, [](int32_t a, int32_t b) {
        return (a < 0) < (b < 0) || (a >= 0 && b >= 0 && a < b);
      });
      swapped = true;
    }
  REQUIRE(swapped);
  const auto v = check_candidate(vc, in, truth);
  CHECK_FALSE(v.find("indices")->pass);
  CHECK(v.find("indices")->note.find("gap") != std::string::npos);
}
