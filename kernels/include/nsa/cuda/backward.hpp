// Host API of the CUDA NSA backward (docs/kernels.md, "Backward"). No CUDA headers here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nsa/cuda/forward.hpp"
#include "nsa/ref/backward.hpp"

namespace nsa::cuda {

// Empty when the backward supports the config, otherwise the reason: the forward's reasons
// (unsupported()); every phi (mean, linear, mlp) has its backward.
std::string backward_unsupported(const nsa::ref::ValidConfig& vc);

// Device time of one backward call's stages in ms (CUDA events on its stream; uploads,
// allocation and downloads excluded). `forward` is the CUDA forward run for computed index lists
// (0 with given lists), `keys[b]` the key side of branch b (cmp, slc, win), `phi` the linear /
// mlp backward, `finish` the token gradients; `backward` is the sum of the backward's stages
// (compress .. finish), i.e. without the forward.
// `dq[b]` is branch b's share of dq inside `query` (tensor-core path; 0 on the fp64 kernels).
struct BackwardTimes {
  float forward = 0, compress = 0, query = 0, index = 0, keys[3] = {0, 0, 0}, phi = 0, finish = 0;
  float backward = 0;
  float dq[3] = {0, 0, 0};
};

struct BackwardOptions {
  // As Options::validate_indices: check a given list under the strict policy first (the
  // kernels apply the policy safely whatever the list holds).
  bool validate_indices = true;
  // When set, receives the stages' device times (nsa bench --backward).
  BackwardTimes* times = nullptr;
};

// The whole backward on the GPU for all rows and keys and the upstream gradient d_o
// ([total_q, h_q, d_v], case dtype): the gradients of nsa::ref::backward, each rounded once to
// the case dtype and widened to double (rows and keys: all, in order; a disabled branch's
// tensors exactly 0; dk_shared/dv_shared with shared_kv; phi's parameter gradients for linear /
// mlp with the compression branch on). The CUDA forward runs first where the backward needs it:
// for computed index lists, and on the tensor-core path (fp16 / bf16) also for each branch's
// stored output and fp32 lse (docs/kernels.md); `indices`, when given, receives the lists the
// gradients were taken over
// ([total_q, h_kv, top_n]; the given ones with given_indices). Throws std::invalid_argument
// for an unsupported config or bad inputs / d_o (naming the tensor, the element and the rule),
// CudaError for CUDA errors.
nsa::ref::Gradients backward(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                             const std::vector<double>& d_o, const BackwardOptions& opt = {},
                             std::vector<int32_t>* indices = nullptr);

// Device scratch bytes of one backward call for the config (docs/kernels.md states the formula):
// the fp64 row statistics and accumulators, phi's block gradients and the selection index; the
// forward run for computed indices and the uploaded tensors come on top.
std::size_t backward_scratch_bytes(const nsa::ref::ValidConfig& vc);

}  // namespace nsa::cuda
