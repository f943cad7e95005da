// The implementation registry, and the two CPU implementations every build has: the reference in
// double precision and the dtype-faithful baseline.
#include "implementations.hpp"

namespace nsa::cli {

namespace {

std::vector<Implementation>& registry() {
  static std::vector<Implementation> list;
  return list;
}

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

bool register_implementation(const Implementation& impl) {
  registry().push_back(impl);
  return true;
}

const std::vector<Implementation>& implementations() { return registry(); }

}  // namespace nsa::cli

NSA_REGISTER_IMPLEMENTATION("ref-f64", nsa::cli::always, nsa::cli::supports_all, nsa::cli::run_f64,
                            nsa::cli::grad_f64);
NSA_REGISTER_IMPLEMENTATION("ref-baseline", nsa::cli::always, nsa::cli::supports_all,
                            nsa::cli::run_baseline, nsa::cli::grad_baseline);
