// The reference forward: every branch, the top-n selection and the gated combination for any
// chosen set of query rows, in double, in high precision, or as the dtype-faithful baseline.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "nsa/ref/config.hpp"
#include "nsa/ref/inputs.hpp"

namespace nsa::ref {

// The arithmetic the reference runs in.
enum class Precision {
  f64,       // double
  f128,      // boost::multiprecision::float128 (113-bit significand)
  bin50,     // boost::multiprecision::cpp_bin_float_50 (168-bit significand)
  baseline,  // the dtype-faithful baseline in its first summation order (kBaselineOrders[0])
};

// The orders whose largest error sets the baseline error of the tolerance rule. Plain sums
// (softmax denominators, the compression mean) of the tensor-core orders are sequential fp32.
inline constexpr std::array<SumOrder, 7> kBaselineOrders{
    SumOrder::sequential,      SumOrder::pairwise,    SumOrder::lanes8,
    SumOrder::blocked16,       SumOrder::tensor_core, SumOrder::tensor_core_split,
    SumOrder::largest_partials};

// A CPU model of a kernel: the dtype-faithful baseline computed with this arithmetic. With
// accumulator = fp32 and permutation = 0 it is one member of the baseline set; the other
// settings model kernels outside it: any other fixed order of the terms (permutation: a seed
// of a pseudo-random order of every reduction's terms, then `order` over that sequence), or
// a wrong kernel that accumulates in a narrower dtype (accumulator = fp16/bf16).
struct KernelModel {
  SumOrder order = SumOrder::sequential;
  Dtype accumulator = Dtype::f32;
  uint64_t permutation = 0;
};

// Which rows to compute. Empty lists mean "all". Rows are packed query rows (0 .. total_q-1);
// heads are query heads. The outputs hold exactly these rows and heads, in the given order.
struct RowSelection {
  std::vector<int64_t> rows;
  std::vector<int64_t> heads;
  bool keep_scores = true;  // fill p_cmp and the selection scores (large for long sequences)
  int threads = 0;          // 0: hardware concurrency
};

// Results. Per-head tensors are [rows, heads, ...]; per-KV-head tensors are [rows, groups, ...]
// where groups are the KV heads of the selected heads, ascending. The public form holds doubles
// (every value rounded once); the reference's own tests instantiate it on the high-precision type
// to see values before that rounding (finite differences of a loss need them).
template <class T>
struct BasicOutputs {
  std::vector<int64_t> rows, heads, groups;
  int64_t d_v = 0, top_n = 0;
  int64_t nc_max = 0;                      // width of p_cmp rows: N_c of the longest sequence
  int64_t ns_max = 0;                      // width of score rows: N_s of the longest sequence
  std::array<std::vector<T>, 3> o_branch;  // per branch: [rows, heads, d_v]; 0 if disabled
  std::array<std::vector<T>, 3> lse;       // per branch: [rows, heads]; -inf if empty/off
  std::vector<T> o;                        // gated combination: [rows, heads, d_v]
  std::vector<T> p_cmp;          // [rows, heads, nc_max]: softmax weights, 0 where not visible
  std::vector<T> scores;         // [rows, groups, ns_max]: ranked P, -inf for non-candidates
  std::vector<int32_t> indices;  // [rows, groups, top_n]: ascending, -1 padded (or as given)
  std::vector<T> score_gap;      // [rows, groups]: min free selected P - max unselected P

  const std::vector<T>& out(Branch b) const { return o_branch[static_cast<int>(b)]; }
  const std::vector<T>& lse_of(Branch b) const { return lse[static_cast<int>(b)]; }

  // A tensor by its golden-file name (golden/SCHEMA.md, expected/): o_<b>, lse_<b>, o, p_cmp,
  // scores, score_gap; nullptr for another name (the int32 `indices` included).
  std::vector<T>* tensor(const std::string& name) {
    for (Branch b : kAllBranches) {
      const std::string s(to_string(b));
      if (name == "o_" + s) return &o_branch[static_cast<int>(b)];
      if (name == "lse_" + s) return &lse[static_cast<int>(b)];
    }
    if (name == "o") return &o;
    if (name == "p_cmp") return &p_cmp;
    if (name == "scores") return &scores;
    if (name == "score_gap") return &score_gap;
    return nullptr;
  }
  const std::vector<T>* tensor(const std::string& name) const {
    return const_cast<BasicOutputs*>(this)->tensor(name);
  }
};
using Outputs = BasicOutputs<double>;

// The given rows (all heads and groups) of an Outputs that holds every row 0..total_q-1 in order,
// in the layout forward() gives for RowSelection{rows} (what check_candidate expects of a
// candidate covering those rows). Throws std::invalid_argument naming the row that is not there.
Outputs select_rows(const Outputs& full, const std::vector<int64_t>& rows);

// Runs the forward. check_inputs() is applied first (strict index lists are validated there).
Outputs forward(const ValidConfig& vc, const Inputs& in, Precision precision,
                const RowSelection& sel = {});

// The dtype-faithful baseline computed by one kernel model (check_inputs() first).
Outputs forward_model(const ValidConfig& vc, const Inputs& in, const KernelModel& model,
                      const RowSelection& sel = {});
// The baseline set: forward_model in each order of kBaselineOrders (fp32 accumulators).
std::vector<Outputs> forward_baselines(const ValidConfig& vc, const Inputs& in,
                                       const RowSelection& sel = {});

const char* to_string(Precision p);

}  // namespace nsa::ref
