// Dot products and sums in fp32 as a kernel model orders them (nsa::ref::KernelModel,
// docs/tolerance.md "Summation orders"). One entry point serves every reduction of the
// dtype-faithful baseline (q·k, P·V, the softmax denominator, the compression mean, phi's
// products) and of any other baseline code (the backward) that reduces in fp32.
#pragma once

#include <cstdint>

#include "nsa/ref/forward.hpp"

namespace nsa::ref::detail {

// out[n] = sum_{k < K} a[k] * b[k * ldb + n] for n < N, the K terms of each output reduced as
// `model` orders them; a == nullptr reduces the plain sums sum_k b[k * ldb + n] (for which the
// tensor-core orders are sequential fp32, as a kernel sums a row outside the MMA). Every
// output is reduced on its own (the outputs are independent), so the result of one element
// does not depend on N.
void reduce_terms(const KernelModel& model, const float* a, const float* b, int64_t K, int64_t N,
                  int64_t ldb, float* out);

}  // namespace nsa::ref::detail
