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

  if (golden.schema_version < 2)
    std::printf("%s: schema version %d holds the forward only: gradients cannot be checked\n",
                golden_path.c_str(), golden.schema_version);
  int failed = 0, passed = 0, missing = 0, tensors = 0, grad_tensors = 0;
  for (const auto& gc : golden.cases) {
    const auto it = cands.find(gc.name);
    if (it == cands.end() || it->second.present.empty()) {
      std::printf("case %s: not checked (no outputs in %s)\n", gc.name.c_str(), cand_path.c_str());
      ++missing;
      continue;
    }
    const auto& cand = it->second;
    const bool has_fwd = cand.has_forward();
    nsa::ref::Verdict fwd, grad;
    if (has_fwd) fwd = nsa::golden::check_case(gc, cand.outputs, tol);
    const bool judge_grads = cand.has_grads() && gc.has_grad;
    if (judge_grads)
      grad = nsa::golden::check_case_gradients(gc, cand.grads, cand.outputs.indices, tol);
    for (const auto& t : fwd.tensors) tensors += t.checked;
    for (const auto& t : grad.tensors) grad_tensors += t.checked;
    const bool pass = fwd.pass() && grad.pass();
    std::printf("case %s: %s\n", gc.name.c_str(), pass ? "PASS" : "FAIL");
    if (has_fwd)
      std::printf("%s", fwd.table().c_str());
    else
      std::printf("  forward: not checked (the candidate holds no forward outputs)\n");
    if (judge_grads)
      std::printf("%s", grad.table().c_str());
    else if (!gc.has_grad)
      std::printf("  gradients: not checked (%s)\n",
                  golden.schema_version < 2 ? "schema 1 golden file" : "this case has no backward");
    else
      std::printf("  gradients: not checked (the candidate holds none of outputs/grad/*)\n");
    (pass ? passed : failed)++;
  }
  tensors += grad_tensors;
  std::printf(
      "\n%d cases passed, %d failed, %d not checked; %d tensors checked, %d of them gradients "
      "(alpha %g, beta %g)\n",
      passed, failed, missing, tensors, grad_tensors, tol.alpha, tol.beta);
  if (tensors == 0) {
    std::printf("nothing was checked: the candidate holds no outputs of any golden case\n");
    return 1;
  }
  return failed ? 1 : 0;
}

}  // namespace nsa::cli
