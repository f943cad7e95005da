// The configurations `nsa bench` runs (docs/benchmarks.md, "Choosing the configurations"): a
// preset table (the default prefill table, --decode, --quick, or the one case of --config FILE)
// whose axes the command-line flags replace. Pure host code: every configuration is resolved and
// validated here, before any device is touched, so a bad flag is reported the same way with or
// without a GPU.
#pragma once

#include <string>
#include <vector>

#include "nsa/ref/config.hpp"

namespace nsa::bench {

struct BenchCase {
  nsa::ref::ValidConfig vc;
  std::string label;  // the flags that distinguish this case from the base, for error messages
};

struct BenchPlan {
  std::vector<BenchCase> cases;
  int reps = 10;
  int warmup = 2;
  bool dry_run = false;   // print the resolved configurations and exit without a device
  bool backward = false;  // time nsa::cuda::backward's stages instead of the forward's
  bool graph = false;     // also time CUDA-graph replays and print the floor (--graph, --decode)
  bool help = false;
  // Flags that were given for a branch that no case runs (their values are not read).
  std::vector<std::string> ignored;
};

// Parses `nsa bench` arguments. Throws nsa::cli::UsageError naming the flag and the value for an
// unknown flag, a missing or malformed value, a value out of the flag's range, a conflict between
// flags, or a resolved configuration that nsa::ref::validate rejects (which then names the case
// and the config field together with the flag that sets it).
BenchPlan parse_bench_args(const std::vector<std::string>& args);

// The usage text (flags, presets, exit codes).
std::string bench_usage();

// Bytes of the device tensors one case allocates (inputs, phi parameters, the output), so that a
// dry run shows what a table needs before it is run.
double device_bytes(const nsa::ref::ValidConfig& vc);

}  // namespace nsa::bench
