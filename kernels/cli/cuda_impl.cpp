// The CUDA kernels as implementation "cuda" of `nsa verify`.
#include "cuda_cli.hpp"
#include "nsa/cuda/forward.hpp"

namespace nsa::cli {
namespace {

bool cuda_available() { return nsa::cuda::device_available(); }

nsa::ref::Outputs cuda_run(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in) {
  nsa::cuda::Options opt;
  opt.keep_scores = false;
  return nsa::cuda::forward(vc, in, opt);
}

}  // namespace

Implementation cuda_implementation() {
  return {"cuda", cuda_available, nsa::cuda::unsupported, cuda_run};
}

}  // namespace nsa::cli
