#include "rc_main.hpp"

#include <cstdlib>
#include <string>

namespace nsa::props {

void set_default_rc_params() {
  const char* env = std::getenv("RC_PARAMS");
  std::string params = env ? env : "";
  if (params.find("seed=") == std::string::npos)
    params += std::string(params.empty() ? "" : " ") + "seed=" + kDefaultSeed;
  if (params.find("max_success=") == std::string::npos)
    params += std::string(" max_success=") + kDefaultMaxSuccess;
  setenv("RC_PARAMS", params.c_str(), 1);
}

}  // namespace nsa::props
