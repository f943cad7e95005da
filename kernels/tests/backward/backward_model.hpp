// The host model of the CUDA backward: the kernels' work items (src/backward_items.hpp) run in
// plain loops on the CPU over double storage, with the same index construction and roundings, so
// CI checks the kernels' algorithm against the reference without a GPU.
#pragma once

#include <cstdint>
#include <vector>

#include "nsa/ref/backward.hpp"

namespace nsa::cuda::test {

// The gradients as the CUDA backward computes them for the index lists idx ([total_q, h_kv, n];
// ignored when the selection branch is off), each rounded once to the dtype.
nsa::ref::Gradients model_backward(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                                   const std::vector<double>& d_o, const std::vector<int32_t>& idx);

}  // namespace nsa::cuda::test
