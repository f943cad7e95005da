// Decode-shaped batches (few query rows per sequence) and the given compressed cache: the
// split-K kernels of the compressed and window branches and the probs pass (attention_decode.cu)
// against the reference, with chunk merges, every G up to 16 (G > 16 keeps the tile kernels),
// padded and varlen batches, the cache given or compressed here, and the backward of a given
// cache (dk_tilde, dv_tilde).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "backward_case.hpp"
#include "gpu_case.hpp"
#include "scoped_env.hpp"

using namespace nsa::ref;
using nsa::cuda::test::base_config;
using nsa::cuda::test::run_backward_case;
using nsa::cuda::test::run_case;
using nsa::cuda::test::ScopedEnv;

namespace {

// B padded sequences of T_k keys, the last t_q rows each, knobs at the decode table's ratios.
Config decode_config(int64_t batch, int64_t t_q, int64_t t_k, Dtype dt, int64_t h_kv, int64_t g) {
  Config c = base_config(t_k, dt, h_kv, g);
  c.batch = batch;
  c.t_q = t_q;
  c.top_n = 8;
  return c;
}

}  // namespace

TEST_CASE("decode: rows x group sizes x dtypes, the cache compressed or given", "[gpu][decode]") {
  const auto dt = GENERATE(Dtype::bf16, Dtype::f16, Dtype::f32);
  const auto g = GENERATE(int64_t{1}, 2, 3, 4, 8, 16, 32);
  const auto t_q = GENERATE(int64_t{1}, 4, 16);
  const auto given = GENERATE(false, true);
  // Four KV heads where T_q = 4 (more partials per item, the side-stream merge's larger grid).
  Config c = decode_config(3, t_q, 1500, dt, t_q == 4 ? 4 : 2, g);
  c.cmp_given = given;
  NSA_REQUIRE_CASE(run_case(c, 900 + static_cast<uint64_t>(g * 10 + t_q)));
}

TEST_CASE("decode: long keys (many chunks per item), window sizes", "[gpu][decode]") {
  const auto w = GENERATE(int64_t{1}, 64, 512);
  const auto g = GENERATE(int64_t{1}, 4, 16);
  Config c = decode_config(2, 1, 9000, Dtype::bf16, w == 64 ? 4 : 2, g);
  c.window = w;
  c.d_k = c.d_v = 128;
  c.cmp_given = true;
  NSA_REQUIRE_CASE(run_case(c, 910 + static_cast<uint64_t>(w + g)));
}

TEST_CASE("decode: varlen with empty and short sequences, knobs", "[gpu][decode]") {
  const auto given = GENERATE(false, true);
  const auto knob = GENERATE(0, 1, 2);
  Config c = base_config(0, Dtype::bf16, 2, 4);
  c.layout = Layout::varlen;
  c.cu_seqlens_k = {0, 0, 21, 21 + 300, 21 + 300 + 2100, 21 + 300 + 2100 + 5};
  c.cu_seqlens_q = {0, 0, 1, 1 + 4, 1 + 4 + 3, 1 + 4 + 3 + 5};
  c.cmp_given = given;
  if (knob == 1) {
    c.profile = "custom";
    c.cmp_visibility = CmpVisibility::strict;  // the other visibility convention
    c.window_keys = WindowKeys::w_plus_one;
  }
  if (knob == 2) {  // the selection's scores alone read the compressed keys
    c.enable_cmp = false;
    c.shared_kv = true;
  }
  NSA_REQUIRE_CASE(run_case(c, 920 + static_cast<uint64_t>(knob)));
}

TEST_CASE("decode: adversarial index lists follow the policy (selection chunks)", "[gpu][decode]") {
  const auto policy = GENERATE(IndexPolicy::multiset, IndexPolicy::skip_invalid);
  const auto g = GENERATE(int64_t{1}, 4, 16);
  Config c = decode_config(3, 3, 2000, Dtype::bf16, 2, g);
  c.given_indices = true;
  c.index_policy = policy;
  c.profile = "custom";
  c.top_n = 9;
  const auto vc = validate(c);
  Inputs in = generate_inputs(vc, 960);
  in.indices = generate_indices(vc, 961, true);
  NSA_REQUIRE_CASE(run_case(c, 960, Regime::typical, &in));
}

TEST_CASE("decode: two runs are bitwise identical", "[gpu][decode]") {
  Config c = decode_config(4, 2, 7000, Dtype::bf16, 2, 4);
  c.d_k = c.d_v = 128;
  c.cmp_given = true;
  const auto vc = validate(c);
  // Scores not kept: p_cmp would take the probs pass off the decode path (stored scores).
  nsa::cuda::test::require_bitwise_repeatable(vc, generate_inputs(vc, 931), false);
}

// The decode step's reorderings change no bit: the mapping and top-n fused in one kernel against
// launch_map_scores + launch_topn (NSA_CUDA_DECODE_TOPN=0); the window and the compressed merge
// beside the chain on a side stream against everything in order (NSA_CUDA_DECODE_OVERLAP=0); the
// compressed and window kernels' three-stage rings against two (NSA_CUDA_DECODE_STAGES=2). The
// kernel's own scores then pick the host top-n's set exactly, ties included (the comparator
// accepts any tied choice).
TEST_CASE("decode: the fused top-n and the work beside the chain change no bit", "[gpu][decode]") {
  const auto knob = GENERATE(range(0, 8));
  Config c = decode_config(3, knob % 2 == 0 ? 1 : 3, 1500, Dtype::bf16, 4, 4);
  c.profile = "custom";
  c.top_n = 6;
  Regime regime = Regime::typical;
  switch (knob) {
    case 0:  // the head dims whose rings the default sizes differ most (2 x 3 x 8.7 KB per warp)
      c.d_k = c.d_v = 128;
      break;
    case 1:
      c.tie_break = TieBreak::higher_index_first;
      regime = Regime::ties;
      break;
    case 2:
      regime = Regime::ties;
      break;
    case 3:
      c.forced_mode = ForcedMode::score_one;
      c.group_reduce = GroupReduce::mean;
      break;
    case 4:
      c.score_mapping = ScoreMapping::paper_eq9;
      c.n_init = 0;
      c.n_local = 0;
      break;
    case 5:  // more blocks wanted than a row has: -1 padding
      c.score_mapping = ScoreMapping::identity;
      c.cmp_block = c.cmp_stride = c.slc_block = 32;
      c.top_n = 60;
      break;
    case 6:  // 1250 candidates: the kernel's 2048-candidate sort
      c.t_k = 20000;
      c.cmp_block = c.cmp_stride = c.slc_block = 16;
      break;
    case 7:  // varlen with an empty sequence and rows before the first compressed block
      c = base_config(0, Dtype::bf16, 4, 4);
      c.profile = "custom";
      c.top_n = 6;
      c.layout = Layout::varlen;
      c.cu_seqlens_k = {0, 0, 21, 21 + 300, 21 + 300 + 2100};
      c.cu_seqlens_q = {0, 0, 1, 1 + 4, 1 + 4 + 3};
      break;
    default:
      break;
  }
  const auto vc = validate(c);
  Inputs in = generate_inputs(vc, 980 + static_cast<uint64_t>(knob), regime);
  const bool ties = regime == Regime::ties;
  if (ties)  // identical compression keys: interior blocks' scores tie exactly (test_knobs.cpp)
    for (std::size_t i = 0; i < in.k[0].size(); ++i)
      in.k[0][i] = 0.5 * static_cast<double>(static_cast<int64_t>(i % c.d_k % 3) - 1);
  nsa::cuda::Options opt;
  opt.keep_scores = true;
  const auto got = nsa::cuda::forward(vc, in, opt);
  {
    ScopedEnv off("NSA_CUDA_DECODE_TOPN", "0");
    nsa::cuda::test::require_bitwise_equal(got, nsa::cuda::forward(vc, in, opt));
  }
  {
    ScopedEnv off("NSA_CUDA_DECODE_OVERLAP", "0");
    nsa::cuda::test::require_bitwise_equal(got, nsa::cuda::forward(vc, in, opt));
  }
  {
    ScopedEnv two("NSA_CUDA_DECODE_STAGES", "2");
    nsa::cuda::test::require_bitwise_equal(got, nsa::cuda::forward(vc, in, opt));
  }
  int64_t tied = 0;  // adjacent candidates with exactly equal scores
  for (int64_t row = 0; row < vc.total_q; ++row)
    for (int64_t g = 0; g < c.h_kv; ++g) {
      const double* s = got.scores.data() + (row * c.h_kv + g) * got.ns_max;
      const int64_t t = nsa::cuda::test::row_position(vc, row);
      const auto want = nsa::cuda::test::host_topn(vc, t, s);
      const int32_t* idx = got.indices.data() + (row * c.h_kv + g) * c.top_n;
      INFO("knob " << knob << " row " << row << " kv head " << g);
      REQUIRE(std::equal(want.begin(), want.end(), idx));
      for (int64_t j = 1; j <= t / c.slc_block; ++j) tied += s[j] == s[j - 1];
    }
  if (ties) REQUIRE(tied > 0);  // the tie rule really decided some selections
  if (knob != 6) NSA_REQUIRE_CASE(run_case(c, 980 + static_cast<uint64_t>(knob), regime));
}

TEST_CASE("decode: a given cache without its tensors is refused", "[gpu][decode]") {
  Config c = decode_config(1, 1, 300, Dtype::bf16, 2, 4);
  c.cmp_given = true;
  const auto vc = validate(c);
  Inputs in = generate_inputs(vc, 941);
  in.k_tilde.pop_back();
  REQUIRE_THROWS_WITH(nsa::cuda::forward(vc, in), Catch::Contains("k_tilde"));
}

TEST_CASE("backward: given compressed cache", "[gpu][backward][decode]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::bf16, Dtype::f16);
  const auto shape = GENERATE(0, 1, 2);
  Config c = decode_config(2, shape == 0 ? 4 : 300, 300, dt, 2, 4);
  c.cmp_given = true;
  if (shape == 2) {  // the selection's scores alone read the cache: its gradients are 0
    c.enable_cmp = false;
    c.shared_kv = true;
  }
  NSA_REQUIRE_BACKWARD(run_backward_case(c, 950 + static_cast<uint64_t>(shape)));
}

// Small decode cases for compute-sanitizer (ci/gpu-sanitize.sh runs "[sanitize]"): the split-K
// kernels with several chunks per item and their merge, the selection's decode chunks over
// adversarial multiset lists, a varlen batch with an empty sequence, the cache given.
TEST_CASE("decode: sanitizer subset", "[gpu][decode][sanitize]") {
  Config c = decode_config(3, 1, 1500, Dtype::bf16, 4, 4);  // 92 compressed rows: 2 chunks
  c.cmp_given = true;
  NSA_REQUIRE_CASE(run_case(c, 970));
  Config v = base_config(0, Dtype::f16, 2, 16);
  v.layout = Layout::varlen;
  v.cu_seqlens_k = {0, 0, 700, 700 + 90};
  v.cu_seqlens_q = {0, 0, 2, 2 + 1};
  v.given_indices = true;
  v.index_policy = IndexPolicy::multiset;
  v.profile = "custom";
  const auto vc = validate(v);
  Inputs in = generate_inputs(vc, 971);
  in.indices = generate_indices(vc, 972, true);
  NSA_REQUIRE_CASE(run_case(v, 971, Regime::typical, &in));
}
