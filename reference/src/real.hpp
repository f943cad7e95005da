// The real types the reference is instantiated for, and the arithmetic policy that turns the one
// code path into either the exact reference or the dtype-faithful baseline.
#pragma once

#include <Eigen/Dense>
#include <boost/multiprecision/cpp_bin_float.hpp>
#include <boost/multiprecision/eigen.hpp>
#include <boost/multiprecision/float128.hpp>
#include <cmath>
#include <limits>

#include "nsa/ref/forward.hpp"
#include "nsa/ref/inputs.hpp"
#include "nsa/ref/knobs.hpp"
#include "sum_order.hpp"

namespace nsa::ref::detail {

using Quad = boost::multiprecision::float128;
using Bin50 = boost::multiprecision::cpp_bin_float_50;

template <class Real>
using Mat = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class Real>
using Vec = Eigen::Matrix<Real, Eigen::Dynamic, 1>;

// The arithmetic policy of the one code path: how values are stored and how dot products and
// sums are reduced. Every product of matrices and every sum over keys, tokens or features goes
// through mul / mul_nt / sum / colsum, so that one policy object decides the whole arithmetic.
//
// The exact reference never rounds and reduces with Eigen (fast GEMM; in a >= 113-bit type its
// order does not matter).
struct Exact {
  Dtype dtype;
  template <class Real>
  Real store(const Real& x) const {
    return x;
  }
  // a * b and a * b^T.
  template <class A, class B>
  Mat<typename A::Scalar> mul(const Eigen::MatrixBase<A>& a, const Eigen::MatrixBase<B>& b) const {
    return a * b;
  }
  template <class A, class B>
  Mat<typename A::Scalar> mul_nt(const Eigen::MatrixBase<A>& a,
                                 const Eigen::MatrixBase<B>& b) const {
    return a * b.transpose();
  }
  // The sum of a row, term after term; the column sums of a matrix.
  template <class R>
  typename R::Scalar sum(const Eigen::MatrixBase<R>& row) const {
    typename R::Scalar acc(0);
    for (Eigen::Index j = 0; j < row.size(); ++j) acc += row(j);
    return acc;
  }
  template <class X>
  Mat<typename X::Scalar> colsum(const Eigen::MatrixBase<X>& x) const {
    return x.colwise().sum();
  }
};

// The dtype-faithful baseline (Real = float): rounds every value a typical GPU kernel stores in
// the input dtype (compressed K/V, P before P·V, outputs) to that dtype, and reduces every dot
// product and sum in fp32 in the order of its kernel model (sum_order.hpp). A backward
// baseline uses the same members for its products (dP = dO V^T, dq = dS K, dk = dS^T q, ...).
struct DtypeFaithful {
  Dtype dtype;
  KernelModel model;
  float store(float x) const { return static_cast<float>(round_to(static_cast<double>(x), dtype)); }
  template <class A, class B>
  Mat<float> mul(const Eigen::MatrixBase<A>& a, const Eigen::MatrixBase<B>& b) const {
    const Mat<float> rhs = b;  // K x N, row-major: term k of output n at rhs(k, n)
    return reduce_rows(a, rhs);
  }
  template <class A, class B>
  Mat<float> mul_nt(const Eigen::MatrixBase<A>& a, const Eigen::MatrixBase<B>& b) const {
    const Mat<float> rhs = b.transpose();
    return reduce_rows(a, rhs);
  }
  template <class R>
  float sum(const Eigen::MatrixBase<R>& row) const {
    Vec<float> x(row.size());
    for (Eigen::Index j = 0; j < row.size(); ++j) x(j) = row(j);
    float out = 0;
    reduce_terms(model, nullptr, x.data(), x.size(), 1, 1, &out);
    return out;
  }
  template <class X>
  Mat<float> colsum(const Eigen::MatrixBase<X>& x) const {
    const Mat<float> m = x;
    Mat<float> out(1, m.cols());
    reduce_terms(model, nullptr, m.data(), m.rows(), m.cols(), m.cols(), out.data());
    return out;
  }

 private:
  template <class A>
  Mat<float> reduce_rows(const Eigen::MatrixBase<A>& a, const Mat<float>& rhs) const {
    const Mat<float> lhs = a;
    Mat<float> out(lhs.rows(), rhs.cols());
    for (Eigen::Index r = 0; r < lhs.rows(); ++r)
      reduce_terms(model, lhs.row(r).data(), rhs.data(), rhs.rows(), rhs.cols(), rhs.cols(),
                   out.row(r).data());
    return out;
  }
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
