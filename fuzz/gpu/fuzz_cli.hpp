// What fuzz/ adds to the `nsa` program (library nsa_fuzz_cli, linked by golden/'s nsa_main.cpp):
// `nsa fuzz`, the configuration fuzzer (docs/fuzzing.md). It exists in every build: --cpu runs
// without CUDA; --gpu needs the kernels and a device, else it exits 77 saying so.
#pragma once

#include "command.hpp"

namespace nsa::cli {

Command fuzz_command();

}  // namespace nsa::cli
