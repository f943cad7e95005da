// The reference backward: the gradients of the NSA forward (docs/semantics.md, "Backward") for an
// upstream gradient dO, in double, in high precision, or as the dtype-faithful backward baseline.
// The selected indices are constants; every branch's gradient is taken over exactly the key set
// its forward attends.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "nsa/ref/config.hpp"
#include "nsa/ref/forward.hpp"
#include "nsa/ref/inputs.hpp"

namespace nsa::ref {

// Which gradients to compute. Rows are packed query rows, keys packed key tokens; empty lists
// mean "all". A list may not name an element twice.
struct GradSelection {
  std::vector<int64_t> rows;  // rows of dq and dg
  std::vector<int64_t> keys;  // tokens of dK/dV of every branch
  bool query_grads = true;    // false: no dq, dg (rows ignored)
  bool key_grads = true;      // false: no dK, dV, phi parameter gradients (keys ignored)
  bool phi_params = true;     // phi parameter gradients (linear, mlp): a sum over every block
  int threads = 0;            // 0: hardware concurrency
};

// The gradients, rounded once to double. A disabled branch's tensors are exactly 0.
struct Gradients {
  std::vector<int64_t> rows, keys;
  std::vector<double> dq;                     // [rows, h_q, d_k]: sum over the enabled branches
  std::array<std::vector<double>, 3> dg;      // per branch: [rows, h_q], <dO, o_b>
  std::array<std::vector<double>, 3> dk, dv;  // per branch: [keys, h_kv, d_k] / [keys, h_kv, d_v]
  std::vector<double> dk_shared, dv_shared;   // shared_kv: the sum over the branches; else empty
  PhiParams dphi_k, dphi_v;  // phi parameter gradients, shaped as the inputs (linear, mlp)
  // cmp_given: the gradients of the given compressed cache, [total_cmp, h_kv, d_k] / [.., d_v],
  // every block (key_grads; `keys` does not select blocks; exactly 0 when the compression branch
  // is disabled: the selection's indices are constants). dk/dv of the compression branch and
  // dphi are then 0 / empty: K_cmp, V_cmp and phi are not inputs.
  std::vector<double> dk_tilde, dv_tilde;

  const std::vector<double>& dk_of(Branch b) const { return dk[static_cast<int>(b)]; }
  const std::vector<double>& dv_of(Branch b) const { return dv[static_cast<int>(b)]; }
  const std::vector<double>& dg_of(Branch b) const { return dg[static_cast<int>(b)]; }
};

// The named gradient tensors of a config (those of its inputs), in a fixed order: dq, then per
// enabled branch dk_<b>, dv_<b> (separate K/V) and dg_<b>, then dk_shared, dv_shared (shared_kv:
// the one K/V tensor's gradients replace the per-branch ones), then the phi parameter gradients
// dphi_k_pos, dphi_k_w1, ... (enabled compression branch with a linear or mlp phi). With
// cmp_given, dk_tilde, dv_tilde take the place of dk_cmp, dv_cmp (also under shared_kv, whose sum
// then has no compression part) and there are no dphi tensors.
std::vector<std::string> grad_tensor_names(const ValidConfig& vc);
// A gradient by name. Throws std::invalid_argument naming the tensor for an unknown name, and
// for a tensor of a disabled branch (a disabled branch has no gradients to ask for).
const std::vector<double>& grad_tensor(const ValidConfig& vc, const Gradients& g,
                                       const std::string& name);
std::vector<double>& grad_tensor(const ValidConfig& vc, Gradients& g, const std::string& name);

// The rows `rows` and keys `keys` of gradients computed for every row and key in order (as
// nsa::cuda::backward returns them), for a check on subsets; phi's and a given cache's gradients
// are kept whole. Throws std::invalid_argument for full gradients that do not hold every row and
// key in order, and for a row or key outside the config (naming the list, the index and value).
Gradients select_gradients(const ValidConfig& vc, const Gradients& full,
                           const std::vector<int64_t>& rows, const std::vector<int64_t>& keys);

// Checks the upstream gradient dO: [total_q, h_q, d_v] elements, each finite and representable
// in the config's dtype. Throws std::invalid_argument naming "do", its size or the element.
void check_grad_output(const ValidConfig& vc, const std::vector<double>& d_o);

// Runs the backward. check_inputs() and check_grad_output() are applied first. Precision::baseline
// is the backward baseline in the first summation order of kBaselineOrders.
Gradients backward(const ValidConfig& vc, const Inputs& in, const std::vector<double>& d_o,
                   Precision precision, const GradSelection& sel = {});
// The backward baseline set: the dtype-faithful backward in each order of kBaselineOrders (fp32
// accumulators), whose largest error sets each gradient's tolerance (docs/tolerance.md).
std::vector<Gradients> backward_baselines(const ValidConfig& vc, const Inputs& in,
                                          const std::vector<double>& d_o,
                                          const GradSelection& sel = {});

}  // namespace nsa::ref
