#include "gpu_backend.hpp"
#include "nsa/cuda/forward.hpp"

namespace nsa::fuzz {

std::string gpu_unavailable_reason() {
  return nsa::cuda::device_available() ? "" : "no CUDA device is available";
}

std::string gpu_device_name() { return nsa::cuda::device_name(); }

std::string gpu_unsupported(const nsa::ref::ValidConfig& vc) { return nsa::cuda::unsupported(vc); }

nsa::ref::Outputs gpu_forward(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in) {
  return nsa::cuda::forward(vc, in);
}

}  // namespace nsa::fuzz
