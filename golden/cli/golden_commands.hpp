// The subcommands of `nsa golden`, one file each.
#pragma once

#include <string>
#include <vector>

namespace nsa::cli {

int golden_generate(const std::vector<std::string>& args);
int golden_check(const std::vector<std::string>& args);
int golden_inspect(const std::vector<std::string>& args);
int golden_diff(const std::vector<std::string>& args);

}  // namespace nsa::cli
