// The failure path of the suite: save, describe, and say how to re-run.
#include "harness.hpp"

#include <filesystem>
#include <fstream>
#include <functional>

#include "nsa/ref/config_json.hpp"

#ifndef NSA_PROPS_FAILURE_DIR
#define NSA_PROPS_FAILURE_DIR "."
#endif
#ifndef NSA_PROPS_REPRO
#define NSA_PROPS_REPRO "nsa_props_repro"
#endif

namespace nsa::props {

const Property* find_property(const std::string& name) {
  for (const auto& p : all_properties())
    if (name == p.name) return &p;
  return nullptr;
}

std::string repro_command(const std::string& name, const std::string& config_file, const Case& c) {
  return std::string(NSA_PROPS_REPRO) + " --property " + name + " --config " + config_file +
         " --seed " + std::to_string(c.seed) + " --regime " + nsa::ref::to_string(c.regime);
}

namespace {

// Writes the config; returns the path, or a note when the file cannot be written.
std::string save_config(const std::string& name, const Case& c) {
  const std::string json = nsa::ref::config_to_json(c.cfg);
  const auto h =
      std::hash<std::string>{}(json + std::to_string(c.seed) + nsa::ref::to_string(c.regime));
  std::filesystem::path dir(NSA_PROPS_FAILURE_DIR);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const auto path = dir / (name + "-" + std::to_string(h % 1000000007) + ".json");
  std::ofstream out(path);
  out << json << "\n";
  if (!out) return "<could not write " + path.string() + ">";
  return path.string();
}

}  // namespace

std::string run_case(const std::string& name, const PropertyFn& fn, const Case& c) {
  std::string what;
  try {
    fn(c);
    return "";
  } catch (const PropertyFailure& e) {
    what = e.what();
  } catch (const std::exception& e) {
    what = std::string("unexpected exception: ") + e.what();
  }
  const std::string file = save_config(name, c);
  // The last failing case of a run is RapidCheck's final (shrunk) counterexample: its command,
  // unwrapped, in <failure dir>/<name>.repro.
  std::ofstream(std::filesystem::path(NSA_PROPS_FAILURE_DIR) / (name + ".repro"))
      << repro_command(name, file, c) << "\n";
  std::ostringstream msg;
  msg << "property '" << name << "' failed: " << what << "\n  config: " << nsa::ref::describe(c.cfg)
      << "\n  seed=" << c.seed << " regime=" << nsa::ref::to_string(c.regime)
      << "\n  repro: " << repro_command(name, file, c);
  return msg.str();
}

}  // namespace nsa::props
