// Running a property on one case: failures are exceptions carrying a message; the RapidCheck
// wrapper saves the failing config as JSON and prints the one-line repro command.
#pragma once

#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "generators.hpp"

namespace nsa::props {

// A property that does not hold on a case. what() says which check, where and by how much.
class PropertyFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A case that does not meet the property's precondition (only reachable through the repro tool
// with a hand-edited config): reported as a usage error, not as a failure of the code.
class NotApplicable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws PropertyFailure with the streamed message when ok is false.
#define NSA_PROP_CHECK(ok, msg)                                 \
  do {                                                          \
    if (!(ok)) {                                                \
      std::ostringstream nsa_prop_msg_;                         \
      nsa_prop_msg_ << msg;                                     \
      throw ::nsa::props::PropertyFailure(nsa_prop_msg_.str()); \
    }                                                           \
  } while (0)

#define NSA_PROP_REQUIRE(ok, msg)                             \
  do {                                                        \
    if (!(ok)) {                                              \
      std::ostringstream nsa_prop_msg_;                       \
      nsa_prop_msg_ << msg;                                   \
      throw ::nsa::props::NotApplicable(nsa_prop_msg_.str()); \
    }                                                         \
  } while (0)

using PropertyFn = std::function<void(const Case&)>;

struct Property {
  const char* name;
  const char* summary;
  PropertyFn fn;
  bool gpu = false;
};

// Every property the repro tool knows: the CPU ones, plus the GPU ones when built with CUDA.
const std::vector<Property>& all_properties();
const Property* find_property(const std::string& name);

// Runs fn on the case. On failure: writes the config to <failure dir>/<name>-<hash>.json and
// returns a message with the failure, the config (describe), the seed, the regime and the
// command that reproduces exactly this case, which it also writes to <failure dir>/<name>.repro
// (so after a run that file holds the final shrunk case's command). Returns "" on success.
std::string run_case(const std::string& name, const PropertyFn& fn, const Case& c);

// The RapidCheck property of one property: draws cases from gen, runs run_case, fails with its
// message. Use inside a Catch TEST_CASE. An expensive property runs 1/cost of the configured
// case count (max_success of RC_PARAMS, at least one case); the seed is the same.
void check_property(const std::string& name, const rc::Gen<Case>& gen, int cost = 1);

// The repro command line of a saved case.
std::string repro_command(const std::string& name, const std::string& config_file, const Case& c);

}  // namespace nsa::props
