// Registers the CUDA kernels as implementation "cuda" for `nsa verify`.
#include "implementations.hpp"
#include "nsa/cuda/forward.hpp"

namespace {

bool cuda_available() { return nsa::cuda::device_available(); }

nsa::ref::Outputs cuda_run(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in) {
  nsa::cuda::Options opt;
  opt.keep_scores = false;
  return nsa::cuda::forward(vc, in, opt);
}

}  // namespace

NSA_REGISTER_IMPLEMENTATION("cuda", cuda_available, nsa::cuda::unsupported, cuda_run);
