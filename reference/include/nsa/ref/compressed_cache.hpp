// The compressed KV cache (docs/semantics.md, "A given compressed cache"): what phi makes of
// K_cmp / V_cmp, in the layout of Inputs::k_tilde / v_tilde, so that a decode step can take it as
// an input (Config::cmp_given) instead of compressing the whole sequence again.
#pragma once

#include <cstdint>
#include <vector>

#include "nsa/ref/config.hpp"
#include "nsa/ref/forward.hpp"
#include "nsa/ref/inputs.hpp"

namespace nsa::ref {

struct CompressedCache {
  std::vector<double> k;  // [blocks, h_kv, d_k]
  std::vector<double> v;  // [blocks, h_kv, d_v]
};

// phi over every complete block of every sequence of in.k[cmp] / in.v[cmp] with in.phi_k /
// in.phi_v, each value rounded to cfg.dtype (through double): [total_cmp, h_kv, D], ready to be the
// Inputs::k_tilde / v_tilde of the same config with cmp_given = true. The config is read as if
// cmp_given were false (its K_cmp, V_cmp and phi parameters are checked like check_inputs does).
// Precision::f64 (or f128, bin50) computes phi exactly as the forward does in that type; then a
// forward of fp64 inputs in that precision on the cache gives the bits of the forward that runs
// phi. Precision::baseline computes it as the dtype-faithful baseline does (fp32, stored in the
// dtype), whose forward on the cache then gives the bits of the baseline that runs phi.
CompressedCache compress_cache(const ValidConfig& vc, const Inputs& in,
                               Precision precision = Precision::f64);

// The compressed blocks that a sequence's growth from t_old to t_new keys completes: blocks
// [first_block, first_block + count) with first_block = N_c(t_old), count = N_c(t_new) -
// N_c(t_old); they cover tokens from first_token = first_block * d on (none before it is read).
struct CompletedBlocks {
  int64_t first_block = 0, count = 0, first_token = 0;
};
// Throws std::invalid_argument unless 0 <= t_old <= t_new <= kMaxTokens.
CompletedBlocks completed_blocks(const ValidConfig& vc, int64_t t_old, int64_t t_new);

// One decode step's update of a sequence's cache: the blocks completed_blocks(vc, t_old, t_new)
// names, compressed as compress_cache does (the same bits), [count, h_kv, D]. k_tail / v_tail are
// the sequence's K_cmp / V_cmp tokens [first_token, t_new): [t_new - first_token, h_kv, d_k] and
// [.., d_v]. Append the result to the cache's rows of that sequence. Throws std::invalid_argument
// naming the tensor for a size that does not match or a value that is not finite or not
// representable in cfg.dtype.
CompressedCache compress_completed_blocks(const ValidConfig& vc, const std::vector<double>& k_tail,
                                          const std::vector<double>& v_tail, const PhiParams& phi_k,
                                          const PhiParams& phi_v, int64_t t_old, int64_t t_new,
                                          Precision precision = Precision::f64);

}  // namespace nsa::ref
