// The tolerance rule from both sides on the GPU fuzzer's own cases, redrawn on the CPU
// (case_gen with the GPU mode's limits): CPU models of correct fp32-accumulating kernels that
// sum in other orders than the baseline pass it, wrong kernels fail it (docs/tolerance.md,
// "Summation orders"; docs/fuzzing.md, finding 7).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>

#include "case_gen.hpp"
#include "nsa/ref/compare.hpp"

using namespace nsa::ref;

namespace {

struct Drawn {
  nsa::fuzz::FuzzCase fc;
  Inputs in;
  RowSelection sel;
  Outputs truth;
  std::vector<Outputs> bases;
};

Drawn draw(uint64_t seed, int64_t index, int64_t max_rows) {
  Drawn d;
  d.fc = nsa::fuzz::draw_case(seed, index, nsa::fuzz::gpu_limits(), nullptr);
  d.in = nsa::fuzz::case_inputs(d.fc);
  d.sel.rows = nsa::fuzz::check_rows(d.fc, max_rows);
  d.truth = forward(d.fc.vc, d.in, Precision::f64, d.sel);
  d.bases = forward_baselines(d.fc.vc, d.in, d.sel);
  return d;
}

// Correct kernels: every order of the set, and orders outside it (pseudo-random term orders).
std::vector<KernelModel> correct_models() {
  std::vector<KernelModel> ms;
  for (SumOrder o : kBaselineOrders) ms.push_back({o});
  for (uint64_t p = 1; p <= 3; ++p) {
    ms.push_back({SumOrder::sequential, Dtype::f32, p});
    ms.push_back({SumOrder::tensor_core, Dtype::f32, p});
    ms.push_back({SumOrder::tensor_core_split, Dtype::f32, p});
  }
  return ms;
}

std::string name_of(const KernelModel& m) {
  std::string s(to_string(m.order));
  s.append(1, ':').append(to_string(m.accumulator));
  if (m.permutation) s.append(1, '@').append(std::to_string(m.permutation));
  return s;
}

// The worst max_err / bound of a verdict's value tensors.
double worst_ratio(const Verdict& v) {
  double r = 0;
  for (const auto& t : v.tensors)
    if (t.checked && t.name != "indices" && t.bound > 0) r = std::max(r, t.max_err / t.bound);
  return r;
}

// A wrong kernel: reductions accumulated in a 16-bit dtype (the input dtype for fp16/bf16).
KernelModel narrow_accumulator(const ValidConfig& vc) {
  return {SumOrder::sequential, vc.cfg.dtype == Dtype::f16 ? Dtype::f16 : Dtype::bf16};
}

}  // namespace

TEST_CASE("kernel models: the open GPU findings pass as their kernel's model") {
  struct Finding {
    uint64_t seed;
    int64_t index;
    const char* tensor;
  };
  for (const Finding f : {Finding{20261129, 4511, "lse_win"}, Finding{20261205, 1222, "lse_win"},
                          Finding{20261207, 394, "lse_slc"}}) {
    const Drawn d = draw(f.seed, f.index, 48);
    INFO(nsa::fuzz::case_summary(d.fc));
    // The kernel's q·k: one MMA per 16-wide slice of d_k, slices added in fp32.
    const KernelModel kernel{SumOrder::tensor_core_split};
    const Outputs cand = forward_model(d.fc.vc, d.in, kernel, d.sel);
    const Verdict v = compare(d.fc.vc, d.truth, d.bases, cand);
    INFO(v.table());
    CHECK(v.pass());
    const TensorVerdict* t = v.find(f.tensor);
    REQUIRE(t);
    std::printf("finding seed %llu case %lld %s: model error %.4g, new bound %.4g (e_b %.4g)\n",
                static_cast<unsigned long long>(f.seed), static_cast<long long>(f.index), f.tensor,
                t->max_err, t->bound, t->baseline_err);
    if (f.index == 4511) {
      // The model reproduces the H200 kernel's error (6.073e-6, docs/fuzzing.md) and, judged by
      // the old rule (one baseline, the vectorized order of Eigen's SSE dot product, which
      // lanes8 reproduces: 3.7 ulp), fails as the kernel did (bound 5.469e-6).
      CHECK(std::abs(t->max_err - 6.073e-6) < 0.01e-6);
      const Outputs old_base = forward_model(d.fc.vc, d.in, {SumOrder::lanes8}, d.sel);
      const Verdict old = compare(d.fc.vc, d.truth, old_base, cand);
      CHECK(std::abs(old.find(f.tensor)->bound - 5.469e-6) < 0.001e-6);
      CHECK_FALSE(old.pass());
    }
    for (const KernelModel& m : correct_models()) {
      INFO(name_of(m));
      CHECK(compare(d.fc.vc, d.truth, d.bases, forward_model(d.fc.vc, d.in, m, d.sel)).pass());
    }
    // A kernel accumulating in 16 bits is wrong and fails.
    const KernelModel bad = narrow_accumulator(d.fc.vc);
    INFO(name_of(bad));
    CHECK_FALSE(
        compare(d.fc.vc, d.truth, d.bases, forward_model(d.fc.vc, d.in, bad, d.sel)).pass());
  }
}

TEST_CASE("kernel models: GPU-size fuzz cases, correct models pass and wrong kernels fail") {
  // The first cases of the run that found finding 6 (53 failures in 4139 under the old rule),
  // those small enough for a unit test, 12 rows each.
  const uint64_t seed = 20261129;
  int64_t tried = 0, judged = 0, with_keys = 0, scale_mutants = 0;
  double worst_correct = 0;
  for (int64_t index = 0; judged < 24 && index < 400; ++index) {
    const auto fc = nsa::fuzz::draw_case(seed, index, nsa::fuzz::gpu_limits(), nullptr);
    ++tried;
    const auto& c = fc.vc.cfg;
    if (fc.vc.max_t_k * c.h_q * std::max(c.d_k, c.d_v) > (int64_t{1} << 20) || c.phi != Phi::mean)
      continue;
    ++judged;
    const Drawn d = draw(seed, index, 12);
    INFO(nsa::fuzz::case_summary(d.fc));
    for (const KernelModel& m : correct_models()) {
      INFO(name_of(m));
      const Verdict v = compare(d.fc.vc, d.truth, d.bases, forward_model(d.fc.vc, d.in, m, d.sel));
      INFO(v.table());
      CHECK(v.pass());
      worst_correct = std::max(worst_correct, worst_ratio(v));
    }
    // Wrong kernels, judged wherever the case computes something (some key set not empty).
    bool computes = false;
    for (const auto& lse : d.truth.lse)
      for (double x : lse) computes = computes || std::isfinite(x);
    if (!computes) continue;
    ++with_keys;
    // A 16-bit accumulator.
    const KernelModel bad = narrow_accumulator(d.fc.vc);
    const Verdict vb = compare(d.fc.vc, d.truth, d.bases, forward_model(d.fc.vc, d.in, bad, d.sel));
    INFO(name_of(bad) << "\n" << vb.table());
    CHECK_FALSE(vb.pass());
    // The softmax scale rounded to the input dtype (where it is not representable there): a
    // relative error of up to 2^-9 (bf16) in every score. Outside regime extreme, whose
    // heavy-tailed 16-bit inputs make the baseline error itself of that order.
    if (c.dtype != Dtype::f32 && d.fc.regime != Regime::extreme &&
        round_to(d.fc.vc.scale, c.dtype) != d.fc.vc.scale) {
      Config sc = c;
      sc.profile = "custom";  // the peers' profiles accept only the default scale
      sc.scale = round_to(d.fc.vc.scale, c.dtype);
      const Outputs cand = forward_model(validate(sc), d.in, {SumOrder::sequential}, d.sel);
      const Verdict vs = compare(d.fc.vc, d.truth, d.bases, cand);
      INFO("scale in the input dtype\n" << vs.table());
      CHECK_FALSE(vs.pass());
      ++scale_mutants;
    }
  }
  std::printf(
      "GPU-size cases: %lld drawn, %lld judged (%lld with keys, %lld with a scale mutant); worst "
      "max_err/bound of a correct model %.3f\n",
      static_cast<long long>(tried), static_cast<long long>(judged),
      static_cast<long long>(with_keys), static_cast<long long>(scale_mutants), worst_correct);
  CHECK(judged == 24);
  CHECK(with_keys >= 20);
  CHECK(scale_mutants >= 4);
}
