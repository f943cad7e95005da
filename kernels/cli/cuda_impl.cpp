// The CUDA kernels as implementation "cuda" of `nsa verify`: the forward and the backward.
#include "cuda_cli.hpp"
#include "nsa/cuda/backward.hpp"
#include "nsa/cuda/forward.hpp"

namespace nsa::cli {
namespace {

bool cuda_available() { return nsa::cuda::device_available(); }

nsa::ref::Outputs cuda_run(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in) {
  nsa::cuda::Options opt;
  opt.keep_scores = false;
  return nsa::cuda::forward(vc, in, opt);
}

nsa::ref::Gradients cuda_backward(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                                  const std::vector<double>& d_o) {
  return nsa::cuda::backward(vc, in, d_o);
}

}  // namespace

Implementation cuda_implementation() {
  return {"cuda",   cuda_available, nsa::cuda::unsupported,
          cuda_run, cuda_backward,  nsa::cuda::backward_unsupported};
}

}  // namespace nsa::cli
