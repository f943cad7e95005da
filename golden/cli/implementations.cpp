// The two CPU implementations every build has: the reference in double precision and the
// dtype-faithful baseline.
#include "implementations.hpp"

namespace nsa::cli {

namespace {

bool always() { return true; }
std::string supports_all(const nsa::ref::ValidConfig&) { return {}; }

nsa::ref::Outputs run_f64(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in) {
  return nsa::ref::forward(vc, in, nsa::ref::Precision::f64);
}

nsa::ref::Outputs run_baseline(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in) {
  return nsa::ref::forward(vc, in, nsa::ref::Precision::baseline);
}

nsa::ref::Gradients grad_f64(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                             const std::vector<double>& d_o) {
  return nsa::ref::backward(vc, in, d_o, nsa::ref::Precision::f64);
}

nsa::ref::Gradients grad_baseline(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                                  const std::vector<double>& d_o) {
  return nsa::ref::backward(vc, in, d_o, nsa::ref::Precision::baseline);
}

}  // namespace

std::vector<Implementation> reference_implementations() {
  return {{"ref-f64", always, supports_all, run_f64, grad_f64},
          {"ref-baseline", always, supports_all, run_baseline, grad_baseline}};
}

}  // namespace nsa::cli
