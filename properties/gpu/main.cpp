// The GPU property executable. Listing works everywhere (ctest discovery on CPU-only machines);
// a run without a CUDA device prints a notice and exits 77, which ctest reports as skipped.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "../rc_main.hpp"
#include "nsa/cuda/forward.hpp"

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing = listing || std::string(argv[i]).rfind("--list", 0) == 0;
  if (!listing && !nsa::cuda::device_available()) {
    std::puts("no CUDA device: skipping");
    return 77;
  }
  nsa::props::set_default_rc_params();
  return Catch::Session().run(argc, argv);
}
