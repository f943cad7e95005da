// `nsa golden <generate|check|inspect|diff>`: dispatch, usage, and the exit-code-2 rule for bad
// command lines.
#include <cstdio>
#include <string>

#include "args.hpp"
#include "golden_cli.hpp"
#include "golden_commands.hpp"

namespace nsa::cli {
namespace {

const char* kUsage =
    "usage:\n"
    "  nsa golden generate (--suite NAME | --config FILE [--profile P]) [--precision "
    "f128|bin50|f64]\n"
    "                      [--seed S] [--threads N] --out FILE.h5\n"
    "  nsa golden check GOLDEN.h5 CANDIDATE.h5 [--alpha A] [--beta B]\n"
    "                      exit 0: every case the candidate holds passed; 1: a candidate tensor\n"
    "                      failed the tolerance or index rule; 2: nothing could be judged (bad\n"
    "                      arguments, a file missing, unreadable or damaged, another schema\n"
    "                      version, no outputs of any golden case)\n"
    "  nsa golden inspect FILE.h5\n"
    "  nsa golden diff A.h5 B.h5      (content comparison; exit 1 if they differ)\n"
    "suites: smoke canonical fla nsa_triton paper (golden/SCHEMA.md)\n";

int run_golden(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  const auto& sub = args[0];
  try {
    if (sub == "generate") return golden_generate(rest);
    if (sub == "check") return golden_check(rest);
    if (sub == "inspect") return golden_inspect(rest);
    if (sub == "diff") return golden_diff(rest);
    throw UsageError("unknown subcommand '" + sub + "' (expected generate|check|inspect|diff)");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "nsa golden: %s\n\n%s", e.what(), kUsage);
    return 2;
  }
}

}  // namespace

Command golden_command() {
  return {"golden", "generate, check and inspect golden HDF5 files", run_golden};
}

}  // namespace nsa::cli
