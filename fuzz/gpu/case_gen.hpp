// Random NSA cases for the configuration fuzzer (`nsa fuzz`, docs/fuzzing.md): valid configs
// biased toward edges (sequence lengths at block boundaries and below l, G = 1 and large G, n
// beyond the block count, w = 1, the paper's head dims, fp16/bf16 extremes, varlen batches with
// empty sequences) and, for given-index configs, adversarial index lists under multiset.
// Case k of run seed S depends only on (S, k), so `nsa fuzz --seed S --case K` redraws it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nsa/ref/config.hpp"
#include "nsa/ref/generate.hpp"
#include "nsa/ref/inputs.hpp"

namespace nsa::fuzz {

struct DrawLimits {
  int64_t max_tokens = 2112;   // longest key sequence
  int64_t max_head_dim = 256;  // d_k, d_v
  int64_t max_group = 64;      // G
  bool allow_fp64 = false;     // the kernels take fp16/bf16/fp32 only
};

// Limits of the GPU mode and of the CPU mode (f64 reference against f128 truth, much slower).
DrawLimits gpu_limits();
DrawLimits cpu_limits();

struct FuzzCase {
  uint64_t run_seed = 0;
  int64_t index = 0;
  uint64_t input_seed = 0;
  nsa::ref::Config cfg;  // as drawn (what a config file would hold)
  nsa::ref::ValidConfig vc;
  nsa::ref::Regime regime = nsa::ref::Regime::typical;
  bool adversarial_indices = false;  // given_indices under multiset, generate_indices(.., true)
  int attempts = 1;                  // draws until one was accepted
};

// Draws case `index` of run `run_seed`: the first draw that validates and that `accept` takes
// (e.g. nsa::cuda::unsupported(vc) == ""); gives up after 64 draws (throws std::runtime_error).
FuzzCase draw_case(uint64_t run_seed, int64_t index, const DrawLimits& limits,
                   const std::function<bool(const nsa::ref::ValidConfig&)>& accept);

// The case's inputs: generate_inputs(vc, input_seed, regime), with the adversarial index list
// replacing the generated one where the case asks for it.
nsa::ref::Inputs case_inputs(const FuzzCase& fc);

// Query rows the check covers: all rows of short batches; otherwise every sequence's first and
// last rows, rows at and around selection/compression block boundaries, and a seeded sample,
// at most `max_rows` in all, ascending.
std::vector<int64_t> check_rows(const FuzzCase& fc, int64_t max_rows);

// Key tokens whose gradients the backward check covers (--backward): all keys of short batches;
// otherwise every sequence's first and last keys, keys at and around compression, selection and
// window edges, and a seeded sample, at most `max_keys` in all, ascending.
std::vector<int64_t> check_keys(const FuzzCase& fc, int64_t max_keys);

// One line naming the case: seed, index, regime and the config (nsa::ref::describe).
std::string case_summary(const FuzzCase& fc);

}  // namespace nsa::fuzz
