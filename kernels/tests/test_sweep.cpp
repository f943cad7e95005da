// Shape sweep in the style of FlashAttention's tests: odd lengths, every dtype, head dims, group
// sizes, n from 1 to beyond the block count, window sizes.
#include <catch2/catch.hpp>

#include "gpu_case.hpp"

using namespace nsa::ref;
using nsa::cuda::test::base_config;
using nsa::cuda::test::run_case;

TEST_CASE("lengths x dtypes", "[gpu][sweep]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::f16, Dtype::bf16);
  const auto t = GENERATE(int64_t{1}, 17, 63, 64, 65, 113, 1023, 1025, 4096);
  Config c = base_config(t, dt);
  NSA_REQUIRE_CASE(run_case(c, 1000 + static_cast<uint64_t>(t)));
}

TEST_CASE("head dims", "[gpu][sweep]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::f16, Dtype::bf16);
  const auto dims =
      GENERATE(std::pair<int64_t, int64_t>{64, 64}, std::pair<int64_t, int64_t>{128, 64},
               std::pair<int64_t, int64_t>{128, 128}, std::pair<int64_t, int64_t>{192, 128},
               std::pair<int64_t, int64_t>{256, 64}, std::pair<int64_t, int64_t>{256, 128});
  Config c = base_config(300, dt, 1, 4);
  c.d_k = dims.first;
  c.d_v = dims.second;
  NSA_REQUIRE_CASE(run_case(c, 7));
}

TEST_CASE("group sizes", "[gpu][sweep]") {
  const auto g = GENERATE(int64_t{1}, 2, 3, 4, 5, 8, 16, 32, 64);
  const auto dt = GENERATE(Dtype::bf16, Dtype::f32);
  // 11 candidate blocks for top 6 (3 of them forced): the scores' head sums decide the rest.
  Config c = base_config(700, dt, g >= 32 ? 1 : 2, g);
  c.top_n = 6;
  c.d_k = 128;
  NSA_REQUIRE_CASE(run_case(c, 40 + static_cast<uint64_t>(g)));
}

TEST_CASE("top-n from 1 to beyond the block count", "[gpu][sweep]") {
  const auto n = GENERATE(int64_t{1}, 2, 3, 5, 8, 17, 40);
  const auto dt = GENERATE(Dtype::f16, Dtype::f32);
  Config c = base_config(1025, dt);  // 17 selection blocks
  c.top_n = n;
  c.n_init = n >= 3 ? 1 : 0;
  c.n_local = n >= 3 ? 2 : 1;
  NSA_REQUIRE_CASE(run_case(c, 90 + static_cast<uint64_t>(n)));
}

TEST_CASE("window sizes", "[gpu][sweep]") {
  const auto w = GENERATE(int64_t{1}, 64, 512);
  const auto keys = GENERATE(WindowKeys::w, WindowKeys::w_plus_one);
  Config c = base_config(1023, Dtype::bf16);
  c.window = w;
  c.window_keys = keys;
  c.profile = "custom";
  NSA_REQUIRE_CASE(run_case(c, 300 + static_cast<uint64_t>(w)));
}

TEST_CASE("block sizes", "[gpu][sweep]") {
  // (l, d, l') with l % d == 0 and l' % d == 0, including l' < l and l = d.
  const auto blk = GENERATE(std::tuple<int64_t, int64_t, int64_t>{16, 16, 16},
                            std::tuple<int64_t, int64_t, int64_t>{32, 16, 32},
                            std::tuple<int64_t, int64_t, int64_t>{64, 32, 32},
                            std::tuple<int64_t, int64_t, int64_t>{32, 8, 128});
  Config c = base_config(777, Dtype::f32);
  std::tie(c.cmp_block, c.cmp_stride, c.slc_block) = blk;
  c.top_n = 6;
  NSA_REQUIRE_CASE(run_case(c, 555));
}

TEST_CASE("more than 1024 candidate blocks (block-wide top-n)", "[gpu][sweep]") {
  Config c = base_config(16500, Dtype::bf16, 1, 2);
  c.cmp_block = c.cmp_stride = c.slc_block = 16;  // 1032 selection blocks
  c.top_n = 20;
  NSA_REQUIRE_CASE(run_case(c, 666));
}
