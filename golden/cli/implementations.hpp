// An NSA implementation that `nsa verify` checks against the f128 truth. Each component that has
// one returns it from its CLI library (golden: the reference in f64 and the dtype-faithful
// baseline; kernels: "cuda"), and nsa_main.cpp hands the list to verify_command.
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
  // Why the backward does not support a config (empty = supported), where it supports fewer
  // configs than the forward; nullptr: every config the forward supports.
  std::string (*backward_unsupported)(const nsa::ref::ValidConfig&) = nullptr;
};

// The two CPU implementations every build has: "ref-f64" and "ref-baseline"
// (implementations.cpp).
std::vector<Implementation> reference_implementations();

}  // namespace nsa::cli
