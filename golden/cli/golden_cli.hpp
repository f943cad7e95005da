// The commands of golden/'s CLI library (nsa_golden_cli) for the `nsa` program (nsa_main.cpp).
#pragma once

#include <vector>

#include "command.hpp"
#include "implementations.hpp"

namespace nsa::cli {

// `nsa golden generate|check|inspect|diff` (golden_cmd.cpp).
Command golden_command();
// `nsa verify`: checks each of `implementations` that is available here against the f128 truth
// of a suite (verify_cmd.cpp).
Command verify_command(std::vector<Implementation> implementations);

}  // namespace nsa::cli
