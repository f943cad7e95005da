// The inputs of one NSA forward. Values are held as double: every input dtype (fp32, fp16, bf16)
// widens to double exactly, and double widens exactly to the high-precision types, so the
// reference sees exactly the values a kernel sees.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "nsa/ref/config.hpp"

namespace nsa::ref {

// Parameters of one compression function phi (for K or for V), all KV heads stacked.
// D is the head dim of the tensor it compresses (d_k for K, d_v for V), l the block length,
// m the mlp hidden size. Layouts are row-major with the KV head outermost.
struct PhiParams {
  std::vector<double> pos;  // P  [h_kv, l, D]        linear, mlp
  std::vector<double> w1;   // W  [h_kv, l*D, D]      linear;  W1 [h_kv, l*D, m]  mlp
  std::vector<double> b1;   //                                 b1 [h_kv, m]       mlp
  std::vector<double> w2;   //                                 W2 [h_kv, m, D]    mlp
  std::vector<double> b2;   //                                 b2 [h_kv, D]       mlp
};

struct Inputs {
  std::vector<double> q;                    // [total_q, h_q, d_k]
  std::array<std::vector<double>, 3> k;     // per branch (cmp, slc, win): [total_k, h_kv, d_k]
  std::array<std::vector<double>, 3> v;     // per branch: [total_k, h_kv, d_v]
  std::array<std::vector<double>, 3> gate;  // per branch: [total_q, h_q]
  PhiParams phi_k, phi_v;
  std::vector<int32_t> indices;  // given_indices: [total_q, h_kv, top_n]
  // cmp_given: the compressed keys/values, the blocks of each sequence packed in order
  // (sequence b's block i at row seqs[b].c_begin + i): [total_cmp, h_kv, d_k] / [.., d_v].
  std::vector<double> k_tilde, v_tilde;

  const std::vector<double>& keys(Branch b) const { return k[static_cast<int>(b)]; }
  const std::vector<double>& values(Branch b) const { return v[static_cast<int>(b)]; }
  const std::vector<double>& gates(Branch b) const { return gate[static_cast<int>(b)]; }
};

// Expected element counts of every input tensor for a config; check_inputs() compares against
// them and throws std::invalid_argument naming the tensor, its size and the expected size, or
// the first non-finite or non-representable value (tensor, flat index, value).
struct InputShapes {
  int64_t q, k, v, gate, phi_pos_k, phi_pos_v, phi_w1_k, phi_w1_v, phi_b1, phi_w2_k, phi_w2_v,
      phi_b2_k, phi_b2_v, indices, k_tilde, v_tilde;
};
InputShapes input_shapes(const ValidConfig& vc);
void check_inputs(const ValidConfig& vc, const Inputs& in);
// One tensor's part of check_inputs(): `want` elements, each finite and representable in dtype.
void check_input_tensor(const std::string& name, const std::vector<double>& x, int64_t want,
                        Dtype dtype);

// The phi parameters' part of check_inputs(): each tensor of phi_k / phi_v has its input_shapes()
// count (0 for mean phi and under cmp_given) and values finite and representable in the dtype.
void check_phi_params(const ValidConfig& vc, const PhiParams& phi_k, const PhiParams& phi_v);
// The given compressed cache's part of check_inputs(): k_tilde / v_tilde have [total_cmp, h_kv, D]
// elements, each finite and representable in the dtype; a bad value is named by tensor, sequence,
// block, KV head, component and value.
void check_cmp_cache(const ValidConfig& vc, const Inputs& in);

// Whether x is exactly representable in dtype (fp64 accepts every double).
bool representable(double x, Dtype dtype);
// Rounds x to the nearest value of dtype (ties to even), returned as double.
double round_to(double x, Dtype dtype);

}  // namespace nsa::ref

namespace nsa::ref {

// Validates a given index list [total_q, h_kv, top_n] under the strict policy: every entry is
// -1 or a candidate block (0 <= j <= floor(t / l')) and no block appears twice. Throws
// std::invalid_argument naming the first bad (sequence, t, kv head, slot, value).
void check_indices_strict(const ValidConfig& vc, const std::vector<int32_t>& indices);

}  // namespace nsa::ref
