// `nsa fuzz`: the configuration fuzzer (docs/fuzzing.md). Draws random valid cases
// (case_gen.hpp), runs the CUDA kernels (--gpu) or the f64 reference (--cpu) on them, and checks
// the result with nsa::ref::check_candidate against truth and the dtype-faithful baseline; with
// --backward also the gradients for a seeded dO (nsa::ref::check_candidate_gradients).
// Every failure prints the case and a one-line repro command; --save-dir keeps its config.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "case_gen.hpp"
#include "fuzz_cli.hpp"
#include "gpu_backend.hpp"
#include "nsa/golden/suites.hpp"
#include "nsa/ref/backward.hpp"
#include "nsa/ref/compare.hpp"
#include "nsa/ref/config_json.hpp"

namespace {

using namespace nsa::ref;
using nsa::fuzz::FuzzCase;

constexpr int kNeedsGpu = 77;  // ctest's skip code: "needs a GPU" is not a failure

struct Args {
  bool gpu = false, cpu = false, verbose = false, backward = false;
  std::optional<uint64_t> seed;
  std::optional<int64_t> iterations;
  std::vector<int64_t> cases;  // --case: exactly these cases
  int64_t first_case = 0;      // --first-case: where an --iterations/--minutes run starts
  std::optional<double> minutes;
  std::string save_dir;
  int64_t max_rows = 48;
  std::optional<Precision> truth;
  std::optional<bool> gpu_draws;     // --draw: the GPU mode's case sizes (default: the mode's)
  std::optional<KernelModel> model;  // --model: the CPU candidate (default: the f64 reference)
  std::string model_text;
};

const char* kUsage =
    "usage: nsa fuzz (--gpu | --cpu) --seed S (--iterations N | --minutes M | --case K[,K...])\n"
    "                [--first-case K] [--save-dir DIR] [--max-rows R] [--truth f64|f128]\n"
    "                [--draw gpu|cpu] [--model ORDER[:ACCUMULATOR][@PERMUTATION]] [--backward]\n"
    "                [--verbose]\n"
    "  --gpu        run the CUDA kernels on each case (needs a CUDA device)\n"
    "  --cpu        run the f64 reference instead (checks the fuzzer itself; no GPU)\n"
    "  --seed S     run seed; case K of seed S is always the same case\n"
    "  --iterations N / --minutes M   how many cases / how long (the first reached stops)\n"
    "  --case K     run only case K of seed S (the repro of a failure); a comma-separated\n"
    "               list runs each listed case\n"
    "  --first-case K   start an --iterations/--minutes run at case K (default 0), so one\n"
    "               seed's stream can be fuzzed in several sittings without repeating cases\n"
    "  --save-dir   write each failing case's config JSON, seeds and verdict (and golden file)\n"
    "  --max-rows   query rows checked per case (edges first; default 48), and with\n"
    "               --backward the key tokens whose gradients are checked\n"
    "  --backward   also the backward: nsa::cuda::backward (--gpu) or the f64 reference (--cpu)\n"
    "               for dO = generate_grad_output(config, input seed), every gradient tensor\n"
    "               on the checked rows and keys against truth and the backward baseline set;\n"
    "               a config the CUDA backward refuses is counted as skipped\n"
    "  --truth      precision of the truth (default: f64 with --gpu, f128 with --cpu)\n"
    "  --draw       case sizes: gpu (up to 2112 tokens, head dims 256, G 64; what --gpu draws,\n"
    "               so --cpu --draw gpu --case K redraws the GPU run's case K) or cpu (small)\n"
    "  --model      with --cpu: the candidate is a kernel model instead of the f64 reference:\n"
    "               the dtype-faithful baseline reduced in ORDER (sequential, pairwise, lanes8,\n"
    "               blocked16, tensor_core, tensor_core_split), optionally with a narrower\n"
    "               accumulator (fp16, bf16: a wrong kernel) and a pseudo-random order of the\n"
    "               terms (@SEED); docs/tolerance.md\n";

int bad_arg(const std::string& msg) {
  std::fprintf(stderr, "nsa fuzz: %s\n%s", msg.c_str(), kUsage);
  return 2;
}

template <class T>
bool parse_number(const std::string& s, T& out) {
  try {
    std::size_t used = 0;
    if constexpr (std::is_floating_point_v<T>) {
      out = static_cast<T>(std::stod(s, &used));
    } else if constexpr (std::is_unsigned_v<T>) {
      if (!s.empty() && s[0] == '-') return false;
      out = static_cast<T>(std::stoull(s, &used));
    } else {
      out = static_cast<T>(std::stoll(s, &used));
    }
    return used == s.size();
  } catch (const std::exception&) {
    return false;
  }
}

// Parses argv; returns an exit code when parsing ends the command (help, bad argument).
std::optional<int> parse(const std::vector<std::string>& argv, Args& a) {
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& k = argv[i];
    auto value = [&](auto& out) -> bool {
      if (i + 1 >= argv.size()) return false;
      return parse_number(argv[++i], out);
    };
    if (k == "--help" || k == "-h") {
      std::printf("%s", kUsage);
      return 0;
    } else if (k == "--gpu") {
      a.gpu = true;
    } else if (k == "--cpu") {
      a.cpu = true;
    } else if (k == "--backward") {
      a.backward = true;
    } else if (k == "--verbose") {
      a.verbose = true;
    } else if (k == "--seed") {
      uint64_t s = 0;
      if (!value(s)) return bad_arg("--seed needs a non-negative integer");
      a.seed = s;
    } else if (k == "--iterations") {
      int64_t n = 0;
      if (!value(n) || n < 1) return bad_arg("--iterations needs an integer >= 1");
      a.iterations = n;
    } else if (k == "--minutes") {
      double m = 0;
      if (!value(m) || !(m > 0)) return bad_arg("--minutes needs a number > 0");
      a.minutes = m;
    } else if (k == "--case") {
      if (i + 1 >= argv.size()) return bad_arg("--case needs an integer >= 0 or a list K,K,...");
      const std::string list = argv[++i];
      std::size_t from = 0;
      while (true) {
        const std::size_t comma = list.find(',', from);
        const std::string item = list.substr(from, comma - from);
        int64_t n = 0;
        if (!parse_number(item, n) || n < 0)
          return bad_arg("--case: '" + item + "' (in '" + list + "') is not an integer >= 0");
        a.cases.push_back(n);
        if (comma == std::string::npos) break;
        from = comma + 1;
      }
    } else if (k == "--first-case") {
      int64_t n = 0;
      if (!value(n) || n < 0) return bad_arg("--first-case needs an integer >= 0");
      a.first_case = n;
    } else if (k == "--max-rows") {
      int64_t n = 0;
      if (!value(n) || n < 1) return bad_arg("--max-rows needs an integer >= 1");
      a.max_rows = n;
    } else if (k == "--save-dir") {
      if (i + 1 >= argv.size()) return bad_arg("--save-dir needs a directory");
      a.save_dir = argv[++i];
    } else if (k == "--truth") {
      if (i + 1 >= argv.size()) return bad_arg("--truth needs f64 or f128");
      const std::string p = argv[++i];
      if (p == "f64") {
        a.truth = Precision::f64;
      } else if (p == "f128") {
        a.truth = Precision::f128;
      } else {
        return bad_arg("--truth: '" + p + "' is not f64 or f128");
      }
    } else if (k == "--draw") {
      if (i + 1 >= argv.size()) return bad_arg("--draw needs gpu or cpu");
      const std::string d = argv[++i];
      if (d != "gpu" && d != "cpu") return bad_arg("--draw: '" + d + "' is not gpu or cpu");
      a.gpu_draws = d == "gpu";
    } else if (k == "--model") {
      if (i + 1 >= argv.size()) return bad_arg("--model needs ORDER[:ACCUMULATOR][@PERMUTATION]");
      a.model_text = argv[++i];
      std::string rest = a.model_text, order = rest, acc, perm;
      if (const auto at = rest.find('@'); at != std::string::npos) {
        perm = rest.substr(at + 1);
        rest = rest.substr(0, at);
      }
      order = rest;
      if (const auto colon = rest.find(':'); colon != std::string::npos) {
        order = rest.substr(0, colon);
        acc = rest.substr(colon + 1);
      }
      KernelModel m;
      if (!parse_enum(order, m.order))
        return bad_arg("--model: '" + order + "' is not a summation order (" +
                       allowed_values<SumOrder>() + ")");
      if (!acc.empty() && (!parse_enum(acc, m.accumulator) || m.accumulator == Dtype::f64))
        return bad_arg("--model: accumulator '" + acc + "' is not fp32, fp16 or bf16");
      if (!perm.empty() && (!parse_number(perm, m.permutation) || m.permutation == 0))
        return bad_arg("--model: permutation '" + perm + "' is not an integer >= 1");
      a.model = m;
    } else {
      return bad_arg("unknown argument '" + k + "'");
    }
  }
  if (a.gpu && a.cpu) return bad_arg("--gpu and --cpu exclude each other");
  if (!a.gpu && !a.cpu) {
    std::fprintf(stderr,
                 "nsa fuzz: the configuration fuzzer runs the CUDA kernels and needs a GPU: pass "
                 "--gpu on a machine with a CUDA device (or --cpu to fuzz the f64 reference "
                 "against f128 truth without one)\n");
    return kNeedsGpu;
  }
  if (!a.seed) return bad_arg("--seed is required (it makes every case reproducible)");
  if (a.cases.empty() && !a.iterations && !a.minutes)
    return bad_arg("give --iterations N, --minutes M or --case K");
  if (!a.cases.empty() && (a.iterations || a.minutes))
    return bad_arg("--case runs the listed cases: drop --iterations/--minutes");
  if (!a.cases.empty() && a.first_case != 0)
    return bad_arg("--first-case applies to --iterations/--minutes runs, not to --case");
  if (a.model && !a.cpu) return bad_arg("--model replaces the f64 candidate of --cpu");
  if (a.model && a.backward)
    return bad_arg("--model is a forward kernel model: it has no backward (drop --backward)");
  return std::nullopt;
}

std::string repro(const Args& a, const FuzzCase& fc) {
  std::string extra;
  if (a.gpu_draws && *a.gpu_draws != a.gpu) extra += *a.gpu_draws ? " --draw gpu" : " --draw cpu";
  if (a.model) extra += " --model " + a.model_text;
  if (a.backward) extra += " --backward";
  if (a.truth) extra += std::string(" --truth ") + to_string(*a.truth);
  return std::string("nsa fuzz ") + (a.gpu ? "--gpu" : "--cpu") + " --seed " +
         std::to_string(fc.run_seed) + " --case " + std::to_string(fc.index) +
         (a.max_rows != 48 ? " --max-rows " + std::to_string(a.max_rows) : "") + extra;
}

void save_case(const Args& a, const FuzzCase& fc, const std::string& report) {
  namespace fs = std::filesystem;
  fs::create_directories(a.save_dir);
  const std::string stem = (fs::path(a.save_dir) / ("seed" + std::to_string(fc.run_seed) + "_case" +
                                                    std::to_string(fc.index)))
                               .string();
  std::ofstream(stem + ".config.json") << config_to_json(fc.cfg) << "\n";
  std::ofstream info(stem + ".txt");
  info << "repro: " << repro(a, fc) << "\ninput_seed: " << fc.input_seed
       << "\nregime: " << to_string(fc.regime)
       << "\nadversarial_indices: " << (fc.adversarial_indices ? "true" : "false")
       << "\n(inputs: nsa::ref::generate_inputs(validate(config), input_seed, regime)"
       << (fc.adversarial_indices ? "; indices: generate_indices(vc, input_seed, true)" : "")
       << ")\n\n"
       << report << "\n";
  std::printf("  saved %s.config.json and %s.txt\n", stem.c_str(), stem.c_str());
  if (fc.adversarial_indices) {
    std::printf("  (no golden file: golden cases hold generated, not adversarial, index lists)\n");
    return;
  }
  try {
    nsa::golden::GoldenFile file;
    file.suite = "config";
    file.cases.push_back(nsa::golden::make_case(
        {"fuzz_seed" + std::to_string(fc.run_seed) + "_case" + std::to_string(fc.index), fc.cfg,
         fc.input_seed, fc.regime},
        Precision::f128));
    nsa::golden::write_golden(stem + ".h5", file);
    std::printf("  saved %s.h5 (golden file of the case)\n", stem.c_str());
  } catch (const std::exception& e) {
    std::printf("  golden file not written: %s\n", e.what());
  }
}

struct Totals {
  int64_t cases = 0, rows = 0, failures = 0, draws = 0;
  int64_t backward_cases = 0, backward_skipped = 0, keys = 0;
};

// The candidate's gradients on the checked rows and keys, judged; appends the verdict's table.
bool check_backward(const Args& a, const FuzzCase& fc, const Inputs& in,
                    const std::vector<int64_t>& rows, Precision truth, Totals& tot,
                    std::string& report) {
  if (a.gpu) {
    if (const auto why = nsa::fuzz::gpu_backward_unsupported(fc.vc); !why.empty()) {
      ++tot.backward_skipped;
      if (a.verbose) std::printf("     backward skipped: %s\n", why.c_str());
      return true;
    }
  }
  const auto d_o = generate_grad_output(fc.vc, fc.input_seed);
  const auto keys = nsa::fuzz::check_keys(fc, a.max_rows);
  Gradients cand;
  std::vector<int32_t> indices;
  if (a.gpu) {
    cand = select_gradients(fc.vc, nsa::fuzz::gpu_backward(fc.vc, in, d_o, &indices), rows, keys);
  } else {
    GradSelection sel;
    sel.rows = rows;
    sel.keys = keys;
    cand = backward(fc.vc, in, d_o, Precision::f64, sel);
  }
  const Verdict v = check_candidate_gradients(fc.vc, in, d_o, cand, truth, {}, indices);
  ++tot.backward_cases;
  tot.keys += static_cast<int64_t>(keys.size());
  report += "\nbackward (" + std::to_string(keys.size()) + " keys):\n" + v.table();
  return v.pass();
}

// Runs one case; returns false on a failure (already reported).
bool run_case(const Args& a, const FuzzCase& fc, Totals& tot) {
  const Inputs in = nsa::fuzz::case_inputs(fc);
  const auto rows = nsa::fuzz::check_rows(fc, a.max_rows);
  const Precision truth = a.truth.value_or(a.gpu ? Precision::f64 : Precision::f128);
  std::string report;
  bool pass = true;
  try {
    Outputs cand;
    if (a.gpu) {
      cand = select_rows(nsa::fuzz::gpu_forward(fc.vc, in), rows);
    } else {
      RowSelection sel;
      sel.rows = rows;
      cand = a.model ? forward_model(fc.vc, in, *a.model, sel)
                     : forward(fc.vc, in, Precision::f64, sel);
    }
    const Verdict v = check_candidate(fc.vc, in, cand, truth);
    pass = v.pass();
    report = v.table();
    if (a.backward) pass = check_backward(a, fc, in, rows, truth, tot, report) && pass;
  } catch (const std::exception& e) {
    pass = false;
    report = std::string("exception: ") + e.what();
  }
  ++tot.cases;
  tot.rows += static_cast<int64_t>(rows.size());
  tot.draws += fc.attempts;
  if (pass) {
    if (a.verbose)
      std::printf("ok   %s (%zu rows)\n", nsa::fuzz::case_summary(fc).c_str(), rows.size());
    return true;
  }
  ++tot.failures;
  std::printf("FAIL %s\n%s\n  repro: %s\n", nsa::fuzz::case_summary(fc).c_str(), report.c_str(),
              repro(a, fc).c_str());
  if (!a.save_dir.empty()) save_case(a, fc, nsa::fuzz::case_summary(fc) + "\n" + report);
  std::fflush(stdout);
  return false;
}

int run(const std::vector<std::string>& argv) {
  Args a;
  if (const auto done = parse(argv, a)) return *done;
  if (a.gpu) {
    if (const auto why = nsa::fuzz::gpu_unavailable_reason(); !why.empty()) {
      std::fprintf(stderr, "nsa fuzz --gpu: needs a CUDA GPU: %s\n", why.c_str());
      return kNeedsGpu;
    }
    std::printf("nsa fuzz: GPU mode on %s, seed %llu\n", nsa::fuzz::gpu_device_name().c_str(),
                static_cast<unsigned long long>(*a.seed));
  } else {
    std::printf("nsa fuzz: CPU mode (%s vs %s truth, %s draws), seed %llu\n",
                a.model ? ("kernel model " + a.model_text).c_str() : "f64 reference",
                to_string(a.truth.value_or(Precision::f128)),
                a.gpu_draws.value_or(false) ? "gpu" : "cpu",
                static_cast<unsigned long long>(*a.seed));
  }
  // --draw gpu without --gpu takes every draw: every GPU-size draw is inside the kernels' limits
  // (nsa::cuda::unsupported: d <= 256, G * d_k <= 16384, top_n <= 6144, no fp64), so the cases
  // are those of a --gpu run of the same seed.
  const auto limits =
      a.gpu_draws.value_or(a.gpu) ? nsa::fuzz::gpu_limits() : nsa::fuzz::cpu_limits();
  const auto accept = [&](const ValidConfig& vc) {
    return !a.gpu || nsa::fuzz::gpu_unsupported(vc).empty();
  };
  const auto start = std::chrono::steady_clock::now();
  auto minutes = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 60.0;
  };
  Totals tot;
  int64_t next = a.first_case;  // one past the last case run by a stream run
  if (!a.cases.empty()) {
    for (const int64_t k : a.cases)
      run_case(a, nsa::fuzz::draw_case(*a.seed, k, limits, accept), tot);
  } else {
    for (int64_t done = 0;; ++done) {
      if (a.iterations && done >= *a.iterations) break;
      if (a.minutes && minutes() >= *a.minutes) break;
      run_case(a, nsa::fuzz::draw_case(*a.seed, next++, limits, accept), tot);
      if (!a.verbose && (done + 1) % 25 == 0) {
        std::printf("... %lld cases, %lld failures, %.1f min\n", static_cast<long long>(done + 1),
                    static_cast<long long>(tot.failures), minutes());
        std::fflush(stdout);
      }
    }
    std::printf("nsa fuzz: ran cases %lld..%lld of seed %llu (continue with --first-case %lld)\n",
                static_cast<long long>(a.first_case), static_cast<long long>(next - 1),
                static_cast<unsigned long long>(*a.seed), static_cast<long long>(next));
  }
  std::printf(
      "nsa fuzz summary: mode %s, seed %llu, %lld cases (%lld draws), %lld rows checked, "
      "%lld failures, %.1f s\n",
      a.gpu ? "gpu" : "cpu", static_cast<unsigned long long>(*a.seed),
      static_cast<long long>(tot.cases), static_cast<long long>(tot.draws),
      static_cast<long long>(tot.rows), static_cast<long long>(tot.failures), minutes() * 60.0);
  if (a.backward)
    std::printf(
        "nsa fuzz backward: %lld cases' gradients checked (%lld key tokens), %lld skipped "
        "(the CUDA backward refuses the config)\n",
        static_cast<long long>(tot.backward_cases), static_cast<long long>(tot.keys),
        static_cast<long long>(tot.backward_skipped));
  return tot.failures == 0 ? 0 : 1;
}

}  // namespace

nsa::cli::Command nsa::cli::fuzz_command() {
  return {"fuzz", "configuration fuzzer: kernels (--gpu) or reference (--cpu) vs truth", run};
}
