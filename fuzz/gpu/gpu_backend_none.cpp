#include <stdexcept>

#include "gpu_backend.hpp"

namespace nsa::fuzz {

std::string gpu_unavailable_reason() {
  return "this nsa was built without the CUDA kernels (no nvcc, or NSA_ENABLE_CUDA=OFF)";
}

std::string gpu_device_name() { return ""; }

std::string gpu_unsupported(const nsa::ref::ValidConfig&) { return "built without CUDA"; }

nsa::ref::Outputs gpu_forward(const nsa::ref::ValidConfig&, const nsa::ref::Inputs&) {
  throw std::logic_error("nsa fuzz: gpu_forward called in a build without CUDA");
}

std::string gpu_backward_unsupported(const nsa::ref::ValidConfig&) { return "built without CUDA"; }

nsa::ref::Gradients gpu_backward(const nsa::ref::ValidConfig&, const nsa::ref::Inputs&,
                                 const std::vector<double>&, std::vector<int32_t>*) {
  throw std::logic_error("nsa fuzz: gpu_backward called in a build without CUDA");
}

}  // namespace nsa::fuzz
