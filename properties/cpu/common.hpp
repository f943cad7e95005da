// Shared plumbing of the CPU properties: build inputs for a case, run the reference in double on
// one thread (ctest runs two executables side by side on two cores), compare tensors.
#pragma once

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

// The selection-branch gate: the properties about top-n need computed (not given) indices.
bool computes_top_n(const nsa::ref::Config& c);

}  // namespace nsa::props
