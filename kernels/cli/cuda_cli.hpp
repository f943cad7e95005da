// What kernels/ adds to the `nsa` program (library nsa_cuda_cli, linked by golden/'s nsa_main.cpp):
// the CUDA forward as implementation "cuda" of `nsa verify`, and `nsa bench`. In a build without
// nvcc both exist and say why they cannot run (the nsa_cuda stub).
#pragma once

#include "command.hpp"
#include "implementations.hpp"

namespace nsa::cli {

// "cuda": available where a CUDA device is (cuda_impl.cpp).
Implementation cuda_implementation();
// `nsa bench` (kernels/bench/cmd_bench.cpp, docs/benchmarks.md).
Command bench_command();

}  // namespace nsa::cli
