// Shared plumbing of the gradient properties: the upstream gradient of a case, the reference
// backward in double on one thread, every gradient tensor by name, bitwise and toleranced
// comparisons of gradient tensors.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "nsa/ref/backward.hpp"

namespace nsa::props {

using nsa::ref::Gradients;

// dO for a case: seed-derived, in [-1, 1], representable in the dtype (stream `which`).
std::vector<double> grad_output(const ValidConfig& vc, uint64_t seed, uint64_t which = 0);

// The reference backward (threads = 1 unless sel says otherwise).
Gradients run_backward(const ValidConfig& vc, const Inputs& in, const std::vector<double>& d_o,
                       nsa::ref::GradSelection sel = {},
                       nsa::ref::Precision p = nsa::ref::Precision::f64);

// Every tensor of a Gradients with its name (grad_tensor_names' spelling), the disabled
// branches' and the phi parameters' included, in a fixed order.
std::vector<std::pair<std::string, const std::vector<double>*>> all_tensors(const Gradients& g);
std::vector<std::pair<std::string, std::vector<double>*>> all_tensors(Gradients& g);

// Bitwise equality of every tensor; the failure names the tensor and the element.
void expect_same_grads(const std::string& what, const Gradients& a, const Gradients& b);

// |got - want| <= tol * max(magnitude) element by element; the failure names the element.
void expect_close(const std::string& what, const std::vector<double>& got,
                  const std::vector<double>& want, const std::vector<double>& magnitude,
                  double tol);

// Per tensor: |got - want| <= tol * max(magnitude of the tensor); the three hold the same
// tensors (all_tensors order). The failure names the tensor, the element and the bound.
void expect_close_grads(const std::string& what, const Gradients& got, const Gradients& want,
                        const Gradients& magnitude, double tol);

// Every element finite.
void expect_finite_grads(const std::string& what, const Gradients& g);

// The relative tolerance of a double backward against an independent double or long double
// computation (oracle::grad_rel_tol, docs/numerics.md section 3).
double grad_tol(const ValidConfig& vc);

// Forward outputs of a case with all rows, on one thread.
Outputs run_forward(const ValidConfig& vc, const Inputs& in);

// The position of every packed query row (sequence, t).
std::vector<RowPos> row_positions(const ValidConfig& vc);

}  // namespace nsa::props
