// Registry of NSA implementations that `nsa verify` checks against the f128 truth. Each
// component registers its own from its own source file with NSA_REGISTER_IMPLEMENTATION
// (golden: the reference in f64 and the dtype-faithful baseline; kernels: "cuda").
#pragma once

#include <string>
#include <vector>

#include "nsa/ref/backward.hpp"
#include "nsa/ref/forward.hpp"

namespace nsa::cli {

struct Implementation {
  const char* name;
  // Whether it can run here at all (e.g. a CUDA device is present).
  bool (*available)();
  // Why a config is not supported; empty = supported.
  std::string (*unsupported)(const nsa::ref::ValidConfig&);
  // All rows and heads of the forward, as nsa::ref::forward returns them (tensors it does not
  // produce stay empty and are reported as not checked).
  nsa::ref::Outputs (*run)(const nsa::ref::ValidConfig&, const nsa::ref::Inputs&);
  // Every gradient of every row and key for the upstream gradient dO (as nsa::ref::backward
  // returns them), or nullptr where the implementation has no backward.
  nsa::ref::Gradients (*backward)(const nsa::ref::ValidConfig&, const nsa::ref::Inputs&,
                                  const std::vector<double>& d_o) = nullptr;
};

bool register_implementation(const Implementation& impl);
const std::vector<Implementation>& implementations();

}  // namespace nsa::cli

#define NSA_IMPL_CONCAT_(a, b) a##b
#define NSA_IMPL_CONCAT(a, b) NSA_IMPL_CONCAT_(a, b)
#define NSA_REGISTER_IMPLEMENTATION(...)                              \
  static const bool NSA_IMPL_CONCAT(nsa_impl_registered_, __LINE__) = \
      ::nsa::cli::register_implementation({__VA_ARGS__})
