// nsa_ref_bench: wall time and useful GFLOP/s of the reference forward on the NSA paper's shape
// (H_q=64, H_kv=4, d_k=192, d_v=128, l=32, d=16, l'=64, n=16, w=512, fp32 inputs), all rows in
// double, and a sampled row subset in float128; with --backward, the double backward too and its
// ratio to the forward.
//
//   nsa_ref_bench [--t T_k] [--rows N] [--threads K] [--seed S] [--phi mean|linear|mlp]
//                 [--backward]
//
// Useful FLOPs (docs/numerics.md): forward 2 (d_k + d_v) per (query head, key) a branch attends
// to, backward 2 (3 d_k + 2 d_v) (recomputed scores, dP, dq, dk, dv), plus phi: the mean's adds,
// or the GEMMs of linear/mlp (forward once, backward twice: the inputs' and the weights'
// gradients).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <stdexcept>
#include <string>

#include "nsa/ref/backward.hpp"
#include "nsa/ref/forward.hpp"
#include "nsa/ref/generate.hpp"

using namespace nsa::ref;

namespace {

struct Args {
  int64_t t = 8192;
  int64_t rows = 8;
  int threads = 0;
  uint64_t seed = 1;
  Phi phi = Phi::mean;
  bool backward = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument("missing value after " + k);
      return argv[++i];
    };
    if (k == "--t") {
      a.t = std::stoll(value());
    } else if (k == "--rows") {
      a.rows = std::stoll(value());
    } else if (k == "--threads") {
      a.threads = std::stoi(value());
    } else if (k == "--seed") {
      a.seed = std::stoull(value());
    } else if (k == "--phi") {
      const std::string v = value();
      if (!parse_enum(v, a.phi))
        throw std::invalid_argument("--phi = '" + v + "': expected " + allowed_values<Phi>());
    } else if (k == "--backward") {
      a.backward = true;
    } else {
      throw std::invalid_argument("unknown argument " + k +
                                  " (usage: nsa_ref_bench [--t T_k] [--rows N] [--threads K] "
                                  "[--seed S] [--phi mean|linear|mlp] [--backward])");
    }
  }
  if (a.t < 1) throw std::invalid_argument("--t must be >= 1");
  if (a.rows < 1) throw std::invalid_argument("--rows must be >= 1");
  return a;
}

// Keys of block j that query t attends to under the canonical token mask.
int64_t slc_keys(const Config& c, int64_t t, const int32_t* idx) {
  int64_t n = 0;
  for (int64_t s = 0; s < c.top_n; ++s) {
    if (idx[s] < 0) continue;
    const int64_t begin = idx[s] * c.slc_block;
    n += std::min(begin + c.slc_block, t + 1) - begin;
  }
  return n;
}

// FLOPs of phi over every block of K and V: the mean's adds, or the GEMMs of linear/mlp.
double phi_flops(const ValidConfig& vc) {
  const auto& c = vc.cfg;
  const double blocks = static_cast<double>(vc.num_cmp_blocks(vc.max_t_k) * c.h_kv);
  const double l = static_cast<double>(c.cmp_block), m = static_cast<double>(c.phi_hidden);
  double per_block = 0;
  for (const double dim : {static_cast<double>(c.d_k), static_cast<double>(c.d_v)}) {
    if (c.phi == Phi::mean) per_block += l * dim;
    if (c.phi == Phi::linear) per_block += 2 * l * dim * dim;
    if (c.phi == Phi::mlp) per_block += 2 * l * dim * m + 2 * m * dim;
  }
  return blocks * per_block;
}

// Useful FLOPs of the rows `out` holds (all heads), from the key counts of each branch, with
// `per_key` FLOPs per (query head, key) pair.
double useful_flops(const ValidConfig& vc, const Outputs& out, double per_key) {
  const auto& c = vc.cfg;
  const int64_t groups = static_cast<int64_t>(out.groups.size());
  double keys = 0;  // (query head, key) pairs over all branches
  for (std::size_t ri = 0; ri < out.rows.size(); ++ri) {
    const int64_t t = vc.seqs[0].pos(out.rows[ri]);
    const int64_t visible = vc.num_cmp_blocks(t + 1);
    const int64_t window = std::min<int64_t>(c.window, t + 1);
    keys += static_cast<double>(c.h_q) * static_cast<double>(visible + window);
    for (int64_t g = 0; g < groups; ++g)
      keys += static_cast<double>(vc.group) *
              static_cast<double>(slc_keys(c, t, out.indices.data() + (ri * groups + g) * c.top_n));
  }
  return per_key * keys;
}

// Wall seconds of f(); the process CPU seconds it used go to *cpu (on a loaded machine the wall
// time says little, the CPU time still says how much work it was).
template <class F>
double seconds(F&& f, double* cpu = nullptr) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  f();
  if (cpu) *cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    Config c;  // canonical profile, mean phi
    c.t_k = a.t;
    c.h_q = 64;
    c.h_kv = 4;
    c.d_k = 192;
    c.d_v = 128;
    c.cmp_block = 32;
    c.cmp_stride = 16;
    c.slc_block = 64;
    c.top_n = 16;
    c.window = 512;
    c.dtype = Dtype::f32;
    c.phi = a.phi;
    if (a.phi == Phi::mlp) c.phi_hidden = 2 * c.cmp_block;  // a hidden width of 2 l
    const ValidConfig vc = validate(c);
    std::printf("config: %s\n", describe(vc.cfg).c_str());
    Inputs in;
    const double t_gen = seconds([&] { in = generate_inputs(vc, a.seed); });
    std::printf("inputs: generated in %.2f s (seed %llu)\n", t_gen,
                static_cast<unsigned long long>(a.seed));
    std::fflush(stdout);

    RowSelection all;
    all.keep_scores = false;
    all.threads = a.threads;
    Outputs out;
    double cpu64 = 0, cpu128 = 0;
    const double t64 = seconds([&] { out = forward(vc, in, Precision::f64, all); }, &cpu64);
    const double fwd_per_key = 2.0 * static_cast<double>(c.d_k + c.d_v);
    // Compression runs once per sequence, whatever rows are asked for: counted once.
    const double f64_flops = useful_flops(vc, out, fwd_per_key) + phi_flops(vc);
    std::printf(
        "f64:  T_k=%lld rows=%lld  wall %.2f s (cpu %.2f s)  %.3f GFLOP useful  %.2f GFLOP/s "
        "(%.2f per cpu-second)\n",
        static_cast<long long>(a.t), static_cast<long long>(out.rows.size()), t64, cpu64,
        f64_flops * 1e-9, f64_flops * 1e-9 / t64, f64_flops * 1e-9 / cpu64);
    std::fflush(stdout);

    RowSelection sampled = all;
    const int64_t n = std::min(a.rows, vc.total_q);
    for (int64_t i = 0; i < n; ++i) sampled.rows.push_back((vc.total_q - 1) - i * vc.total_q / n);
    Outputs q;
    const double t128 = seconds([&] { q = forward(vc, in, Precision::f128, sampled); }, &cpu128);
    const double f128_flops = useful_flops(vc, q, fwd_per_key) + phi_flops(vc);
    std::printf(
        "f128: T_k=%lld rows=%lld (sampled)  wall %.2f s (cpu %.2f s)  %.3f GFLOP useful  "
        "%.4f GFLOP/s (%.4f per cpu-second)\n",
        static_cast<long long>(a.t), static_cast<long long>(n), t128, cpu128, f128_flops * 1e-9,
        f128_flops * 1e-9 / t128, f128_flops * 1e-9 / cpu128);
    // The sampled rows of the double run against float128 truth, as a sanity line.
    double worst = 0;
    for (std::size_t ri = 0; ri < q.rows.size(); ++ri)
      for (int64_t e = 0; e < c.h_q * c.d_v; ++e)
        worst = std::max(
            worst, std::abs(q.o[ri * c.h_q * c.d_v + e] - out.o[q.rows[ri] * c.h_q * c.d_v + e]));
    std::printf("max |o_f64 - o_f128| on the sampled rows: %.3g\n", worst);
    if (!a.backward) return 0;

    std::fflush(stdout);
    const std::vector<double> d_o = generate_grad_output(vc, a.seed);
    GradSelection gsel;
    gsel.threads = a.threads;
    double cpu_b = 0;
    Gradients g;
    const double tb = seconds([&] { g = backward(vc, in, d_o, Precision::f64, gsel); }, &cpu_b);
    const double bwd_flops =
        useful_flops(vc, out, 2.0 * static_cast<double>(3 * c.d_k + 2 * c.d_v)) + 2 * phi_flops(vc);
    std::printf(
        "f64 backward: T_k=%lld rows=%lld keys=%lld  wall %.2f s (cpu %.2f s)  %.3f GFLOP useful  "
        "%.2f GFLOP/s (%.2f per cpu-second)\n",
        static_cast<long long>(a.t), static_cast<long long>(g.rows.size()),
        static_cast<long long>(g.keys.size()), tb, cpu_b, bwd_flops * 1e-9, bwd_flops * 1e-9 / tb,
        bwd_flops * 1e-9 / cpu_b);
    std::printf("backward / forward: %.2fx wall, %.2fx cpu (target <= 3x)\n", tb / t64,
                cpu_b / cpu64);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nsa_ref_bench: %s\n", e.what());
    return 2;
  }
}
