// Config files: a JSON object whose keys are the Config field names (docs/config-format.md).
// Parsing never crashes on any byte string: it returns a config or throws ConfigError naming
// the field (or the JSON position) and what was expected. Unknown keys are errors.
#pragma once

#include <string>
#include <string_view>

#include "nsa/ref/config.hpp"

namespace nsa::ref {

// Parses a config file's text. A "profile" key is applied first (its knobs become the
// defaults), then every other key overrides. Does not call validate().
Config config_from_json(std::string_view text);
// Writes every field, so that config_from_json(config_to_json(c)) == c.
std::string config_to_json(const Config& cfg);

}  // namespace nsa::ref
