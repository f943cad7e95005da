// Small independent computations the properties compare the reference against: softmax attention
// over an explicit key list (in long double), the spec's top-n rule applied to given scores, and
// tie-aware index comparison. Written from the semantics, not from the reference's code.
#pragma once

#include <cstdint>
#include <vector>

#include "nsa/ref/config.hpp"
#include "nsa/ref/forward.hpp"
#include "nsa/ref/inputs.hpp"

namespace nsa::props {

using nsa::ref::Branch;
using nsa::ref::Inputs;
using nsa::ref::Outputs;
using nsa::ref::ValidConfig;

struct DenseAttention {
  std::vector<double> o;  // [d_v]; 0 for an empty key set
  double lse = 0;         // -inf for an empty key set
  double z_abs = 0;       // max over keys of scale * sum_e |q_e k_e|: the error scale of z
  int64_t keys = 0;
};

// Attn(q[row, head], {branch keys u in `keys`}) for packed key rows `keys` (absolute rows).
DenseAttention dense_attention(const ValidConfig& vc, const Inputs& in, Branch branch, int64_t row,
                               int64_t head, const std::vector<int64_t>& keys);

// Tolerances of a double computation of attention against the long double oracle: a few hundred
// ulps of double, scaled by the score magnitude (exp turns an absolute error of z into a relative
// error of the weights) and the number of keys (summation).
double attention_tol_o(const DenseAttention& a, double v_max);
double attention_tol_lse(const DenseAttention& a);

// The gradient of Attn(q, S) over an explicit key list (key i has key vector k[i] and value
// vector v[i]; a key listed twice appears twice) for the branch's upstream gradient d_o_b
// (= g_b * dO), in long double, from the formulas of docs/semantics.md section 10:
//   P_i = softmax weight, dP_i = <dO_b, v_i>, D = sum_i P_i dP_i, dS_i = P_i (dP_i - D),
//   dq = s sum_i dS_i k_i,  dk_i = s dS_i q,  dv_i = P_i dO_b.
// The *_mag members run the same formulas on absolute values (|dP_i| + |D| for dP_i - D, the
// weights times 1 + Z with Z = max_i s sum_e |q_e k_ie|): they bound every term of each element
// and so scale its rounding error (the dense oracle's magnitudes, docs/numerics.md section 3).
// An empty list gives exactly 0 everywhere.
struct AttentionGrad {
  std::vector<double> o, o_mag;                 // [d_v]
  std::vector<double> dq, dq_mag;               // [d_k]
  std::vector<std::vector<double>> dk, dk_mag;  // [keys][d_k]
  std::vector<std::vector<double>> dv, dv_mag;  // [keys][d_v]
};
AttentionGrad attention_grad(const std::vector<const double*>& k,
                             const std::vector<const double*>& v, const double* q,
                             const double* d_o_b, int64_t d_k, int64_t d_v, double scale);

// Largest |x| of a tensor (1 if empty or all zero).
double max_abs(const std::vector<double>& x);

// Location of packed query row r: its sequence and position t.
struct RowPos {
  int64_t seq = 0;
  int64_t t = 0;
};
RowPos row_pos(const ValidConfig& vc, int64_t row);

// Forced blocks of query t per the spec (n_init initial, n_local local, clipped to candidates).
std::vector<int64_t> spec_forced_blocks(const nsa::ref::Config& c, int64_t t);

// The spec's top-n applied to the ranked scores P[0 .. n_cand) of query t: forced blocks
// (forced_mode always) plus the best free candidates by (P desc, tie rule), sorted, -1 padded.
std::vector<int32_t> spec_top_n(const nsa::ref::Config& c, int64_t t, const double* P);

// Whether `got` is a top-n selection for scores P up to delta: right size and forced blocks,
// and no unselected free candidate scores more than delta above a selected free one.
// Returns "" or the reason.
std::string selection_within(const nsa::ref::Config& c, int64_t t, const double* P,
                             const int32_t* got, double delta);

// Seed-derived choices of a property (uniform in [0, n)).
uint64_t choose(uint64_t seed, uint64_t stream, uint64_t i, uint64_t n);

}  // namespace nsa::props
