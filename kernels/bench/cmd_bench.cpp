// `nsa bench`: per-branch and total device time (CUDA events, median over repeated runs after
// warm-up) and useful TFLOP/s of the CUDA forward (docs/benchmarks.md defines the FLOP count).
// Figures, not tests: nothing here asserts on time.
#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_cli.hpp"
#include "nsa/cuda/forward.hpp"
#include "nsa/ref/config.hpp"

namespace {

using nsa::ref::Config;
using nsa::ref::Dtype;

struct BenchCase {
  int64_t t, h_q, h_kv, d_k, d_v;
};

// Useful FLOPs (docs/benchmarks.md): 2 (d_k + d_v) per (query, head, attended key) summed over
// the three branches with their exact key counts; compression and score recomputation excluded.
struct Flops {
  double cmp = 0, slc = 0, win = 0;
  double total() const { return cmp + slc + win; }
};

Flops useful_flops(const nsa::ref::ValidConfig& vc) {
  const auto& c = vc.cfg;
  Flops f;
  const double per_key = 2.0 * static_cast<double>(c.d_k + c.d_v) * static_cast<double>(c.h_q);
  for (const auto& s : vc.seqs)
    for (int64_t i = 0; i < s.t_q; ++i) {
      const int64_t t = s.pos(i);
      f.cmp += per_key * static_cast<double>(vc.num_cmp_blocks(t + 1));
      const int64_t nb = t / c.slc_block + 1, sel = std::min(c.top_n, nb);
      // The current block is always selected (forced local); it holds t % l' + 1 causal keys.
      f.slc +=
          per_key * static_cast<double>(sel * c.slc_block - (c.slc_block - 1 - t % c.slc_block));
      f.win += per_key * static_cast<double>(std::min(c.window, t + 1));
    }
  return f;
}

double median(std::vector<float> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoll(item));
  return out;
}

void usage() {
  std::fprintf(stderr,
               "usage: nsa bench [--t 8192,16384,...] [--dims 128x128,192x128] [--hq 64]\n"
               "                 [--hkv 4] [--groups 1,4] [--reps N] [--warmup N] [--quick]\n"
               "Default: T in {8192,16384,32768,65536}, H_q=64, H_kv=4, bf16, (d_k,d_v) in\n"
               "{(128,128),(192,128)}, l=32 d=16 l'=64 n=16 w=512, plus G in {1,4} at T=65536.\n");
}

int run_bench(const std::vector<std::string>& args) {
  std::vector<int64_t> ts{8192, 16384, 32768, 65536}, groups{1, 4};
  std::vector<std::pair<int64_t, int64_t>> dims{{128, 128}, {192, 128}};
  int64_t h_q = 64, h_kv = 4;
  int reps = 10, warmup = 2;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= args.size()) throw std::invalid_argument("missing value after " + a);
      return args[++i];
    };
    try {
      if (a == "--t")
        ts = parse_list(next());
      else if (a == "--groups")
        groups = parse_list(next());
      else if (a == "--hq")
        h_q = std::stoll(next());
      else if (a == "--hkv")
        h_kv = std::stoll(next());
      else if (a == "--reps")
        reps = std::stoi(next());
      else if (a == "--warmup")
        warmup = std::stoi(next());
      else if (a == "--quick") {
        ts = {8192, 16384};
        groups = {};
        reps = 3;
      } else if (a == "--dims") {
        dims.clear();
        std::stringstream ss(next());
        std::string item;
        while (std::getline(ss, item, ',')) {
          const auto x = item.find('x');
          if (x == std::string::npos)
            throw std::invalid_argument("--dims wants DKxDV, got " + item);
          dims.push_back({std::stoll(item.substr(0, x)), std::stoll(item.substr(x + 1))});
        }
      } else if (a == "--help" || a == "-h") {
        usage();
        return 0;
      } else
        throw std::invalid_argument("unknown argument " + a);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "nsa bench: %s\n", e.what());
      usage();
      return 2;
    }
  }
  if (!nsa::cuda::device_available()) {
    std::printf("nsa bench: no CUDA device: skipping\n");
    return 77;
  }
  std::vector<BenchCase> cases;
  for (auto [dk, dv] : dims)
    for (int64_t t : ts) cases.push_back({t, h_q, h_kv, dk, dv});
  for (int64_t g : groups) cases.push_back({65536, h_q, h_q / g, 128, 128});

  std::printf("device: %s\n", nsa::cuda::device_name().c_str());
  std::printf("%-6s %3s %4s %4s %8s | %8s %8s %8s %8s %8s %8s %8s | %9s %8s\n", "T", "G", "d_k",
              "d_v", "total_ms", "compress", "cmp", "scores", "topn", "slc", "win", "combine",
              "TFLOP/s", "useful_TF");
  for (const auto& bc : cases) {
    Config c;
    c.t_k = bc.t;
    c.h_q = bc.h_q;
    c.h_kv = bc.h_kv;
    c.d_k = bc.d_k;
    c.d_v = bc.d_v;
    c.cmp_block = 32;
    c.cmp_stride = 16;
    c.slc_block = 64;
    c.top_n = 16;
    c.window = 512;
    c.dtype = Dtype::bf16;
    c.shared_kv = true;
    const auto vc = nsa::ref::validate(c);
    const auto flops = useful_flops(vc);
    const auto eb = nsa::cuda::dtype_bytes(c.dtype);
    const int64_t nq = vc.total_q * c.h_q, nk = vc.total_k * c.h_kv;
    std::vector<void*> owned;
    auto alloc = [&](int64_t elems, std::size_t bytes_each) {
      owned.push_back(nsa::cuda::device_alloc(static_cast<std::size_t>(elems) * bytes_each));
      return owned.back();
    };
    nsa::cuda::DeviceInputs in;
    nsa::cuda::DeviceOutputs out;
    try {
      in.q = alloc(nq * c.d_k, eb);
      void* k = alloc(nk * c.d_k, eb);
      void* v = alloc(nk * c.d_v, eb);
      nsa::cuda::fill_uniform(const_cast<void*>(in.q), nq * c.d_k, c.dtype, 1, -1, 1);
      nsa::cuda::fill_uniform(k, nk * c.d_k, c.dtype, 2, -1, 1);
      nsa::cuda::fill_uniform(v, nk * c.d_v, c.dtype, 3, -1, 1);
      for (int b = 0; b < 3; ++b) {
        in.k[b] = k;  // shared K/V: every branch reads the same tensors
        in.v[b] = v;
        in.gate[b] = alloc(nq, eb);
        nsa::cuda::fill_uniform(const_cast<void*>(in.gate[b]), nq, c.dtype, 10 + b, 0, 1);
      }
      out.o = alloc(nq * c.d_v, eb);
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
      std::printf(
          "%-6lld %3lld %4lld %4lld %8.2f | %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f | %9.1f "
          "%8.2f\n",
          static_cast<long long>(bc.t), static_cast<long long>(vc.group),
          static_cast<long long>(bc.d_k), static_cast<long long>(bc.d_v), ms, median(cmpz),
          median(cmp), median(scores), median(topn), median(slc), median(win), median(comb),
          flops.total() / (ms * 1e-3) / 1e12, flops.total() / 1e12);
      std::fflush(stdout);
    } catch (const std::exception& e) {
      std::printf("%-6lld %3lld %4lld %4lld  failed: %s\n", static_cast<long long>(bc.t),
                  static_cast<long long>(vc.group), static_cast<long long>(bc.d_k),
                  static_cast<long long>(bc.d_v), e.what());
    }
    for (void* p : owned) nsa::cuda::device_free(p);
  }
  return 0;
}

}  // namespace

nsa::cli::Command nsa::cli::bench_command() {
  return {"bench", "time the CUDA forward per branch (needs a GPU)", run_bench};
}
