// The CUDA backward against the reference gradients (gradient comparator, dtype-faithful
// backward baseline): lengths, dtypes, head dims, group sizes, varlen, suffixes, knobs, given
// index lists under each policy, adversarial lists, phi linear / mlp, determinism and input
// errors.
#include <catch2/catch.hpp>
#include <cstring>

#include "backward_case.hpp"
#include "gpu_case.hpp"

using namespace nsa::ref;
using nsa::cuda::test::base_config;
using nsa::cuda::test::run_backward_case;

TEST_CASE("backward: lengths x dtypes", "[gpu][backward]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::f16, Dtype::bf16);
  const auto t = GENERATE(int64_t{1}, 17, 63, 64, 65, 113, 1023, 1025, 4096);
  NSA_REQUIRE_BACKWARD(run_backward_case(base_config(t, dt), 2000 + static_cast<uint64_t>(t)));
}

TEST_CASE("backward: head dims", "[gpu][backward]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::bf16);
  const auto dims =
      GENERATE(std::pair<int64_t, int64_t>{64, 64}, std::pair<int64_t, int64_t>{128, 64},
               std::pair<int64_t, int64_t>{128, 128}, std::pair<int64_t, int64_t>{192, 128},
               std::pair<int64_t, int64_t>{256, 64}, std::pair<int64_t, int64_t>{256, 128});
  Config c = base_config(300, dt, 1, 4);
  c.d_k = dims.first;
  c.d_v = dims.second;
  NSA_REQUIRE_BACKWARD(run_backward_case(c, 17));
}

TEST_CASE("backward: group sizes", "[gpu][backward]") {
  const auto g = GENERATE(int64_t{1}, 3, 8, 16, 64);
  const auto dt = GENERATE(Dtype::bf16, Dtype::f16);
  Config c = base_config(300, dt, g >= 16 ? 1 : 2, g);
  c.top_n = 5;
  NSA_REQUIRE_BACKWARD(run_backward_case(c, 60 + static_cast<uint64_t>(g)));
}

TEST_CASE("backward: value regimes", "[gpu][backward]") {
  const auto regime = GENERATE(Regime::peaked, Regime::ties, Regime::extreme);
  const auto dt = GENERATE(Dtype::f32, Dtype::bf16);
  NSA_REQUIRE_BACKWARD(run_backward_case(base_config(250, dt), 77, regime));
}

TEST_CASE("backward: varlen with an empty sequence, query suffixes", "[gpu][backward]") {
  const auto dt = GENERATE(Dtype::f16, Dtype::bf16);
  Config c = base_config(0, dt);
  c.layout = Layout::varlen;
  c.cu_seqlens_k = {0, 130, 130, 131, 400};
  c.cu_seqlens_q = {0, 60, 60, 61, 330};
  NSA_REQUIRE_BACKWARD(run_backward_case(c, 81));
  Config p = base_config(200, dt);
  p.batch = 2;
  p.t_q = 77;
  NSA_REQUIRE_BACKWARD(run_backward_case(p, 82));
}

TEST_CASE("backward: knobs", "[gpu][backward]") {
  Config c = base_config(333, Dtype::bf16);
  c.profile = "custom";
  SECTION("strict compressed visibility") { c.cmp_visibility = CmpVisibility::strict; }
  SECTION("whole selected blocks") { c.slc_causal = SlcCausal::none; }
  SECTION("w + 1 window keys") { c.window_keys = WindowKeys::w_plus_one; }
  SECTION("window 1") { c.window = 1; }
  SECTION("window 512") { c.window = 512; }
  SECTION("shared K/V") { c.shared_kv = true; }
  SECTION("compression off") { c.enable_cmp = false; }
  SECTION("selection off") { c.enable_slc = false; }
  SECTION("window only") { c.enable_cmp = c.enable_slc = false; }
  SECTION("top-n beyond the block count") { c.top_n = 9; }
  SECTION("blocks l = d = l' = 16") { c.cmp_block = c.cmp_stride = c.slc_block = 16; }
  NSA_REQUIRE_BACKWARD(run_backward_case(c, 90));
}

TEST_CASE("backward: phi linear and mlp", "[gpu][backward]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::f16, Dtype::bf16);
  Config c = base_config(300, dt);
  SECTION("linear") { c.phi = Phi::linear; }
  SECTION("mlp relu") {
    c.phi = Phi::mlp;
    c.phi_hidden = 48;
  }
  SECTION("mlp silu, shared K/V") {
    c.phi = Phi::mlp;
    c.phi_hidden = 32;
    c.phi_act = Activation::silu;
    c.shared_kv = true;
    c.profile = "custom";
  }
  NSA_REQUIRE_BACKWARD(run_backward_case(c, 171));
}

TEST_CASE("backward: given index lists under each policy", "[gpu][backward]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::bf16);
  Config c = base_config(700, dt, 2, 3);
  c.given_indices = true;
  c.top_n = 9;
  SECTION("strict, valid lists") { NSA_REQUIRE_BACKWARD(run_backward_case(c, 101)); }
  SECTION("skip_invalid and multiset, adversarial lists") {
    c.profile = "custom";
    for (const auto policy : {IndexPolicy::skip_invalid, IndexPolicy::multiset}) {
      for (const auto causal : {SlcCausal::token, SlcCausal::none}) {
        c.index_policy = policy;
        c.slc_causal = causal;
        const auto vc = validate(c);
        Inputs in = generate_inputs(vc, 111);
        in.indices = generate_indices(vc, 112, true);
        NSA_REQUIRE_BACKWARD(run_backward_case(c, 111, Regime::typical, &in));
      }
    }
  }
}

TEST_CASE("backward: strict lists unvalidated are read safely, as skip_invalid",
          "[gpu][backward]") {
  Config c = base_config(500, Dtype::f32);
  c.given_indices = true;
  c.top_n = 8;
  const auto vc = validate(c);
  Inputs in = generate_inputs(vc, 131);
  in.indices = generate_indices(vc, 132, true);  // duplicates, -1, out of range, future
  const auto d_o = generate_grad_output(vc, 131);
  REQUIRE_THROWS_WITH(nsa::cuda::backward(vc, in, d_o), Catch::Contains("index list (strict)"));
  nsa::cuda::BackwardOptions opt;
  opt.validate_indices = false;
  const auto g = nsa::cuda::backward(vc, in, d_o, opt);
  Config s = c;
  s.profile = "custom";
  s.index_policy = IndexPolicy::skip_invalid;
  const auto gs = nsa::cuda::backward(validate(s), in, d_o);
  for (const auto& name : grad_tensor_names(vc)) {
    INFO(name);
    REQUIRE(grad_tensor(vc, g, name) == grad_tensor(vc, gs, name));
  }
  NSA_REQUIRE_BACKWARD(run_backward_case(s, 131, Regime::typical, &in));
}

TEST_CASE("backward: two runs are bitwise identical", "[gpu][backward]") {
  Config c = base_config(1023, Dtype::bf16, 2, 4);
  c.top_n = 6;
  const auto vc = validate(c);
  const Inputs in = generate_inputs(vc, 141);
  const auto d_o = generate_grad_output(vc, 141);
  const auto a = nsa::cuda::backward(vc, in, d_o), b = nsa::cuda::backward(vc, in, d_o);
  for (const auto& name : grad_tensor_names(vc)) {
    const auto& x = grad_tensor(vc, a, name);
    const auto& y = grad_tensor(vc, b, name);
    INFO(name);
    REQUIRE(x.size() == y.size());
    REQUIRE(std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0);
  }
}

TEST_CASE("backward: bad inputs and unsupported configs give clear errors", "[gpu][backward]") {
  Config c = base_config(100, Dtype::bf16);
  const auto vc = validate(c);
  const Inputs in = generate_inputs(vc, 151);
  auto d_o = generate_grad_output(vc, 151);
  auto short_do = d_o;
  short_do.pop_back();
  REQUIRE_THROWS_WITH(nsa::cuda::backward(vc, in, short_do),
                      Catch::Contains("input 'do' has") && Catch::Contains("expected"));
  d_o[7] = std::nan("");
  REQUIRE_THROWS_WITH(nsa::cuda::backward(vc, in, d_o),
                      Catch::Contains("input 'do' element 7") && Catch::Contains("not finite"));
  Inputs bad = in;
  bad.q.pop_back();
  REQUIRE_THROWS_WITH(nsa::cuda::backward(vc, bad, generate_grad_output(vc, 151)),
                      Catch::Contains("input 'q' has"));
  Config f64 = c;
  f64.dtype = Dtype::f64;
  REQUIRE_THAT(nsa::cuda::backward_unsupported(validate(f64)), Catch::Contains("fp64"));
}

// Small cases for compute-sanitizer (ci/gpu-sanitize.sh runs "[sanitize]"): every backward
// kernel (fp64 and tensor-core paths, the key side's split reduction), computed and adversarial
// multiset lists, an empty sequence.
TEST_CASE("backward: sanitizer subset", "[gpu][backward][sanitize]") {
  const auto dt = GENERATE(Dtype::f32, Dtype::bf16);
  Config c = base_config(150, dt);
  NSA_REQUIRE_BACKWARD(run_backward_case(c, 161));
  if (dt == Dtype::bf16) {  // tensor-core path with its key side split in two (75 chunks)
    Config s = base_config(300, dt, 1, 16);
    NSA_REQUIRE_BACKWARD(run_backward_case(s, 164));
  }
  Config v = base_config(0, dt);
  v.layout = Layout::varlen;
  v.cu_seqlens_k = {0, 90, 90, 150};
  v.cu_seqlens_q = {0, 40, 40, 100};
  v.given_indices = true;
  v.index_policy = IndexPolicy::multiset;
  v.profile = "custom";
  v.shared_kv = true;
  const auto vc = validate(v);
  Inputs in = generate_inputs(vc, 162);
  in.indices = generate_indices(vc, 163, true);
  NSA_REQUIRE_BACKWARD(run_backward_case(v, 162, Regime::typical, &in));
}
