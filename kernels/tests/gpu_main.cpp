// Test main of the GPU tests: Catch lists tests normally (so ctest can discover them on machines
// without a GPU); otherwise, with no CUDA device, the run is reported as skipped (exit 77).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "nsa/cuda/forward.hpp"

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing = listing || std::string(argv[i]).rfind("--list", 0) == 0;
  if (!listing && !nsa::cuda::device_available()) {
    std::puts("no CUDA device: skipping");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
