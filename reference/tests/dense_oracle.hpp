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

// --- building blocks, exposed for hand-worked tests ----------------------------------------

// Number of compressed blocks of a length-len sequence, counted block by block.
int64_t count_cmp_blocks(const ref::Config& c, int64_t len);

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
