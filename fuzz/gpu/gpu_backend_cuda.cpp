#include "gpu_backend.hpp"
#include "nsa/cuda/backward.hpp"
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

std::string gpu_backward_unsupported(const nsa::ref::ValidConfig& vc) {
  return nsa::cuda::backward_unsupported(vc);
}

nsa::ref::Gradients gpu_backward(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                                 const std::vector<double>& d_o, std::vector<int32_t>* indices) {
  return nsa::cuda::backward(vc, in, d_o, {}, indices);
}

}  // namespace nsa::fuzz
