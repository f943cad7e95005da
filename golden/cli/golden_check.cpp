// `nsa golden check GOLDEN.h5 CANDIDATE.h5`: judges another implementation's outputs with the
// tolerance rule, case by case and tensor by tensor.
#include <cstdio>

#include "args.hpp"
#include "golden_commands.hpp"
#include "nsa/golden/check.hpp"

namespace nsa::cli {

int golden_check(const std::vector<std::string>& argv) {
  const Args args(argv, {"--alpha", "--beta"});
  if (args.positional().size() != 2)
    throw UsageError("check: expected two files, GOLDEN.h5 CANDIDATE.h5 (got " +
                     std::to_string(args.positional().size()) + ")");
  nsa::ref::Tolerance tol;
  tol.alpha = args.get_double("--alpha", tol.alpha, 0.0);
  tol.beta = args.get_double("--beta", tol.beta, 0.0);
  const auto& golden_path = args.positional()[0];
  const auto& cand_path = args.positional()[1];
  const auto golden = nsa::golden::read_golden(golden_path);
  const auto cands = nsa::golden::read_candidate(cand_path, golden);

  int failed = 0, passed = 0, missing = 0, tensors = 0;
  for (const auto& gc : golden.cases) {
    const auto it = cands.find(gc.name);
    if (it == cands.end() || it->second.present.empty()) {
      std::printf("case %s: not checked (no outputs in %s)\n", gc.name.c_str(), cand_path.c_str());
      ++missing;
      continue;
    }
    const auto v = nsa::golden::check_case(gc, it->second.outputs, tol);
    for (const auto& t : v.tensors) tensors += t.checked;
    std::printf("case %s: %s\n%s", gc.name.c_str(), v.pass() ? "PASS" : "FAIL", v.table().c_str());
    (v.pass() ? passed : failed)++;
  }
  std::printf(
      "\n%d cases passed, %d failed, %d not checked; %d tensors checked (alpha %g, beta %g)\n",
      passed, failed, missing, tensors, tol.alpha, tol.beta);
  if (tensors == 0) {
    std::printf("nothing was checked: the candidate holds no outputs of any golden case\n");
    return 1;
  }
  return failed ? 1 : 0;
}

}  // namespace nsa::cli
