// The per-tensor part of the tolerance rule (docs/tolerance.md), shared by the forward's
// comparator (compare.cpp) and the gradients' (compare_grad.cpp).
#pragma once

#include <string>
#include <vector>

#include "nsa/ref/compare.hpp"

namespace nsa::ref::detail {

double max_abs_finite(const std::vector<double>& x);
// max |a - b| over elements where b (truth) is finite.
double max_err(const std::vector<double>& a, const std::vector<double>& b);
// One tensor of each baseline run.
using BaselineTensors = std::vector<const std::vector<double>*>;
// One tensor against truth, with the bound alpha * (largest max|base - truth| over the baseline
// runs) + beta * ulp_dtype(max|truth|) and the structural rules (NaN, Inf, -inf placement). An
// empty candidate is "not checked".
TensorVerdict check_tensor(const std::string& name, const std::vector<double>& truth,
                           const BaselineTensors& bases, const std::vector<double>& cand,
                           Dtype dtype, const Tolerance& tol);

}  // namespace nsa::ref::detail
