// Shared plumbing of the CPU properties: build inputs for a case, run the reference in double on
// one thread (ctest runs two executables side by side on two cores), compare tensors.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "../generators.hpp"
#include "../harness.hpp"
#include "../oracle.hpp"
#include "nsa/ref/forward.hpp"

namespace nsa::props {

struct Prepared {
  ValidConfig vc;
  Inputs in;
};
Prepared prepare(const Case& c);

// Sequence s of a prepared case on its own: a padded batch of one with its t_k and t_q, and
// its rows of every input (index lists included).
Prepared sequence_alone(const Prepared& p, std::size_t s);

Outputs run(const ValidConfig& vc, const Inputs& in,
            nsa::ref::Precision p = nsa::ref::Precision::f64, nsa::ref::RowSelection sel = {});

// "row 3 (seq 0, t 7) head 1" for per-head tensors [rows, heads, width].
std::string where(const ValidConfig& vc, const Outputs& out, int64_t flat, int64_t heads,
                  int64_t width);

// Bitwise equality (== with NaN equal to NaN); failure names the tensor and element.
void expect_same(const std::string& what, const std::vector<double>& a,
                 const std::vector<double>& b);
void expect_same(const std::string& what, const std::vector<int32_t>& a,
                 const std::vector<int32_t>& b);

// Every per-head output and index tensor of two runs over the same rows and heads, bitwise.
void expect_same_outputs(const std::string& what, const Outputs& a, const Outputs& b);

// Rows [r0, r1) of a [rows, per_row] tensor (empty stays empty).
template <class T>
std::vector<T> slice_rows(const std::vector<T>& x, int64_t r0, int64_t r1, int64_t per_row) {
  if (x.empty()) return {};
  return std::vector<T>(x.begin() + r0 * per_row, x.begin() + r1 * per_row);
}

// A seed-derived permutation of n elements.
std::vector<int64_t> permutation(uint64_t seed, uint64_t stream, int64_t n);

// y[outer, i, rest] = x[outer, perm(i), rest] for a tensor [outer, n, inner].
template <class T>
std::vector<T> permute_axis(const std::vector<T>& x, int64_t n, int64_t inner,
                            const std::vector<int64_t>& perm) {
  if (x.empty()) return x;
  std::vector<T> y(x.size());
  const int64_t outer = static_cast<int64_t>(x.size()) / (n * inner);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(x.begin() + (o * n + perm[i]) * inner, inner, y.begin() + (o * n + i) * inner);
  return y;
}

// The selection-branch gate: the properties about top-n need computed (not given) indices.
bool computes_top_n(const nsa::ref::Config& c);

}  // namespace nsa::props
