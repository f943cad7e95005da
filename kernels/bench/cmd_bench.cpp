// `nsa bench`: per-branch and total device time (CUDA events, median over repeated runs after
// warm-up) and useful TFLOP/s of the CUDA forward (docs/benchmarks.md defines the FLOP count).
// Figures, not tests: nothing here asserts on time.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "args.hpp"
#include "bench_table.hpp"
#include "cuda_cli.hpp"
#include "nsa/cuda/backward.hpp"
#include "nsa/cuda/forward.hpp"
#include "nsa/ref/config.hpp"
#include "nsa/ref/inputs.hpp"

namespace {

// ctest's skip code, as `nsa fuzz --gpu` returns it: "needs a GPU" is not a failure.
constexpr int kNeedsGpu = 77;

// Useful FLOPs (docs/benchmarks.md): 2 (d_k + d_v) per (query, head, attended key) summed over
// the three branches with their exact key counts; compression and score recomputation excluded.
struct Flops {
  double cmp = 0, slc = 0, win = 0;
  double total() const { return cmp + slc + win; }
};

// The backward's useful FLOPs count the five products of a flash-style backward per (query
// head, attended key): q·k, dO·v, dS·k (dq), dSᵀ·q (dK), Pᵀ·dO (dV), i.e. 2 (3 d_k + 2 d_v).
Flops useful_flops(const nsa::ref::ValidConfig& vc, bool backward = false) {
  const auto& c = vc.cfg;
  Flops f;
  const double dims = backward ? 3.0 * static_cast<double>(c.d_k) + 2.0 * static_cast<double>(c.d_v)
                               : static_cast<double>(c.d_k + c.d_v);
  const double per_key = 2.0 * dims * static_cast<double>(c.h_q);
  for (const auto& s : vc.seqs)
    for (int64_t i = 0; i < s.t_q; ++i) {
      const int64_t t = s.pos(i);
      if (c.enable_cmp) f.cmp += per_key * static_cast<double>(vc.num_cmp_blocks(t + 1));
      const int64_t nb = t / c.slc_block + 1, sel = std::min(c.top_n, nb);
      // The current block is always selected (forced local); it holds t % l' + 1 causal keys.
      if (c.enable_slc)
        f.slc +=
            per_key * static_cast<double>(sel * c.slc_block - (c.slc_block - 1 - t % c.slc_block));
      if (c.enable_win) f.win += per_key * static_cast<double>(std::min(c.window, t + 1));
    }
  return f;
}

// The bytes a forward must move at least: Q, the gates and the output once, and per sequence and
// KV head the keys and values each branch reads: its rows' compressed keys, the selected keys of
// one row (a lower bound on the rows' union) and the union of their windows.
double useful_bytes(const nsa::ref::ValidConfig& vc) {
  const auto& c = vc.cfg;
  const double eb = static_cast<double>(nsa::cuda::dtype_bytes(c.dtype));
  double keys = 0;
  for (const auto& s : vc.seqs) {
    if (s.t_q == 0) continue;
    const int64_t t_last = s.pos(s.t_q - 1), t_first = s.pos(0);
    if (c.enable_cmp || c.enable_slc) keys += static_cast<double>(vc.num_cmp_blocks(t_last + 1));
    if (c.enable_slc)
      keys += static_cast<double>(std::min(c.top_n, t_last / c.slc_block + 1) * c.slc_block);
    if (c.enable_win)
      keys += static_cast<double>(std::min(t_last + 1, c.window + (t_last - t_first)));
  }
  const double q_side = static_cast<double>(vc.total_q * c.h_q) *
                        static_cast<double>(c.d_k + c.d_v + 3);  // Q, o, gates
  return eb * (q_side + keys * static_cast<double>(c.h_kv * (c.d_k + c.d_v)));
}

// The floor beside a time: the useful FLOPs at the dense bf16/fp16 tensor rate or the bytes at
// the memory bandwidth, whichever is longer (H200 datasheet peaks: 989 TFLOP/s, 4.8 TB/s).
double floor_ms(const nsa::ref::ValidConfig& vc, double flops) {
  return 1e3 * std::max(flops / 989e12, useful_bytes(vc) / 4.8e12);
}

double median(std::vector<float> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

void print_dry_run(const nsa::bench::BenchPlan& plan) {
  std::printf("nsa bench --dry-run: %zu configurations, %d warm-up + %d timed runs each\n",
              plan.cases.size(), plan.warmup, plan.reps);
  for (std::size_t i = 0; i < plan.cases.size(); ++i) {
    const auto& vc = plan.cases[i].vc;
    std::printf("%3zu  %-36s | device %.3f GiB, useful %.4g GFLOP\n     %s\n", i,
                plan.cases[i].label.c_str(),
                nsa::bench::device_bytes(vc) / (1024.0 * 1024.0 * 1024.0),
                useful_flops(vc, plan.backward).total() / 1e9, nsa::ref::describe(vc.cfg).c_str());
  }
}

// Times one case; returns false (and prints why) when it could not run.
bool run_case(const nsa::bench::BenchCase& bench_case, int warmup, int reps, bool graph) {
  const auto& vc = bench_case.vc;
  const auto& c = vc.cfg;
  const int64_t t_q = vc.seqs.empty() ? 0 : vc.seqs[0].t_q,
                t_k = vc.seqs.empty() ? 0 : vc.seqs[0].t_k;
  std::printf("%4lld %5lld %-7lld %3lld %4lld %4lld ", static_cast<long long>(c.batch),
              static_cast<long long>(t_q), static_cast<long long>(t_k),
              static_cast<long long>(vc.group), static_cast<long long>(c.d_k),
              static_cast<long long>(c.d_v));
  if (const auto why = nsa::cuda::unsupported(vc); !why.empty()) {
    std::printf(" unsupported: %s\n", why.c_str());
    return false;
  }
  const auto flops = useful_flops(vc);
  const auto eb = nsa::cuda::dtype_bytes(c.dtype);
  const auto shapes = nsa::ref::input_shapes(vc);
  std::vector<void*> owned;
  auto alloc = [&](int64_t elems, std::size_t bytes_each) -> void* {
    if (elems == 0) return nullptr;
    owned.push_back(nsa::cuda::device_alloc(static_cast<std::size_t>(elems) * bytes_each));
    return owned.back();
  };
  uint64_t seed = 1;
  auto filled = [&](int64_t elems, float lo, float hi) -> void* {
    void* p = alloc(elems, eb);
    if (p) nsa::cuda::fill_uniform(p, elems, c.dtype, seed++, lo, hi);
    return p;
  };
  bool ok = true;
  try {
    nsa::cuda::DeviceInputs in;
    nsa::cuda::DeviceOutputs out;
    in.q = filled(shapes.q, -1, 1);
    for (int b = 0; b < 3; ++b) {
      if (c.shared_kv && b > 0) {
        in.k[b] = in.k[0];  // shared K/V: every branch reads the same tensors
        in.v[b] = in.v[0];
      } else {
        in.k[b] = filled(shapes.k, -1, 1);
        in.v[b] = filled(shapes.v, -1, 1);
      }
      in.gate[b] = filled(shapes.gate, 0, 1);
    }
    // phi parameters (linear / mlp): small uniform weights keep the compressed keys O(1).
    const float wk =
        c.phi == nsa::ref::Phi::mean ? 0 : 1.0f / static_cast<float>(c.cmp_block * c.d_k);
    in.phi_k_pos = filled(shapes.phi_pos_k, -1, 1);
    in.phi_k_w1 = filled(shapes.phi_w1_k, -wk, wk);
    in.phi_k_b1 = filled(shapes.phi_b1, -1, 1);
    const float w2 = 1.0f / static_cast<float>(std::max<int64_t>(1, c.phi_hidden));
    in.phi_k_w2 = filled(shapes.phi_w2_k, -w2, w2);
    in.phi_k_b2 = filled(shapes.phi_b2_k, -1, 1);
    in.phi_v_pos = filled(shapes.phi_pos_v, -1, 1);
    in.phi_v_w1 = filled(shapes.phi_w1_v, -wk, wk);
    in.phi_v_b1 = filled(shapes.phi_b1, -1, 1);
    in.phi_v_w2 = filled(shapes.phi_w2_v, -w2, w2);
    in.phi_v_b2 = filled(shapes.phi_b2_v, -1, 1);
    in.k_tilde = filled(shapes.k_tilde, -1, 1);  // cmp_given: the compressed cache
    in.v_tilde = filled(shapes.v_tilde, -1, 1);
    out.o = alloc(vc.total_q * c.h_q * c.d_v, eb);
    nsa::cuda::Plan plan(vc);
    std::vector<float> tot, cmpz, cmp, scores, topn, slc, win, comb;
    nsa::cuda::BranchTimes bt;
    for (int i = 0; i < warmup; ++i) plan.run(in, out, &bt);
    int n_reps = reps;
    if (bt.total > 2000.0f) n_reps = std::min(n_reps, 2);  // slow path: keep the run short
    for (int i = 0; i < n_reps; ++i) {
      plan.run(in, out, &bt);
      tot.push_back(bt.total);
      cmpz.push_back(bt.compress);
      cmp.push_back(bt.cmp_attn);
      scores.push_back(bt.scores);
      topn.push_back(bt.topn);
      slc.push_back(bt.slc);
      win.push_back(bt.win);
      comb.push_back(bt.combine);
    }
    const double ms = median(tot);
    // Replays of a captured graph: the device time without the host's launch overhead.
    const double graph_ms = graph ? median(plan.graph_replay_ms(in, out, reps, 20)) : 0.0;
    std::printf("%8.3f | %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f | %9.1f %8.3f", ms, median(cmpz),
                median(cmp), median(scores), median(topn), median(slc), median(win), median(comb),
                flops.total() / (ms * 1e-3) / 1e12, flops.total() / 1e12);
    if (graph) std::printf(" | %8.4f %8.4f", graph_ms, floor_ms(vc, flops.total()));
    std::printf("\n");
  } catch (const std::exception& e) {
    std::printf(" failed: %s\n", e.what());
    ok = false;
  }
  std::fflush(stdout);
  for (void* p : owned) nsa::cuda::device_free(p);
  return ok;
}

// Host inputs for the backward (its host API takes host tensors): a cheap deterministic pattern
// of multiples of 1/128 in (-1, 1), exact in every dtype (gates in [0, 1); phi's weights scaled
// by a power of two near 1/(l D) so that the compressed keys stay O(1)).
void fill_pattern(std::vector<double>& x, int64_t n, uint64_t salt, double lo, double scale) {
  x.resize(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    uint64_t h = (static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull ^ salt;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    x[static_cast<std::size_t>(i)] = (lo + static_cast<double>(h % 255) / 128.0) * scale;
  }
}

nsa::ref::Inputs backward_bench_inputs(const nsa::ref::ValidConfig& vc) {
  const auto& c = vc.cfg;
  const auto s = nsa::ref::input_shapes(vc);
  nsa::ref::Inputs in;
  fill_pattern(in.q, s.q, 1, -127.0 / 128, 1);
  for (int b = 0; b < 3; ++b) {
    if (c.shared_kv && b > 0) {
      in.k[b] = in.k[0];
      in.v[b] = in.v[0];
    } else {
      fill_pattern(in.k[b], s.k, 10 + b, -127.0 / 128, 1);
      fill_pattern(in.v[b], s.v, 20 + b, -127.0 / 128, 1);
    }
    fill_pattern(in.gate[b], s.gate, 30 + b, 0, 0.5);
  }
  const double w1 = std::exp2(-std::ceil(std::log2(static_cast<double>(c.cmp_block * c.d_k))));
  const double w2 =
      std::exp2(-std::ceil(std::log2(static_cast<double>(std::max<int64_t>(1, c.phi_hidden)))));
  auto phi = [&](nsa::ref::PhiParams& p, int64_t pos, int64_t wa, int64_t wb, int64_t b2,
                 uint64_t salt) {
    fill_pattern(p.pos, pos, salt, -127.0 / 128, 1);
    fill_pattern(p.w1, wa, salt + 1, -127.0 / 128, w1);
    fill_pattern(p.b1, s.phi_b1, salt + 2, -127.0 / 128, 1);
    fill_pattern(p.w2, wb, salt + 3, -127.0 / 128, w2);
    fill_pattern(p.b2, b2, salt + 4, -127.0 / 128, 1);
  };
  phi(in.phi_k, s.phi_pos_k, s.phi_w1_k, s.phi_w2_k, s.phi_b2_k, 40);
  phi(in.phi_v, s.phi_pos_v, s.phi_w1_v, s.phi_w2_v, s.phi_b2_v, 50);
  fill_pattern(in.k_tilde, s.k_tilde, 70, -127.0 / 128, 1);  // cmp_given: the compressed cache
  fill_pattern(in.v_tilde, s.v_tilde, 71, -127.0 / 128, 1);
  return in;
}

// Times one case's backward; returns false (and prints why) when it could not run.
bool run_backward_case(const nsa::bench::BenchCase& bench_case, int warmup, int reps) {
  const auto& vc = bench_case.vc;
  const auto& c = vc.cfg;
  const int64_t t_q = vc.seqs.empty() ? 0 : vc.seqs[0].t_q,
                t_k = vc.seqs.empty() ? 0 : vc.seqs[0].t_k;
  std::printf("%4lld %5lld %-7lld %3lld %4lld %4lld ", static_cast<long long>(c.batch),
              static_cast<long long>(t_q), static_cast<long long>(t_k),
              static_cast<long long>(vc.group), static_cast<long long>(c.d_k),
              static_cast<long long>(c.d_v));
  std::fflush(stdout);
  if (const auto why = nsa::cuda::backward_unsupported(vc); !why.empty()) {
    std::printf(" unsupported: %s\n", why.c_str());
    return false;
  }
  try {
    const nsa::ref::Inputs in = backward_bench_inputs(vc);
    std::vector<double> d_o;
    fill_pattern(d_o, vc.total_q * c.h_q * c.d_v, 60, -127.0 / 128, 1);
    nsa::cuda::BackwardTimes t;
    nsa::cuda::BackwardOptions opt;
    opt.times = &t;
    opt.validate_indices = false;
    std::vector<float> fwd, bwd, query, dq[3], index, keys[3], phi, finish;
    auto once = [&] { (void)nsa::cuda::backward(vc, in, d_o, opt); };
    once();  // the first run: also tells whether this is the slow path
    const bool slow = t.backward > 2000.0f;
    for (int i = 1; i < (slow ? 0 : warmup); ++i) once();
    const int n_reps = slow ? std::min(reps, 1) : reps;
    for (int i = 0; i < n_reps; ++i) {
      if (i > 0 || !slow) once();  // a slow path reports its first run
      fwd.push_back(t.forward);
      bwd.push_back(t.backward);
      query.push_back(t.query);
      index.push_back(t.index);
      for (int b = 0; b < 3; ++b) keys[b].push_back(t.keys[b]);
      for (int b = 0; b < 3; ++b) dq[b].push_back(t.dq[b]);
      phi.push_back(t.phi + t.compress);
      finish.push_back(t.finish);
    }
    const double ms = median(bwd);
    const double flops = useful_flops(vc, true).total();
    std::printf(
        "%9.3f %10.3f | %9.3f %7.3f %7.3f %7.3f %8.3f %9.3f %9.3f %9.3f %8.3f %8.3f | "
        "%10.3f %8.2f %5d\n",
        median(fwd), ms, median(query), median(dq[0]), median(dq[1]), median(dq[2]), median(index),
        median(keys[0]), median(keys[1]), median(keys[2]), median(phi), median(finish),
        median(fwd) + ms, flops / (ms * 1e-3) / 1e12, static_cast<int>(bwd.size()));
  } catch (const std::exception& e) {
    std::printf(" failed: %s\n", e.what());
    return false;
  }
  std::fflush(stdout);
  return true;
}

int run_bench(const std::vector<std::string>& args) {
  nsa::bench::BenchPlan plan;
  try {
    plan = nsa::bench::parse_bench_args(args);
  } catch (const nsa::cli::UsageError& e) {
    std::fprintf(stderr, "nsa bench: %s\n(nsa bench --help lists the flags)\n", e.what());
    return 2;
  }
  if (plan.help) {
    std::printf("%s", nsa::bench::bench_usage().c_str());
    return 0;
  }
  for (const auto& f : plan.ignored)
    std::fprintf(stderr, "nsa bench: note: %s is not read: its branch is disabled\n", f.c_str());
  if (plan.dry_run) {
    print_dry_run(plan);
    return 0;
  }
  if (!nsa::cuda::device_available()) {
    std::fprintf(stderr,
                 "nsa bench: no CUDA device is available: %zu configurations checked, none run "
                 "(exit 77; --dry-run lists them)\n",
                 plan.cases.size());
    return kNeedsGpu;
  }
  if (plan.backward) {
    std::printf(
        "device: %s; nsa::cuda::backward, median of %d runs after %d warm-up runs (a "
        "case over 2 s: its first run only), times in ms\n",
        nsa::cuda::device_name().c_str(), plan.reps, plan.warmup);
    std::printf(
        "%4s %5s %-7s %3s %4s %4s %9s %10s | %9s %7s %7s %7s %8s %9s %9s %9s %8s %8s | "
        "%10s %8s %5s\n",
        "B", "T_q", "T_k", "G", "d_k", "d_v", "forward", "backward", "query", "dq_cmp", "dq_slc",
        "dq_win", "index", "keys_cmp", "keys_slc", "keys_win", "phi", "finish", "fwd+bwd",
        "TFLOP/s", "runs");
    int failed = 0;
    for (const auto& bc : plan.cases)
      failed += run_backward_case(bc, plan.warmup, plan.reps) ? 0 : 1;
    if (failed) std::printf("%d of %zu configurations did not run\n", failed, plan.cases.size());
    return failed ? 1 : 0;
  }
  std::printf("device: %s; median of %d runs after %d warm-up runs, times in ms\n",
              nsa::cuda::device_name().c_str(), plan.reps, plan.warmup);
  if (plan.graph)
    std::printf(
        "graph: ms per replay of the forward captured in a CUDA graph (median of %d samples "
        "of 20 back-to-back replays; total and the stages: runs launched from the host); floor: "
        "max(useful FLOPs / 989 TFLOP/s, bytes / 4.8 TB/s)\n",
        plan.reps);
  std::printf("%4s %5s %-7s %3s %4s %4s %8s | %8s %8s %8s %8s %8s %8s %8s | %9s %8s", "B", "T_q",
              "T_k", "G", "d_k", "d_v", "total", "compress", "cmp", "scores", "topn", "slc", "win",
              "combine", "TFLOP/s", "useful_TF");
  if (plan.graph) std::printf(" | %8s %8s", "graph", "floor");
  std::printf("\n");
  int failed = 0;
  for (const auto& bc : plan.cases)
    failed += run_case(bc, plan.warmup, plan.reps, plan.graph) ? 0 : 1;
  if (failed) std::printf("%d of %zu configurations did not run\n", failed, plan.cases.size());
  return failed ? 1 : 0;
}

}  // namespace

nsa::cli::Command nsa::cli::bench_command() {
  return {"bench", "time the CUDA forward per stage on any configuration (needs a GPU)", run_bench};
}
