// A given compressed cache (Config::cmp_given, docs/semantics.md "A given compressed cache"):
// the forward on phi's own output gives the bits of the forward that runs phi, the cache is
// checked like every input, the decode-step helper gives the bits of compressing the whole
// sequence, and the gradient reaching k~ / v~ is the one the normal path sends into phi.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "nsa/ref/backward.hpp"
#include "nsa/ref/compressed_cache.hpp"
#include "nsa/ref/generate.hpp"
#include "test_support.hpp"

using namespace nsa;
using namespace nsa::ref;

namespace {

Config base(Dtype dtype = Dtype::f64) {
  Config c;
  c.profile = "custom";
  c.layout = Layout::varlen;
  // An empty sequence, one shorter than l, a decode row (T_q = 1), a prefill and a query suffix.
  c.cu_seqlens_k = {0, 0, 5, 70, 170, 260};
  c.cu_seqlens_q = {0, 0, 5, 6, 106, 110};
  c.h_q = 4;
  c.h_kv = 2;
  c.d_k = 6;
  c.d_v = 5;
  c.cmp_block = 8;
  c.cmp_stride = 4;
  c.slc_block = 16;
  c.top_n = 4;
  c.window = 20;
  c.dtype = dtype;
  return c;
}

// The same problem with the cache given: phi's output as the inputs k~ / v~.
struct Pair {
  ValidConfig normal, given;
  Inputs in_normal, in_given;
};

Pair make_pair(Config c, Precision cache_precision, uint64_t seed = 7) {
  Pair p;
  p.normal = validate(c);
  p.in_normal = generate_inputs(p.normal, seed);
  c.cmp_given = true;
  p.given = validate(c);
  p.in_given = p.in_normal;
  const auto cache = compress_cache(p.normal, p.in_normal, cache_precision);
  p.in_given.k_tilde = cache.k;
  p.in_given.v_tilde = cache.v;
  // phi is not run: its parameters are not inputs, and K_cmp/V_cmp are not read.
  p.in_given.phi_k = {};
  p.in_given.phi_v = {};
  const int ci = static_cast<int>(Branch::cmp);
  if (!c.shared_kv) {
    p.in_given.k[ci].clear();
    p.in_given.v[ci].clear();
  }
  return p;
}

void require_same_bits(const Outputs& a, const Outputs& b) {
  for (int i = 0; i < 3; ++i) {
    INFO("branch " << i);
    REQUIRE(test::max_diff(a.o_branch[i], b.o_branch[i]) == 0);
    REQUIRE(test::max_diff(a.lse[i], b.lse[i]) == 0);
  }
  REQUIRE(test::max_diff(a.o, b.o) == 0);
  REQUIRE(test::max_diff(a.p_cmp, b.p_cmp) == 0);
  REQUIRE(test::max_diff(a.scores, b.scores) == 0);
  REQUIRE(test::max_diff(a.score_gap, b.score_gap) == 0);
  REQUIRE(a.indices == b.indices);
}

}  // namespace

TEST_CASE("cmp_given: the forward on phi's output gives the bits of the forward that runs phi") {
  for (Phi phi : {Phi::mean, Phi::linear, Phi::mlp})
    for (bool shared : {false, true}) {
      Config c = base();
      c.phi = phi;
      c.phi_hidden = phi == Phi::mlp ? 7 : 0;
      c.shared_kv = shared;
      INFO("phi " << to_string(phi) << ", shared_kv " << shared);
      const Pair p = make_pair(c, Precision::f64);
      require_same_bits(forward(p.normal, p.in_normal, Precision::f64),
                        forward(p.given, p.in_given, Precision::f64));
    }
}

TEST_CASE("cmp_given: the baseline on the baseline's cache gives the baseline's bits (bf16)") {
  for (Phi phi : {Phi::mean, Phi::linear}) {
    Config c = base(Dtype::bf16);
    c.phi = phi;
    INFO("phi " << to_string(phi));
    const Pair p = make_pair(c, Precision::baseline);
    require_same_bits(forward(p.normal, p.in_normal, Precision::baseline),
                      forward(p.given, p.in_given, Precision::baseline));
  }
}

TEST_CASE("cmp_given: the forward reads the cache, not K_cmp or phi") {
  Config c = base();
  c.cmp_given = true;
  const auto vc = validate(c);
  Inputs in = generate_inputs(vc, 3);
  REQUIRE(static_cast<int64_t>(in.k_tilde.size()) == vc.total_cmp * c.h_kv * c.d_k);
  // N_c of each sequence: 0, 0, 15, 24, 21.
  REQUIRE(vc.total_cmp == 60);
  REQUIRE(vc.seqs[4].c_begin == 39);
  const auto a = forward(vc, in, Precision::f64);
  Inputs other = in;
  for (double& x : other.k[0]) x = -x;  // K_cmp is not read
  REQUIRE_FALSE(test::outputs_differ(a, forward(vc, other, Precision::f64)));
  other.k_tilde[(vc.seqs[3].c_begin * c.h_kv + 1) * c.d_k] += 0.5;  // the cache is
  REQUIRE(test::outputs_differ(a, forward(vc, other, Precision::f64)));
}

TEST_CASE("cmp_given: the cache is validated like every input, naming where it is wrong") {
  Config c = base(Dtype::bf16);
  c.cmp_given = true;
  const auto vc = validate(c);
  const Inputs good = generate_inputs(vc, 3);
  REQUIRE_NOTHROW(check_inputs(vc, good));
  REQUIRE(input_shapes(vc).phi_pos_k == 0);  // phi's parameters are not inputs
  auto fails = [&](auto edit, const std::string& text) {
    Inputs in = good;
    edit(in);
    REQUIRE_THROWS_WITH(check_inputs(vc, in), Catch::Contains(text));
    REQUIRE_THROWS_WITH(forward(vc, in, Precision::f64), Catch::Contains(text));
  };
  fails([](Inputs& in) { in.k_tilde.pop_back(); },
        "input 'k_tilde' has 719 elements, expected 720 ([total_cmp = 60, h_kv = 2, 6])");
  fails([](Inputs& in) { in.v_tilde.push_back(0); }, "input 'v_tilde' has 601 elements");
  // Sequence 3 starts at block 15: element ((15 + 2) * 2 + 1) * 6 + 4 is its block 2, head 1.
  const std::size_t e = ((15 + 2) * 2 + 1) * 6 + 4;
  fails([&](Inputs& in) { in.k_tilde[e] = std::numeric_limits<double>::quiet_NaN(); },
        "input 'k_tilde' sequence 3, block 2, kv head 1, component 4 (element 214) = nan is "
        "not finite");
  fails([&](Inputs& in) { in.v_tilde[7] = INFINITY; },
        "input 'v_tilde' sequence 2, block 0, kv head 1, component 2 (element 7) = inf");
  fails([&](Inputs& in) { in.k_tilde[e] = 0.1; },
        "input 'k_tilde' sequence 3, block 2, kv head 1, component 4 (element 214) = "
        "0.10000000000000001 is not representable in bf16");
  fails([](Inputs& in) { in.phi_k.pos = {0.5}; }, "input 'phi_k.pos' has 1 elements, expected 0");
  // Without cmp_given a cache is a mistake, not silently ignored.
  Config plain = base(Dtype::bf16);
  const auto vp = validate(plain);
  Inputs in = generate_inputs(vp, 3);
  in.k_tilde = good.k_tilde;
  REQUIRE_THROWS_WITH(check_inputs(vp, in),
                      Catch::Contains("input 'k_tilde' has 720 elements, expected 0 (cmp_given is "
                                      "false: no compressed cache is read)"));
}

TEST_CASE("cmp_given: a cache that nothing reads is still an input of its shape, unused") {
  // The judge reruns a case with the candidate's own index lists (given_indices): with the
  // compression branch off, the cache is then read by nothing.
  Config c = base();
  c.cmp_given = true;
  c.enable_cmp = false;
  c.given_indices = true;
  const auto vc = validate(c);
  Inputs in = generate_inputs(vc, 3);
  REQUIRE(static_cast<int64_t>(in.k_tilde.size()) == vc.total_cmp * c.h_kv * c.d_k);
  const auto a = forward(vc, in, Precision::f64);
  for (double& x : in.k_tilde) x = -x;
  REQUIRE_FALSE(test::outputs_differ(a, forward(vc, in, Precision::f64)));
  in.k_tilde.pop_back();
  REQUIRE_THROWS_WITH(check_inputs(vc, in), Catch::Contains("input 'k_tilde' has 719 elements"));
}

TEST_CASE("compress_completed_blocks: a decode stream builds the bits of the whole cache") {
  for (Phi phi : {Phi::mean, Phi::linear, Phi::mlp})
    for (Precision p : {Precision::f64, Precision::baseline}) {
      Config c = base(p == Precision::baseline ? Dtype::f16 : Dtype::f64);
      c.phi = phi;
      c.phi_hidden = phi == Phi::mlp ? 5 : 0;
      INFO("phi " << to_string(phi) << ", precision " << to_string(p));
      const auto vc = validate(c);
      const Inputs in = generate_inputs(vc, 5);
      const auto whole = compress_cache(vc, in, p);
      const auto& seq = vc.seqs[4];  // 90 keys
      const int64_t hk = c.h_kv * c.d_k, hv = c.h_kv * c.d_v;
      std::vector<double> k_stream, v_stream;
      // Steps of 1 key (decode), then larger ones that complete several blocks at once.
      int64_t t = 0;
      for (int64_t step : {1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 17, 1, 30, 0, 2, 28}) {
        const auto b = completed_blocks(vc, t, t + step);
        REQUIRE(b.first_block == vc.num_cmp_blocks(t));
        REQUIRE(b.first_token <= t);
        auto tail = [&](const std::vector<double>& x, int64_t width) {
          return std::vector<double>(x.begin() + (seq.k_begin + b.first_token) * width,
                                     x.begin() + (seq.k_begin + t + step) * width);
        };
        const auto got = compress_completed_blocks(vc, tail(in.k[0], hk), tail(in.v[0], hv),
                                                   in.phi_k, in.phi_v, t, t + step, p);
        REQUIRE(static_cast<int64_t>(got.k.size()) == b.count * hk);
        k_stream.insert(k_stream.end(), got.k.begin(), got.k.end());
        v_stream.insert(v_stream.end(), got.v.begin(), got.v.end());
        t += step;
      }
      REQUIRE(t == seq.t_k);
      const std::vector<double> k_want(whole.k.begin() + seq.c_begin * hk,
                                       whole.k.begin() + (seq.c_begin + 21) * hk);
      const std::vector<double> v_want(whole.v.begin() + seq.c_begin * hv,
                                       whole.v.begin() + (seq.c_begin + 21) * hv);
      REQUIRE(k_stream == k_want);
      REQUIRE(v_stream == v_want);
    }
}

TEST_CASE("compress_completed_blocks: bad steps and tails are named") {
  const auto vc = validate(base());
  const Inputs in = generate_inputs(vc, 5);
  REQUIRE_THROWS_WITH(completed_blocks(vc, 9, 8), Catch::Contains("t_old = 9, t_new = 8"));
  REQUIRE_THROWS_WITH(completed_blocks(vc, -1, 8), Catch::Contains("expected 0 <= t_old"));
  // 9 -> 12 keys completes block 1 (tokens 4..11): the tail is tokens [4, 12).
  const auto b = completed_blocks(vc, 9, 12);
  REQUIRE(b.first_block == 1);
  REQUIRE(b.count == 1);
  REQUIRE(b.first_token == 4);
  std::vector<double> k(8 * 2 * 6, 0.25), v(8 * 2 * 5, 0.5);
  REQUIRE_NOTHROW(compress_completed_blocks(vc, k, v, in.phi_k, in.phi_v, 9, 12));
  REQUIRE_THROWS_WITH(
      compress_completed_blocks(vc, std::vector<double>(90, 0.25), v, in.phi_k, in.phi_v, 9, 12),
      Catch::Contains("input 'k_tail' has 90 elements, expected 96"));
  k[3] = NAN;
  REQUIRE_THROWS_WITH(compress_completed_blocks(vc, k, v, in.phi_k, in.phi_v, 9, 12),
                      Catch::Contains("input 'k_tail' element 3"));
}

TEST_CASE("cmp_given: the gradient of k~ / v~ is the one the normal path sends into phi") {
  // Mean phi: the normal path's dK_cmp[u] is the sum of dk~_i / l over the blocks covering u.
  // The given path's dk~, spread the same way here, must give the normal dK_cmp; every other
  // gradient keeps its bits, and K_cmp and phi get none.
  Config c = base();
  c.d_k = 3;
  c.d_v = 2;
  const Pair p = make_pair(c, Precision::f64);
  const auto d_o = generate_grad_output(p.normal, 9);
  const auto gn = backward(p.normal, p.in_normal, d_o, Precision::f64);
  const auto gg = backward(p.given, p.in_given, d_o, Precision::f64);
  const auto& vc = p.normal;
  REQUIRE(static_cast<int64_t>(gg.dk_tilde.size()) == vc.total_cmp * c.h_kv * c.d_k);
  REQUIRE(test::max_abs(gg.dk[0]) == 0);
  REQUIRE(test::max_abs(gg.dv[0]) == 0);
  REQUIRE(gg.dphi_k.pos.empty());
  REQUIRE(test::max_abs(gg.dk_tilde) > 0);
  for (const char* name : {"dq", "dk_slc", "dv_slc", "dk_win", "dv_win", "dg_cmp", "dg_slc"}) {
    INFO(name);
    REQUIRE(test::max_diff(grad_tensor(p.normal, gn, name), grad_tensor(p.given, gg, name)) == 0);
  }
  for (const bool is_k : {true, false}) {
    const int64_t dim = is_k ? c.d_k : c.d_v;
    const auto& dt = is_k ? gg.dk_tilde : gg.dv_tilde;
    const auto& want = is_k ? gn.dk[0] : gn.dv[0];
    std::vector<double> spread(want.size(), 0.0);
    for (const auto& seq : vc.seqs)
      for (int64_t i = 0; i < vc.num_cmp_blocks(seq.t_k); ++i)
        for (int64_t j = 0; j < c.cmp_block; ++j)
          for (int64_t e = 0; e < c.h_kv * dim; ++e)
            spread[(seq.k_begin + i * c.cmp_stride + j) * c.h_kv * dim + e] +=
                dt[(seq.c_begin + i) * c.h_kv * dim + e] / static_cast<double>(c.cmp_block);
    INFO((is_k ? "dk" : "dv") << ": max |normal - spread| " << test::max_diff(want, spread));
    REQUIRE(test::max_diff(want, spread) <= 1e-13 * std::max(1.0, test::max_abs(want)));
  }
  // The names: dk_tilde / dv_tilde replace dk_cmp / dv_cmp, no phi gradients.
  const auto names = grad_tensor_names(p.given);
  REQUIRE(std::find(names.begin(), names.end(), "dk_tilde") != names.end());
  REQUIRE(std::find(names.begin(), names.end(), "dk_cmp") == names.end());
  REQUIRE_THROWS_WITH(grad_tensor(p.given, gg, "dk_cmp"), Catch::Contains("_tilde"));
  REQUIRE_THROWS_WITH(grad_tensor(p.normal, gn, "dk_tilde"),
                      Catch::Contains("only with cmp_given"));
}

TEST_CASE("cmp_given: on random configs of every knob, phi's output as the cache keeps the bits") {
  // fp64 inputs, so phi's exact output is representable and the cache is phi's output itself.
  int64_t checked = 0;
  for (uint64_t seed = 1; seed <= 80; ++seed) {
    Config c = test::random_config(seed);
    c.dtype = Dtype::f64;
    INFO("seed " << seed << ": " << describe(c));
    const auto vn = validate(c);
    const Inputs in = test::random_inputs(vn, seed);
    Config cg = c;
    cg.cmp_given = true;
    const auto vg = validate(cg);
    Inputs ig = in;
    const auto cache = compress_cache(vn, in, Precision::f64);
    ig.k_tilde = cache.k;
    ig.v_tilde = cache.v;
    ig.phi_k = {};
    ig.phi_v = {};
    require_same_bits(forward(vn, in, Precision::f64), forward(vg, ig, Precision::f64));
    ++checked;
  }
  REQUIRE(checked == 80);
}
