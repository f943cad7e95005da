// `nsa golden generate`: builds a suite (or one case from a config file) with the f128 truth and
// writes a golden file.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "args.hpp"
#include "golden_commands.hpp"
#include "nsa/golden/suites.hpp"
#include "nsa/ref/config_json.hpp"

namespace nsa::cli {
namespace {

nsa::ref::Precision parse_precision(const std::string& s) {
  for (auto p : {nsa::ref::Precision::f128, nsa::ref::Precision::bin50, nsa::ref::Precision::f64})
    if (s == nsa::ref::to_string(p)) return p;
  throw UsageError("--precision = '" + s + "': expected f128|bin50|f64");
}

std::vector<nsa::golden::CaseSpec> specs_from_config(const std::string& path,
                                                     const std::string& profile, uint64_t seed) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw UsageError("--config = '" + path + "': cannot open the file");
  std::stringstream ss;
  ss << f.rdbuf();
  nsa::golden::CaseSpec spec;
  try {
    spec.cfg = nsa::ref::config_from_json(ss.str());
    if (!profile.empty()) nsa::ref::apply_profile(spec.cfg, profile);
    nsa::ref::validate(spec.cfg);
  } catch (const nsa::ref::ConfigError& e) {
    throw UsageError("--config = '" + path + "': " + e.what());
  }
  spec.name = "000_config";
  spec.seed = seed;
  return {spec};
}

void progress_bar(std::size_t done, std::size_t total, const std::string& name) {
  const int width = 30;
  const int filled = total ? static_cast<int>(width * done / total) : width;
  std::fprintf(stderr, "\r[%s%s] %zu/%zu %-40.40s", std::string(filled, '#').c_str(),
               std::string(width - filled, ' ').c_str(), done, total, name.c_str());
  if (done == total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace

int golden_generate(const std::vector<std::string>& argv) {
  const Args args(
      argv, {"--suite", "--config", "--profile", "--precision", "--seed", "--out", "--threads"});
  if (!args.positional().empty())
    throw UsageError("generate: unexpected argument '" + args.positional()[0] + "'");
  if (args.has("--suite") == args.has("--config"))
    throw UsageError("generate: give exactly one of --suite NAME or --config FILE");
  if (!args.has("--out")) throw UsageError("generate: --out FILE.h5 is required");
  if (args.get("--out").empty()) throw UsageError("--out = '': expected a file name");
  if (args.has("--profile") && !args.has("--config"))
    throw UsageError("--profile applies to --config only (suites fix their own profiles)");
  const auto precision = parse_precision(args.get("--precision", "f128"));
  const int threads = static_cast<int>(args.get_int("--threads", 0, 0, 1024));

  std::vector<nsa::golden::CaseSpec> specs;
  std::string suite;
  if (args.has("--suite")) {
    suite = args.get("--suite");
    try {
      specs = nsa::golden::suite_cases(suite);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--suite: ") + e.what());
    }
    if (args.has("--seed")) {
      const auto seed = args.get_u64("--seed", 0);
      for (std::size_t i = 0; i < specs.size(); ++i) specs[i].seed = seed + i;
    }
  } else {
    suite = "config";
    specs =
        specs_from_config(args.get("--config"), args.get("--profile"), args.get_u64("--seed", 1));
  }

  const bool tty = isatty(fileno(stderr));
  nsa::golden::GoldenFile file;
  file.suite = suite;
  int64_t rows = 0, row_heads = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < specs.size(); ++i) {
    file.cases.push_back(nsa::golden::make_case(specs[i], precision, threads));
    const auto& vc = file.cases.back().vc;
    rows += vc.total_q;
    row_heads += vc.total_q * vc.cfg.h_q;
    if (tty) progress_bar(i + 1, specs.size(), specs[i].name);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nsa::golden::write_golden(args.get("--out"), file);
  std::fprintf(stderr,
               "generated %zu cases (suite %s, truth %s + baseline) in %.2f s: %.1f cases/s, "
               "%.0f query rows/s, %.0f (row, head) pairs/s -> %s\n",
               specs.size(), suite.c_str(), nsa::ref::to_string(precision), secs,
               specs.size() / secs, rows / secs, row_heads / secs, args.get("--out").c_str());
  return 0;
}

}  // namespace nsa::cli
