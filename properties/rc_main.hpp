// The suite's fixed default RapidCheck parameters, merged into RC_PARAMS before the first
// property runs: CI gets a fixed seed and a bounded count; RC_PARAMS="seed=N" (and/or
// max_success=N) from the environment overrides either (docs/properties.md, "Running").
#pragma once

namespace nsa::props {

inline constexpr const char* kDefaultSeed = "20261129";
inline constexpr const char* kDefaultMaxSuccess = "1000";

// Sets RC_PARAMS to the user's value plus any default it does not mention.
void set_default_rc_params();

}  // namespace nsa::props
