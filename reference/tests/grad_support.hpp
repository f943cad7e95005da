// Shared helpers of the gradient tests: the pairing of every differentiable input tensor with its
// gradient, a loss L = <R, o> computed in high precision before any rounding, and central finite
// differences of it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nsa/ref/backward.hpp"
#include "nsa/ref/forward.hpp"
#include "nsa/ref/inputs.hpp"

namespace nsa::test {

// One differentiable input: the vectors of an Inputs perturbed together (several for a shared
// K/V) and the gradient tensor that must equal dL/d(input), laid out like the input.
struct GradPair {
  // What one element belongs to, which bounds the query rows it can change: a query row (q,
  // gates), a key token (k, v: only rows of its sequence from the start of its selection block
  // on), or everything (phi's parameters).
  enum class Unit { row, token, all };
  std::string name;  // gradient name (grad_tensor_names)
  std::function<std::vector<std::vector<double>*>(ref::Inputs&)> inputs;
  const std::vector<double>* grad;
  Unit unit = Unit::all;
  int64_t per_unit = 1;  // elements per row or token
};

// Every input of a config with its gradient: q, each branch's k, v and gate (a disabled branch's
// too: its gradient is 0), the shared K/V (shared_kv), phi's parameters (linear, mlp) and the
// given compressed cache k~, v~ (cmp_given; then K_cmp/V_cmp are not read: their gradient is 0).
// `g` must hold every row and key.
std::vector<GradPair> grad_pairs(const ref::ValidConfig& vc, ref::Inputs& in,
                                 const ref::Gradients& g);

// Central differences of L = <R, o>: (L(x + h e) - L(x - h e)) / 2h for every element e of the
// pair's input, with the forward and L in cpp_bin_float_50 and o never rounded (check_inputs is
// not applied, so x +- h may sit between dtype values; h = 2^-40 keeps x +- h exact in double for
// fp32-valued x).
// `only` (when not empty) restricts the perturbed elements to those distinct flat indices; the
// others' derivative is left 0.
struct FdResult {
  std::vector<double> derivative;  // per element of the pair's input
  std::vector<char> changed;       // per element: its perturbation changed an index list
  int64_t selection_changed = 0;   // elements whose perturbation changed an index list
};
FdResult finite_differences(const ref::ValidConfig& vc, const ref::Inputs& in,
                            const std::vector<double>& r, const GradPair& pair, double h,
                            int threads = 0, const std::vector<int64_t>& only = {});

}  // namespace nsa::test
