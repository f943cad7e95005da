// `nsa golden check GOLDEN.h5 CANDIDATE.h5`: judges another implementation's outputs with the
// tolerance rule, case by case and tensor by tensor. Exit status: 0 pass, 1 a candidate tensor
// failed, 2 nothing could be judged (nsa::golden::CheckStatus).
#include <cstdio>
#include <exception>

#include "args.hpp"
#include "golden_commands.hpp"
#include "nsa/golden/check.hpp"

namespace nsa::cli {

int golden_check(const std::vector<std::string>& argv) {
  using nsa::golden::CheckStatus;
  const Args args(argv, {"--alpha", "--beta"});
  if (args.positional().size() != 2)
    throw UsageError("check: expected two files, GOLDEN.h5 CANDIDATE.h5 (got " +
                     std::to_string(args.positional().size()) + ")");
  nsa::ref::Tolerance tol;
  tol.alpha = args.get_double("--alpha", tol.alpha, 0.0);
  tol.beta = args.get_double("--beta", tol.beta, 0.0);
  const auto& golden_path = args.positional()[0];
  const auto& cand_path = args.positional()[1];
  nsa::golden::FileReport report;
  try {
    const auto golden = nsa::golden::read_golden(golden_path);
    if (golden.schema_version < 2)
      std::printf("%s: schema version %d holds the forward only: gradients cannot be checked\n",
                  golden_path.c_str(), golden.schema_version);
    const auto cands = nsa::golden::read_candidate(cand_path, golden);
    report = nsa::golden::check_file(golden, cands, tol);
  } catch (const std::exception& e) {
    // A file missing, unreadable or damaged: no verdict on the candidate at all.
    std::fprintf(stderr, "nsa golden check: error: %s\nnothing was judged (exit 2)\n", e.what());
    return static_cast<int>(CheckStatus::no_check);
  }
  for (const auto& c : report.cases) {
    if (!c.checked) {
      std::printf("case %s: not checked (no outputs in %s)\n", c.name.c_str(), cand_path.c_str());
      continue;
    }
    std::printf("case %s: %s\n", c.name.c_str(), c.pass() ? "PASS" : "FAIL");
    if (c.forward)
      std::printf("%s", c.verdict.table().c_str());
    else
      std::printf("  forward: not checked (the candidate holds no forward outputs)\n");
    if (c.grads)
      std::printf("%s", c.grad_verdict.table().c_str());
    else
      std::printf("  gradients: not checked (%s)\n", c.grad_note.c_str());
  }
  std::printf(
      "\n%d cases passed, %d failed, %d not checked; %d tensors checked, %d of them gradients "
      "(alpha %g, beta %g)\n",
      report.passed, report.failed, report.not_checked, report.tensors + report.grad_tensors,
      report.grad_tensors, tol.alpha, tol.beta);
  const auto status = report.status();
  if (status == CheckStatus::no_check)
    std::printf(
        "nothing was checked: the candidate holds no outputs of any golden case (exit 2)\n");
  return static_cast<int>(status);
}

}  // namespace nsa::cli
