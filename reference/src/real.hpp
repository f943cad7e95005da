// The real types the reference is instantiated for, and the rounding policy that turns the one
// code path into either the exact reference or the dtype-faithful baseline.
#pragma once

#include <Eigen/Dense>
#include <boost/multiprecision/cpp_bin_float.hpp>
#include <boost/multiprecision/eigen.hpp>
#include <boost/multiprecision/float128.hpp>
#include <cmath>
#include <limits>

#include "nsa/ref/inputs.hpp"
#include "nsa/ref/knobs.hpp"

namespace nsa::ref::detail {

using Quad = boost::multiprecision::float128;
using Bin50 = boost::multiprecision::cpp_bin_float_50;

template <class Real>
using Mat = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class Real>
using Vec = Eigen::Matrix<Real, Eigen::Dynamic, 1>;

// Storage rounding. The exact reference never rounds; the baseline rounds every value a typical
// GPU kernel stores in the input dtype (compressed K/V, P before P·V, outputs) to that dtype.
struct Exact {
  Dtype dtype;
  template <class Real>
  Real store(const Real& x) const {
    return x;
  }
};

struct DtypeFaithful {
  Dtype dtype;
  float store(float x) const { return static_cast<float>(round_to(static_cast<double>(x), dtype)); }
};

template <class Real>
Real from_double(double x) {
  return Real(x);
}

template <class Real>
double to_double(const Real& x) {
  return static_cast<double>(x);
}

template <class Real>
Real neg_inf() {
  return -std::numeric_limits<Real>::infinity();
}

}  // namespace nsa::ref::detail
