// The host API when the project is built without a CUDA compiler: no device is ever available,
// so the GPU tests compile everywhere and report themselves as skipped (exit 77), and the CLI
// commands say why they cannot run.
#include <string>

#include "nsa/cuda/backward.hpp"
#include "nsa/cuda/forward.hpp"

namespace nsa::cuda {

namespace {
const char* const kWhy = "nsa::cuda: this build has no CUDA kernels (no nvcc at configure time)";
}

bool device_available() noexcept { return false; }
std::string device_name() { return ""; }
std::string unsupported(const nsa::ref::ValidConfig&) { return kWhy; }
nsa::ref::Outputs forward(const nsa::ref::ValidConfig&, const nsa::ref::Inputs&, const Options&) {
  throw CudaError(kWhy);
}

std::string backward_unsupported(const nsa::ref::ValidConfig&) { return kWhy; }
nsa::ref::Gradients backward(const nsa::ref::ValidConfig&, const nsa::ref::Inputs&,
                             const std::vector<double>&, const BackwardOptions&,
                             std::vector<int32_t>*) {
  throw CudaError(kWhy);
}
std::size_t backward_scratch_bytes(const nsa::ref::ValidConfig&) { throw CudaError(kWhy); }

struct Plan::Impl {};
Plan::Plan(const nsa::ref::ValidConfig&) : impl_(nullptr) { throw CudaError(kWhy); }
Plan::~Plan() { delete impl_; }
void Plan::run(const DeviceInputs&, const DeviceOutputs&, BranchTimes*) { throw CudaError(kWhy); }
std::vector<float> Plan::graph_replay_ms(const DeviceInputs&, const DeviceOutputs&, int, int) {
  throw CudaError(kWhy);
}
const nsa::ref::ValidConfig& Plan::config() const { throw CudaError(kWhy); }

void fill_uniform(void*, int64_t, nsa::ref::Dtype, uint64_t, float, float) {
  throw CudaError(kWhy);
}
void* device_alloc(std::size_t) { throw CudaError(kWhy); }
void device_free(void*) noexcept {}
std::size_t dtype_bytes(nsa::ref::Dtype d) {
  return d == nsa::ref::Dtype::f32 ? 4 : d == nsa::ref::Dtype::f64 ? 8 : 2;
}

}  // namespace nsa::cuda
