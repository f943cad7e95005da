// An independent dense oracle of the NSA forward, written from the semantics (docs/semantics.md)
// and not from the reference's code. Every branch is one masked softmax over a full T_q x N score
// matrix: the key set of each query is an explicit multiplicity matrix (0 = masked, 2 = a key
// listed twice by a multiset index list). The score mapping is an explicit N_c x N_s matrix built
// from block geometry, and top-n is a plain repeated arg-max. Everything runs in double.
//
// It is slow (O(T_q * T_k) memory per head) and only meant for small shapes.
#pragma once

#include <Eigen/Dense>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "nsa/ref/backward.hpp"
#include "nsa/ref/config.hpp"
#include "nsa/ref/forward.hpp"
#include "nsa/ref/inputs.hpp"

namespace nsa::oracle {

using Matrix = Eigen::MatrixXd;

// The oracle's outputs in the reference's layout for all rows and all heads
// (see nsa::ref::Outputs): per head [total_q, h_q, ...], per KV head [total_q, h_kv, ...].
struct DenseResult {
  int64_t nc_max = 0, ns_max = 0;
  std::array<std::vector<double>, 3> o_branch, lse;
  std::vector<double> o, p_cmp, scores, score_gap;
  std::vector<int32_t> indices;
};

DenseResult dense_forward(const ref::ValidConfig& vc, const ref::Inputs& in);

// The gradients of the NSA forward (docs/semantics.md section 10) for an upstream gradient d_o,
// written from that section as dense matrix formulas over the same multiplicity masks as
// dense_forward, with the chain rule through phi written out loop by loop. `grad` has the layout
// of nsa::ref::Gradients for every row and key (a disabled branch's tensors are 0). `magnitude`
// runs the same chain rule on absolute values (|q|, |k|, |v|, |dO|, |phi parameters|, dP - D
// replaced by |dP| + |D|, the softmax weights of row i scaled by 1 + Z_i, Z_i its largest
// s * sum |q||k|): every term of every sum of an element, and the rounding error any summation
// order makes in them, is bounded by it (docs/numerics.md section 3).
struct DenseGradients {
  ref::Gradients grad;
  ref::Gradients magnitude;
};

// `selection` ([total_q, h_kv, top_n], or empty: the oracle's own top-n) are the computed index
// lists to differentiate; they are ignored with given_indices.
DenseGradients dense_backward(const ref::ValidConfig& vc, const ref::Inputs& in,
                              const std::vector<double>& d_o,
                              const std::vector<int32_t>& selection = {});

// The computed index lists to differentiate when a backward is checked against the oracle: the
// oracle's own, or a forward's (`forward`, every row, with scores) where the two differ only at
// near-ties, i.e. where that forward's score gap is at most tie_tol times its largest score (two
// summation orders may break an exact tie of the scores apart). Sets `selection` (empty: the
// oracle's own) and returns "", or returns the first list that differs at a clear gap.
std::string tie_aware_selection(const ref::ValidConfig& vc, const ref::Inputs& in,
                                const ref::Outputs& forward, double tie_tol,
                                std::vector<int32_t>& selection);

// Relative tolerance of a double backward against the oracle, per tensor, in units of the
// tensor's largest magnitude: 4 * K * 2^-53, K the longest chain of sums an element goes through
// (docs/numerics.md section 3).
double grad_rel_tol(const ref::ValidConfig& vc);

// Compares a backward's gradients (every row and key, in order) with the oracle's: every tensor
// of nsa::ref::Gradients (the disabled branches' zeros and the phi parameters included) within
// rel_tol times the largest element of its magnitude tensor; NaN never passes. Returns "" or a
// description of the first disagreement (tensor, element, both values, the bound).
std::string diff(const ref::Gradients& got, const DenseGradients& want, double rel_tol);

// --- building blocks, exposed for hand-worked tests ----------------------------------------

// Number of compressed blocks of a length-len sequence, counted block by block.
int64_t count_cmp_blocks(const ref::Config& c, int64_t len);

// Number of selection blocks of a length-len sequence, counted block by block.
int64_t count_slc_blocks(const ref::Config& c, int64_t len);

// Rows [row0, row0 + rows) of one head of a [tokens, heads, dim] tensor.
Matrix head_rows(const std::vector<double>& x, int64_t row0, int64_t rows, int64_t heads,
                 int64_t head, int64_t dim);

// phi (c.phi with KV head g's parameters) applied to every complete block of x: [N_c, x.cols()].
Matrix compress(const ref::Config& c, const ref::PhiParams& prm, int64_t g, const Matrix& x);

// The selection branch's key multiplicities of one sequence and KV head: [t_q, t_k], entry (i, u)
// the number of times key u is in query i's key set. lists + i * stride is query i's index list
// (top_n entries); `computed`: the reference's own top-n (each block counts once).
Matrix selection_multiplicity(const ref::Config& c, int64_t t_q, int64_t t_k, const int32_t* lists,
                              int64_t stride, bool computed);

// Visibility of compressed blocks: [t_q, n_cmp] of 0/1 for the queries t = t_k - t_q + i.
Matrix cmp_visibility(const ref::Config& c, int64_t t_q, int64_t t_k, int64_t n_cmp);

// How many times compressed block i's weight enters selection block j: [n_cmp, n_slc].
Matrix mapping_matrix(const ref::Config& c, int64_t n_cmp, int64_t n_slc);

// Window key set: [t_q, t_k] of 0/1.
Matrix window_mask(const ref::Config& c, int64_t t_q, int64_t t_k);

// Blocks query t must select: j < n_init or among the n_local blocks ending at floor(t / l').
std::vector<int64_t> forced_blocks(const ref::Config& c, int64_t t);

// Top-n over candidate scores P[0 .. n_cand) for query t: ascending ids, -1 padded to top_n.
std::vector<int32_t> pick_top_n(const ref::Config& c, int64_t t, const std::vector<double>& P,
                                double* gap = nullptr);

// Row-wise softmax of z over the keys with multiplicity mult > 0 (a key of multiplicity m counts
// m times). Rows with no key: p = 0, o = 0, lse = -inf.
struct Softmax {
  Matrix p;  // [rows, keys]
  Matrix o;  // [rows, d_v]
  Eigen::VectorXd lse;
};
Softmax masked_softmax(const Matrix& z, const Matrix& mult, const Matrix& v);

// Compares the reference's outputs (all rows, all heads) with the oracle's. Returns "" when every
// tensor agrees within rel_tol times the tensor's largest magnitude (and -inf / index entries
// exactly), otherwise a description of the first disagreement.
std::string diff(const ref::Outputs& out, const DenseResult& want, double rel_tol);

}  // namespace nsa::oracle
