// `nsa golden inspect FILE.h5` (what a golden file holds) and `nsa golden diff A.h5 B.h5`
// (whether two files hold the same content).
#include <cstdio>

#include "args.hpp"
#include "golden_commands.hpp"
#include "nsa/golden/golden_file.hpp"

namespace nsa::cli {

int golden_inspect(const std::vector<std::string>& argv) {
  const Args args(argv, {});
  if (args.positional().size() != 1)
    throw UsageError("inspect: expected one file (got " + std::to_string(args.positional().size()) +
                     ")");
  const auto& path = args.positional()[0];
  const auto f = nsa::golden::read_golden(path);
  std::printf("%s: schema version %d (%s), suite %s, %zu cases\n", path.c_str(), f.schema_version,
              f.schema_version >= 2 ? "forward and backward" : "forward only: no gradients",
              f.suite.c_str(), f.cases.size());
  for (const auto& gc : f.cases) {
    const auto& vc = gc.vc;
    std::printf("\ncase %s  (seed %llu, regime %s, truth %s, generator v%d)\n  %s\n",
                gc.name.c_str(), static_cast<unsigned long long>(gc.seed),
                nsa::ref::to_string(gc.regime), nsa::ref::to_string(gc.precision),
                gc.generator_version, nsa::ref::describe(vc.cfg).c_str());
    std::printf("  total_q %lld, total_k %lld, G %lld, scale %.17g\n",
                static_cast<long long>(vc.total_q), static_cast<long long>(vc.total_k),
                static_cast<long long>(vc.group), vc.scale);
    std::printf("  expected:");
    for (const auto& n : nsa::golden::expected_tensor_names(vc)) {
      const auto it = gc.baseline_err.find(n);
      if (it != gc.baseline_err.end())
        std::printf(" %s (baseline err %.3g)", n.c_str(), it->second);
      else
        std::printf(" %s", n.c_str());
    }
    std::printf("\n");
    if (!gc.has_grad) continue;
    std::printf("  gradients (inputs/do, expected/grad/):");
    for (const auto& [n, err] : gc.grad_baseline_err)
      std::printf(" %s (baseline err %.3g)", n.c_str(), err);
    std::printf("\n");
  }
  return 0;
}

int golden_diff(const std::vector<std::string>& argv) {
  const Args args(argv, {});
  if (args.positional().size() != 2)
    throw UsageError("diff: expected two files, A.h5 B.h5 (got " +
                     std::to_string(args.positional().size()) + ")");
  const auto diffs = nsa::golden::diff_files(args.positional()[0], args.positional()[1]);
  for (const auto& d : diffs) std::printf("%s\n", d.c_str());
  if (diffs.empty()) {
    std::printf("same content: every group, dataset and attribute is identical\n");
    return 0;
  }
  std::printf("%zu differences\n", diffs.size());
  return 1;
}

}  // namespace nsa::cli
