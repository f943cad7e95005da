// What the judge's tests expect of the tolerance rule, computed from docs/tolerance.md and
// golden/SCHEMA.md and not from compare.cpp: the ulp of each dtype, the baseline error, the bound,
// and the values just outside and just inside a bound. The comparator's tests (reference/tests)
// and `nsa golden check`'s tests (golden/tests) share it.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "nsa/ref/forward.hpp"

namespace nsa::judge_oracle {

// ulp_τ(x) = 2^(max(⌊log2 |x|⌋, e_min) − p), (p, e_min) per dtype; at 0 the subnormal spacing.
// The exponent is found by halving and doubling a power of two, not with ilogb/frexp.
inline double spacing(double x, ref::Dtype dt) {
  int p = 52, e_min = -1022;
  switch (dt) {
    case ref::Dtype::f32:
      p = 23, e_min = -126;
      break;
    case ref::Dtype::f16:
      p = 10, e_min = -14;
      break;
    case ref::Dtype::bf16:
      p = 7, e_min = -126;
      break;
    case ref::Dtype::f64:
      break;
  }
  const double a = std::abs(x);
  int e = e_min;
  if (a > 0 && std::isfinite(a)) {
    double pow2 = 1.0;
    e = 0;
    while (pow2 > a) pow2 /= 2, --e;
    while (pow2 * 2 <= a) pow2 *= 2, ++e;
    if (e < e_min) e = e_min;
  }
  return std::ldexp(1.0, e - p);
}

// The baseline error of the rule: max |X_b − X*| over the elements where both are finite. Every
// test derives the baseline error here, from the baseline's own outputs (or reads the stored
// attribute `baseline_max_abs_err`), never from a verdict.
inline double baseline_error(const std::vector<double>& base, const std::vector<double>& truth) {
  if (base.size() != truth.size()) throw std::invalid_argument("baseline_error: sizes differ");
  double m = 0;
  for (std::size_t i = 0; i < truth.size(); ++i)
    if (std::isfinite(truth[i]) && std::isfinite(base[i]))
      m = std::max(m, std::abs(base[i] - truth[i]));
  return m;
}

inline double max_abs_finite(const std::vector<double>& x) {
  double m = 0;
  for (double v : x)
    if (std::isfinite(v)) m = std::max(m, std::abs(v));
  return m;
}

// α · e_b + β · ulp_τ(max |X*|).
inline double bound(double alpha, double beta, double baseline_err, double max_truth,
                    ref::Dtype ulp_dtype) {
  return alpha * baseline_err + beta * spacing(max_truth, ulp_dtype);
}

// The double nearest to t + b whose distance |x − t| (as the judge computes it) is just above b
// (outside) or at most b (inside).
inline double just_outside(double t, double b) {
  double x = t + b;
  while (!(std::abs(x - t) > b)) x = std::nextafter(x, std::numeric_limits<double>::infinity());
  return x;
}
inline double just_inside(double t, double b) {
  double x = t + b;
  while (std::abs(x - t) > b) x = std::nextafter(x, -std::numeric_limits<double>::infinity());
  return x;
}

// The ulp dtype of a candidate tensor: the case dtype for o tensors, fp32 for lse whatever the
// case dtype (docs/tolerance.md).
inline ref::Dtype ulp_dtype_of(const std::string& tensor, ref::Dtype case_dtype) {
  return tensor.rfind("lse_", 0) == 0 ? ref::Dtype::f32 : case_dtype;
}

// A named output tensor of Outputs ("o_cmp", "lse_win", "o", ...).
inline std::vector<double>& tensor_of(ref::Outputs& o, const std::string& name) {
  const char* branches[] = {"cmp", "slc", "win"};
  for (int b = 0; b < 3; ++b) {
    if (name == std::string("o_") + branches[b]) return o.o_branch[b];
    if (name == std::string("lse_") + branches[b]) return o.lse[b];
  }
  if (name == "o") return o.o;
  throw std::invalid_argument("tensor_of: unknown tensor " + name);
}
inline const std::vector<double>& tensor_of(const ref::Outputs& o, const std::string& name) {
  return tensor_of(const_cast<ref::Outputs&>(o), name);
}

inline const std::vector<std::string>& output_tensors() {
  static const std::vector<std::string> names = {"o_cmp", "lse_cmp", "o_slc", "lse_slc",
                                                 "o_win", "lse_win", "o"};
  return names;
}

}  // namespace nsa::judge_oracle
