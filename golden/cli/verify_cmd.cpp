// `nsa verify`: the main job. Generates a suite in memory (f128 truth + dtype-faithful baseline)
// and checks every implementation it is given that is available here against it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <utility>

#include "args.hpp"
#include "golden_cli.hpp"
#include "nsa/golden/check.hpp"
#include "nsa/golden/suites.hpp"

namespace nsa::cli {
namespace {

struct Tally {
  int passed = 0, failed = 0, unsupported = 0;
  int grad_passed = 0, grad_failed = 0;  // backward, where the implementation has one
  int grad_unsupported = 0;              // configs its forward runs and its backward does not
  double worst = 0, grad_worst = 0;
  double seconds = 0;
  std::string status;  // "not available" etc.
};

int run_verify(const std::vector<Implementation>& implementations,
               const std::vector<std::string>& argv) {
  try {
    const Args args(argv, {"--suite", "--threads", "--case"}, {"--verbose"});
    if (!args.positional().empty())
      throw UsageError("unexpected argument '" + args.positional()[0] + "'");
    const std::string suite = args.get("--suite", "smoke");
    const int threads = static_cast<int>(args.get_int("--threads", 0, 0, 1024));
    const bool verbose = args.has("--verbose");
    std::vector<nsa::golden::CaseSpec> specs;
    try {
      specs = nsa::golden::suite_cases(suite);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--suite: ") + e.what());
    }
    if (args.has("--case")) {  // a comma-separated list of the suite's case names
      std::vector<nsa::golden::CaseSpec> chosen;
      const std::string list = args.get("--case", "");
      for (std::size_t at = 0; at <= list.size();) {
        const std::size_t end = std::min(list.find(',', at), list.size());
        const std::string name = list.substr(at, end - at);
        auto it = std::find_if(specs.begin(), specs.end(),
                               [&](const nsa::golden::CaseSpec& s) { return s.name == name; });
        if (it == specs.end())
          throw UsageError("--case: no case '" + name + "' in suite " + suite +
                           " (nsa golden inspect lists a suite's cases)");
        chosen.push_back(*it);
        at = end + 1;
      }
      specs = std::move(chosen);
    }

    const auto t0 = std::chrono::steady_clock::now();
    std::vector<nsa::golden::GoldenCase> cases;
    for (const auto& s : specs)
      cases.push_back(nsa::golden::make_case(s, nsa::ref::Precision::f128, threads));
    const double gen_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("suite %s: %zu cases, truth f128 + baseline generated in %.2f s\n\n", suite.c_str(),
                cases.size(), gen_s);

    std::vector<std::pair<std::string, Tally>> tallies;
    for (const auto& impl : implementations) {
      Tally t;
      if (!impl.available()) {
        t.status = "not available here (skipped)";
        tallies.emplace_back(impl.name, t);
        std::printf("%-14s not available here: skipped\n", impl.name);
        continue;
      }
      for (const auto& gc : cases) {
        const std::string why = impl.unsupported(gc.vc);
        if (!why.empty()) {
          ++t.unsupported;
          std::printf("%-14s %-40s unsupported: %s\n", impl.name, gc.name.c_str(), why.c_str());
          continue;
        }
        const auto r0 = std::chrono::steady_clock::now();
        try {
          const auto out = impl.run(gc.vc, gc.inputs);
          t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - r0).count();
          const auto v = nsa::golden::check_case(gc, out);
          const double ratio = nsa::golden::worst_ratio(v);
          t.worst = std::max(t.worst, ratio);
          (v.pass() ? t.passed : t.failed)++;
          std::printf("%-14s %-40s %s  max err/bound %.3g\n", impl.name, gc.name.c_str(),
                      v.pass() ? "pass" : "FAIL", ratio);
          if (!v.pass() || verbose) std::printf("%s", v.table().c_str());
          if (!v.pass())
            std::printf("  repro: nsa golden generate --suite %s --out g.h5, case %s, seed %llu\n",
                        suite.c_str(), gc.name.c_str(), static_cast<unsigned long long>(gc.seed));
          if (!impl.backward) continue;
          if (!gc.has_grad) {  // the case carries no backward (golden/SCHEMA.md, `backward`)
            std::printf("%-14s %-40s backward: not part of this case\n", impl.name,
                        gc.name.c_str());
            continue;
          }
          if (impl.backward_unsupported) {
            const std::string bwhy = impl.backward_unsupported(gc.vc);
            if (!bwhy.empty()) {
              ++t.grad_unsupported;
              std::printf("%-14s %-40s backward unsupported: %s\n", impl.name, gc.name.c_str(),
                          bwhy.c_str());
              continue;
            }
          }
          const auto b0 = std::chrono::steady_clock::now();
          const auto grads = impl.backward(gc.vc, gc.inputs, gc.d_o);
          t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - b0).count();
          const auto gv = nsa::golden::check_case_gradients(gc, grads, out.indices);
          const double gratio = nsa::golden::worst_ratio(gv);
          t.grad_worst = std::max(t.grad_worst, gratio);
          (gv.pass() ? t.grad_passed : t.grad_failed)++;
          std::printf("%-14s %-40s %s  backward max err/bound %.3g\n", impl.name, gc.name.c_str(),
                      gv.pass() ? "pass" : "FAIL", gratio);
          if (!gv.pass() || verbose) std::printf("%s", gv.table().c_str());
        } catch (const std::exception& e) {
          ++t.failed;
          std::printf("%-14s %-40s FAIL  error: %s\n", impl.name, gc.name.c_str(), e.what());
        }
      }
      tallies.emplace_back(impl.name, t);
    }

    bool ok = true;
    std::printf("\nsummary (suite %s, %zu cases, truth f128, tolerance alpha 2 beta 2)\n",
                suite.c_str(), cases.size());
    std::printf("  %-14s %6s %6s %11s %16s %10s %10s %16s %9s\n", "implementation", "pass", "fail",
                "unsupported", "worst err/bound", "grad pass", "grad fail", "grad err/bound",
                "run s");
    for (const auto& [name, t] : tallies) {
      if (!t.status.empty()) {
        std::printf("  %-14s %s\n", name.c_str(), t.status.c_str());
        continue;
      }
      ok = ok && t.failed == 0 && t.grad_failed == 0;
      if (t.grad_passed + t.grad_failed == 0)
        std::printf("  %-14s %6d %6d %11d %16.3g %10s %10s %16s %9.2f\n", name.c_str(), t.passed,
                    t.failed, t.unsupported, t.worst, "--", "--", "none checked", t.seconds);
      else
        std::printf("  %-14s %6d %6d %11d %16.3g %10d %10d %16.3g %9.2f\n", name.c_str(), t.passed,
                    t.failed, t.unsupported, t.worst, t.grad_passed, t.grad_failed, t.grad_worst,
                    t.seconds);
      if (t.grad_unsupported > 0)
        std::printf("  %-14s backward unsupported in %d of the cases its forward ran\n",
                    name.c_str(), t.grad_unsupported);
    }
    std::printf(
        "note: ref-baseline passes by construction (its error is the baseline error itself and the "
        "bound is alpha * that + beta ulp with alpha = 2 >= 1); ref-f64 must be far inside "
        "(err/bound "
        "<< 1).\n");
    std::printf("%s\n", ok ? "verify: PASS" : "verify: FAIL");
    return ok ? 0 : 1;
  } catch (const UsageError& e) {
    std::fprintf(stderr,
                 "nsa verify: %s\n\nusage: nsa verify [--suite smoke|canonical|fla|nsa_triton|"
                 "paper] [--case NAME[,NAME...]] [--threads N] [--verbose]\n",
                 e.what());
    return 2;
  }
}

}  // namespace

Command verify_command(std::vector<Implementation> implementations) {
  return {"verify", "check every available implementation against the f128 truth",
          [implementations = std::move(implementations)](const std::vector<std::string>& args) {
            return run_verify(implementations, args);
          }};
}

}  // namespace nsa::cli
