// Named profiles: the knob values of the canonical semantics and of public implementations.
// docs/semantics.md lists each value and where it was taken from.
#pragma once

#include <string>

#include "nsa/ref/config.hpp"

namespace nsa::ref {

// Checks that cfg's knobs are those of cfg.profile ("custom" accepts any); throws ConfigError
// naming the first knob that differs.
void validate_profile(const Config& cfg);

}  // namespace nsa::ref
