#include "gpu_case.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <sstream>

#include "nsa/ref/forward.hpp"

namespace nsa::cuda::test {

using namespace nsa::ref;

Config base_config(int64_t t, Dtype dt, int64_t h_kv, int64_t g) {
  Config c;
  c.t_k = t;
  c.h_kv = h_kv;
  c.h_q = h_kv * g;
  c.d_k = c.d_v = 64;
  c.cmp_block = 32;
  c.cmp_stride = 16;
  c.slc_block = 64;
  c.top_n = 4;
  c.window = 64;
  c.dtype = dt;
  return c;
}

std::vector<int64_t> sample_rows(const ValidConfig& vc, int64_t limit) {
  std::vector<int64_t> rows;
  if (vc.total_q <= limit) {
    for (int64_t r = 0; r < vc.total_q; ++r) rows.push_back(r);
    return rows;
  }
  const auto& c = vc.cfg;
  for (const auto& s : vc.seqs) {
    if (s.t_q == 0) continue;
    for (int64_t i : {int64_t{0}, int64_t{1}, s.t_q - 2, s.t_q - 1})
      if (i >= 0 && i < s.t_q) rows.push_back(s.q_begin + i);
    // Around selection/compression boundaries and the window edge.
    for (int64_t t : {c.cmp_block - 1, c.cmp_block, c.slc_block - 1, c.slc_block, c.window - 1,
                      c.window, c.window + 1, 3 * c.slc_block + 5}) {
      const int64_t i = t - (s.t_k - s.t_q);
      if (i >= 0 && i < s.t_q) rows.push_back(s.q_begin + i);
    }
  }
  // Evenly spread rows, fixed stride: deterministic.
  const int64_t want = std::max<int64_t>(0, limit - static_cast<int64_t>(rows.size()));
  for (int64_t k = 0; k < want; ++k)
    rows.push_back((vc.total_q - 1) * k / std::max<int64_t>(1, want - 1) * 1);
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

CaseResult run_case(const Config& cfg, uint64_t seed, Regime regime, const Inputs* given,
                    const Options& opt) {
  const ValidConfig vc = validate(cfg);
  const Inputs generated = given ? Inputs{} : generate_inputs(vc, seed, regime);
  const Inputs& in = given ? *given : generated;
  CaseResult r;
  r.gpu = nsa::cuda::forward(vc, in, opt);
  const auto rows = sample_rows(vc);
  const Outputs cand =
      static_cast<int64_t>(rows.size()) == vc.total_q ? r.gpu : select_rows(r.gpu, rows);
  r.verdict = check_candidate(vc, in, cand, Precision::f64);
  std::ostringstream o;
  o << "config: " << describe(cfg) << "\nseed " << seed << " regime " << to_string(regime) << ", "
    << rows.size() << " of " << vc.total_q << " rows checked\n"
    << r.verdict.table();
  r.report = o.str();
  return r;
}

void require_bitwise_repeatable(const ValidConfig& vc, const Inputs& in, bool keep_scores) {
  nsa::cuda::Options opt;
  opt.keep_scores = keep_scores;
  require_bitwise_equal(nsa::cuda::forward(vc, in, opt), nsa::cuda::forward(vc, in, opt));
}

void require_bitwise_equal(const Outputs& a, const Outputs& b) {
  for (int i = 0; i < 3; ++i) {
    REQUIRE(a.o_branch[i] == b.o_branch[i]);
    REQUIRE(a.lse[i] == b.lse[i]);
  }
  REQUIRE(a.o == b.o);
  REQUIRE(a.indices == b.indices);
  REQUIRE(a.scores == b.scores);
  REQUIRE(a.p_cmp == b.p_cmp);
}

std::vector<int32_t> host_topn(const ValidConfig& vc, int64_t t, const double* score) {
  const auto& c = vc.cfg;
  const int64_t n_cand = t / c.slc_block + 1, cur = t / c.slc_block;
  std::vector<int64_t> chosen, free;
  for (int64_t j = 0; j < n_cand; ++j) {
    const bool forced = j < c.n_init || j > cur - c.n_local;
    (c.forced_mode == ForcedMode::always && forced ? chosen : free).push_back(j);
  }
  const bool lower = c.tie_break == TieBreak::lower_index_first;
  std::sort(free.begin(), free.end(), [&](int64_t a, int64_t b) {
    if (score[a] != score[b]) return score[a] > score[b];
    return lower ? a < b : a > b;
  });
  const int64_t want = std::min(c.top_n, n_cand);
  for (std::size_t i = 0; static_cast<int64_t>(chosen.size()) < want; ++i)
    chosen.push_back(free[i]);
  std::sort(chosen.begin(), chosen.end());
  std::vector<int32_t> out(static_cast<std::size_t>(c.top_n), -1);
  for (std::size_t i = 0; i < chosen.size(); ++i) out[i] = static_cast<int32_t>(chosen[i]);
  return out;
}

int64_t row_position(const ValidConfig& vc, int64_t row) {
  for (const auto& sq : vc.seqs)
    if (row >= sq.q_begin && row < sq.q_begin + sq.t_q) return sq.pos(row - sq.q_begin);
  FAIL("row " << row << " is in no sequence");
  return -1;
}

}  // namespace nsa::cuda::test
