// nsa_props_repro: re-runs one property on exactly one saved case.
//   nsa_props_repro --property NAME --config FILE --seed S [--regime R]
//   nsa_props_repro --list
// Exit 0: the property holds; 1: it fails (the message says how); 2: bad arguments.
#include <cstdint>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "harness.hpp"
#include "nsa/ref/config_json.hpp"

namespace {

int usage(const std::string& why) {
  std::cerr << "nsa_props_repro: " << why
            << "\nusage: nsa_props_repro --property NAME --config FILE --seed S [--regime R]"
               "\n       nsa_props_repro --list\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace nsa::props;
  std::string property, config_file, seed_text, regime_text = "typical";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--list") {
      for (const auto& p : all_properties())
        std::cout << p.name << (p.gpu ? " [gpu]" : "") << "  " << p.summary << "\n";
      return 0;
    }
    if (i + 1 >= argc) return usage("argument " + arg + " needs a value");
    const std::string value = argv[++i];
    if (arg == "--property")
      property = value;
    else if (arg == "--config")
      config_file = value;
    else if (arg == "--seed")
      seed_text = value;
    else if (arg == "--regime")
      regime_text = value;
    else
      return usage("unknown argument " + arg);
  }
  if (property.empty() || config_file.empty() || seed_text.empty())
    return usage("--property, --config and --seed are required");
  const Property* p = find_property(property);
  if (!p) return usage("unknown property '" + property + "' (see --list)");
  Case c;
  try {
    std::size_t used = 0;
    c.seed = std::stoull(seed_text, &used);
    if (used != seed_text.size()) throw std::invalid_argument("trailing characters");
  } catch (const std::exception&) {
    return usage("--seed " + seed_text + " is not an unsigned integer");
  }
  if (!nsa::ref::parse_regime(regime_text, c.regime))
    return usage("--regime " + regime_text + " is not one of typical|peaked|ties|extreme");
  std::ifstream file(config_file);
  if (!file) return usage("cannot read --config " + config_file);
  std::stringstream text;
  text << file.rdbuf();
  try {
    c.cfg = nsa::ref::config_from_json(text.str());
    nsa::ref::validate(c.cfg);
  } catch (const std::exception& e) {
    return usage(std::string("--config ") + config_file + ": " + e.what());
  }
  std::cout << "case: " << nsa::ref::describe(c.cfg) << "\n  seed=" << c.seed
            << " regime=" << nsa::ref::to_string(c.regime) << "\n";
  try {
    p->fn(c);
  } catch (const NotApplicable& e) {
    return usage(std::string("the case does not meet the property's precondition: ") + e.what());
  } catch (const PropertyFailure& e) {
    std::cout << "FAIL " << property << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cout << "FAIL " << property << ": unexpected exception: " << e.what() << "\n";
    return 1;
  }
  std::cout << "PASS " << property << "\n";
  return 0;
}
