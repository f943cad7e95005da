// The kernels as the configuration fuzzer sees them. Two implementations: gpu_backend_cuda.cpp
// (nsa::cuda, built when the kernels are) and gpu_backend_none.cpp (no CUDA in this build), so
// `nsa fuzz` exists in every build and its CPU mode runs in CI.
#pragma once

#include <string>

#include "nsa/ref/backward.hpp"
#include "nsa/ref/forward.hpp"

namespace nsa::fuzz {

// Empty when kernels can run here; otherwise why not (not built with CUDA, no device).
std::string gpu_unavailable_reason();
// Name of the device the kernels run on.
std::string gpu_device_name();
// nsa::cuda::unsupported(vc): empty when the kernels take the config.
std::string gpu_unsupported(const nsa::ref::ValidConfig& vc);
// nsa::cuda::forward on every row and head.
nsa::ref::Outputs gpu_forward(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in);
// nsa::cuda::backward_unsupported(vc): empty when the backward takes the config.
std::string gpu_backward_unsupported(const nsa::ref::ValidConfig& vc);
// nsa::cuda::backward on every row and key; `indices` receives the lists it used.
nsa::ref::Gradients gpu_backward(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                                 const std::vector<double>& d_o, std::vector<int32_t>* indices);

}  // namespace nsa::fuzz
