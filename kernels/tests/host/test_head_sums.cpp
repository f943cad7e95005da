// The probs pass's head-sum reduce-scatter (kernels/src/head_sums.hpp) run by a host model of a
// warp: 32 threads, one per lane, exchanging values through shared slots between barriers, the
// way a warp shuffle does. Oracle: each lane's sums recomputed directly from every lane's input.
#define CATCH_CONFIG_MAIN
#include <barrier>
#include <catch2/catch.hpp>
#include <random>
#include <thread>
#include <vector>

#include "head_sums.hpp"

namespace {

struct Pair {
  float x, y;
};

struct LaneResult {
  Pair v[8];
  int j0;
};

// Runs sum_heads_in_lanes on 32 lanes whose inputs are in[lane]; returns every lane's result.
std::vector<LaneResult> run_warp(const std::vector<LaneResult>& in, int bits) {
  std::vector<LaneResult> out = in;
  std::vector<float> slot(32);
  std::barrier sync(32);
  std::vector<std::thread> lanes;
  for (int lane = 0; lane < 32; ++lane)
    lanes.emplace_back([&, lane] {
      auto xchg = [&](float x, int m) {
        slot[lane] = x;
        sync.arrive_and_wait();
        const float got = slot[lane ^ m];
        sync.arrive_and_wait();  // nobody overwrites a slot before every lane has read
        return got;
      };
      out[lane].j0 = nsa::cuda::detail::sum_heads_in_lanes(out[lane].v, bits, lane, xchg);
    });
  for (auto& t : lanes) t.join();
  return out;
}

}  // namespace

TEST_CASE("head sums: each lane holds the sum over its row's heads of the columns it names",
          "[kernels][head_sums]") {
  std::mt19937 gen(20261129);
  std::uniform_int_distribution<int> small(-1000, 1000);  // integers: every float sum is exact
  for (int bits = 0; bits <= 3; ++bits) {
    CAPTURE(bits);
    std::vector<LaneResult> in(32);
    for (auto& l : in)
      for (auto& p : l.v) p = {static_cast<float>(small(gen)), static_cast<float>(small(gen))};
    const auto out = run_warp(in, bits);
    const int head_mask = ((1 << bits) - 1) << 2;  // lane bits 2 .. 1 + bits: the heads
    const int kept = 8 >> bits;
    for (int lane = 0; lane < 32; ++lane) {
      CAPTURE(lane);
      std::vector<int> covered(8, 0);  // column pairs named by the lanes of this row
      for (int other = 0; other < 32; ++other) {
        if ((other & ~head_mask) != (lane & ~head_mask)) continue;
        for (int jj = 0; jj < kept; ++jj) ++covered[out[other].j0 + jj];
      }
      for (int j = 0; j < 8; ++j) REQUIRE(covered[j] == 1);  // a partition of the 8 pairs
      for (int jj = 0; jj < kept; ++jj) {
        const int j = out[lane].j0 + jj;
        double want_x = 0, want_y = 0;
        for (int other = 0; other < 32; ++other)
          if ((other & ~head_mask) == (lane & ~head_mask)) {
            want_x += in[other].v[j].x;
            want_y += in[other].v[j].y;
          }
        REQUIRE(out[lane].v[jj].x == want_x);
        REQUIRE(out[lane].v[jj].y == want_y);
      }
    }
  }
}
