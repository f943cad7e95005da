// Every convention knob, the three profiles, compression functions, disabled branches, shared
// K/V, varlen batches with empty sequences and query suffixes, stress regimes.
#include <algorithm>
#include <catch2/catch.hpp>

#include "gpu_case.hpp"

using namespace nsa::ref;
using nsa::cuda::test::base_config;
using nsa::cuda::test::host_topn;
using nsa::cuda::test::run_case;

TEST_CASE("profiles", "[gpu][knobs]") {
  const auto name =
      GENERATE(std::string("canonical"), std::string("fla"), std::string("nsa_triton"));
  const auto dt = GENERATE(Dtype::f32, Dtype::bf16);
  // fla accepts only group sizes that are powers of two >= 16 (profile validation).
  Config c = base_config(1100, dt, 2, name == "fla" ? 16 : 4);
  apply_profile(c, name);
  c.profile = name;
  NSA_REQUIRE_CASE(run_case(c, 11));
}

TEST_CASE("convention knobs one at a time", "[gpu][knobs]") {
  const auto knob = GENERATE(range(0, 8));
  const auto dt = GENERATE(Dtype::f32, Dtype::f16);
  Config c = base_config(700, dt, 2, 3);
  c.profile = "custom";
  switch (knob) {
    case 0:
      c.cmp_visibility = CmpVisibility::strict;
      break;
    case 1:
      c.score_mapping = ScoreMapping::paper_eq9;
      break;
    case 2:
      c.group_reduce = GroupReduce::mean;
      break;
    case 3:
      c.forced_mode = ForcedMode::score_one;
      break;
    case 4:
      c.tie_break = TieBreak::higher_index_first;
      break;
    case 5:
      c.slc_causal = SlcCausal::none;
      break;
    case 6:
      c.score_mapping = ScoreMapping::identity;
      c.cmp_block = c.cmp_stride = c.slc_block = 32;
      break;
    default:
      c.n_init = 0;
      c.n_local = 0;
      break;
  }
  INFO("knob case " << knob);
  NSA_REQUIRE_CASE(run_case(c, 21 + static_cast<uint64_t>(knob)));
}

TEST_CASE("ties regime: exactly equal block scores", "[gpu][knobs]") {
  const auto tie = GENERATE(TieBreak::lower_index_first, TieBreak::higher_index_first);
  Config c = base_config(900, Dtype::bf16, 1, 4);
  c.profile = "custom";
  c.tie_break = tie;
  c.top_n = 6;
  NSA_REQUIRE_CASE(run_case(c, 31, Regime::ties));
}

TEST_CASE("peaked and extreme regimes", "[gpu][knobs]") {
  const auto regime = GENERATE(Regime::peaked, Regime::extreme);
  const auto dt = GENERATE(Dtype::f32, Dtype::f16, Dtype::bf16);
  Config c = base_config(500, dt);
  NSA_REQUIRE_CASE(run_case(c, 41, regime));
}

TEST_CASE("compression functions", "[gpu][knobs]") {
  const auto phi = GENERATE(Phi::mean, Phi::linear, Phi::mlp);
  const auto act = GENERATE(Activation::relu, Activation::silu);
  const auto dt = GENERATE(Dtype::f32, Dtype::bf16);
  if (phi != Phi::mlp && act == Activation::silu) return;
  Config c = base_config(400, dt);
  c.phi = phi;
  c.phi_act = act;
  c.phi_hidden = phi == Phi::mlp ? 48 : 0;
  NSA_REQUIRE_CASE(run_case(c, 51));
}

TEST_CASE("branch subsets and shared K/V", "[gpu][knobs]") {
  const auto mask = GENERATE(range(1, 8));
  const auto shared = GENERATE(false, true);
  Config c = base_config(333, Dtype::f16, 2, 2);
  c.enable_cmp = mask & 1;
  c.enable_slc = mask & 2;
  c.enable_win = mask & 4;
  c.shared_kv = shared;
  NSA_REQUIRE_CASE(run_case(c, 61 + static_cast<uint64_t>(mask)));
}

TEST_CASE("varlen with empty and short sequences, query suffix", "[gpu][knobs]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::bf16);
  const auto suffix = GENERATE(false, true);
  Config c = base_config(0, dt, 2, 2);
  c.layout = Layout::varlen;
  c.cu_seqlens_k = {0, 0, 17, 17 + 130, 17 + 130 + 1, 17 + 130 + 1 + 1025};
  if (suffix) c.cu_seqlens_q = {0, 0, 5, 5 + 130, 5 + 130 + 1, 5 + 130 + 1 + 64};
  NSA_REQUIRE_CASE(run_case(c, 71));
}

TEST_CASE("padded batch with query suffix (decode and chunked prefill)", "[gpu][knobs]") {
  const auto tq = GENERATE(int64_t{1}, 37);
  Config c = base_config(1500, Dtype::bf16, 2, 4);
  c.batch = 3;
  c.t_q = tq;
  NSA_REQUIRE_CASE(run_case(c, 81));
}

TEST_CASE("scores and p_cmp kept", "[gpu][knobs]") {
  Config c = base_config(260, Dtype::f32);
  nsa::cuda::Options opt;
  opt.keep_scores = true;
  const auto r = run_case(c, 91, Regime::typical, nullptr, opt);
  NSA_REQUIRE_CASE(r);
  // Each visible row of p_cmp is a probability distribution.
  const auto vc = validate(c);
  for (int64_t row = 0; row < vc.total_q; ++row)
    for (int64_t h = 0; h < c.h_q; ++h) {
      double s = 0;
      for (int64_t i = 0; i < r.gpu.nc_max; ++i)
        s += r.gpu.p_cmp[(row * c.h_q + h) * r.gpu.nc_max + i];
      if (row >= c.cmp_block - 1)
        REQUIRE(s == Approx(1.0).epsilon(1e-4));
      else
        REQUIRE(s == 0.0);
    }
}

// The comparator accepts any choice among exactly tied truth scores, so the tie rule itself is
// checked here against an independent host top-n (gpu_case.hpp) on the kernel's own scores.
TEST_CASE("top-n follows the tie rule on the kernel's own scores", "[gpu][knobs]") {
  const auto tie = GENERATE(TieBreak::lower_index_first, TieBreak::higher_index_first);
  const auto forced = GENERATE(ForcedMode::always, ForcedMode::score_one);
  const auto t_k = GENERATE(int64_t{700}, int64_t{3000});  // warp and block-wide top-n paths
  Config c = base_config(t_k, Dtype::bf16, 2, 4);
  c.profile = "custom";
  c.tie_break = tie;
  c.forced_mode = forced;
  c.top_n = 7;
  if (t_k == 3000) c.cmp_block = c.cmp_stride = c.slc_block = 2;  // 1500 candidates
  const auto vc = validate(c);
  Inputs in = generate_inputs(vc, 171, Regime::ties);
  // Identical compression keys: every visible compressed block gets the same weight, so the
  // mapped scores of interior blocks tie exactly and the tie rule decides the selection.
  for (std::size_t i = 0; i < in.k[0].size(); ++i)
    in.k[0][i] = 0.5 * static_cast<double>(static_cast<int64_t>(i % c.d_k % 3) - 1);
  nsa::cuda::Options opt;
  opt.keep_scores = true;
  const auto out = nsa::cuda::forward(vc, in, opt);
  int64_t tied_rows = 0;
  for (int64_t row = 0; row < vc.total_q; ++row)
    for (int64_t g = 0; g < c.h_kv; ++g) {
      const double* s = out.scores.data() + (row * c.h_kv + g) * out.ns_max;
      const auto want = host_topn(vc, vc.seqs[0].pos(row), s);
      const int32_t* got = out.indices.data() + (row * c.h_kv + g) * c.top_n;
      INFO("row " << row << " kv head " << g << " tie " << to_string(tie));
      REQUIRE(std::equal(want.begin(), want.end(), got));
      const int64_t n_cand = vc.seqs[0].pos(row) / c.slc_block + 1;
      for (int64_t j = 1; j < n_cand; ++j) tied_rows += s[j] == s[j - 1];
    }
  REQUIRE(tied_rows > 0);  // the regime really produced ties
}
