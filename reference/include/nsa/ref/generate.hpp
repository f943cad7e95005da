// The project's seeded, counter-based input generator. Element i of tensor `stream` depends only
// on (seed, stream, i) through splitmix64 and an explicitly written integer-to-float conversion,
// so a seed means the same data on every platform and standard library.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "nsa/ref/inputs.hpp"

namespace nsa::ref {

inline constexpr int kGeneratorVersion = 1;

// Value regimes for stress testing.
enum class Regime {
  typical,  // q, k, v uniform in [-1, 1]
  peaked,   // q scaled by 16: softmax nearly one-hot
  ties,     // k, q drawn from {-1, 0, 1}/2: many exactly equal block scores
  extreme,  // magnitudes spanning the dtype's range (subnormal to large), scores kept finite
};
const char* to_string(Regime r);
bool parse_regime(const std::string& text, Regime& out);

uint64_t splitmix64(uint64_t x);
// 64 random bits of element i of a stream.
uint64_t random_bits(uint64_t seed, uint64_t stream, uint64_t i);
// Uniform in [0, 1) with 53 random bits.
double random_unit(uint64_t seed, uint64_t stream, uint64_t i);

// Inputs for a validated config: every tensor the config needs, values representable in
// cfg.dtype, gates in [0, 1], (if cfg.given_indices) a valid strict index list and (if
// cfg.cmp_given) a compressed cache k~/v~ drawn like k and v.
Inputs generate_inputs(const ValidConfig& vc, uint64_t seed, Regime regime = Regime::typical);

// An upstream gradient dO for the backward: [total_q, h_q, d_v], uniform in [-1, 1], rounded to
// cfg.dtype (its own stream: the forward inputs of a seed do not change).
std::vector<double> generate_grad_output(const ValidConfig& vc, uint64_t seed);

// Index lists [total_q, h_kv, top_n]. Valid lists hold distinct candidate blocks, -1 padded at
// random slots count; adversarial lists also hold duplicates, -1 anywhere, negative and
// out-of-range values and future blocks (for the skip_invalid / multiset policies and kernels).
std::vector<int32_t> generate_indices(const ValidConfig& vc, uint64_t seed, bool adversarial);

}  // namespace nsa::ref
