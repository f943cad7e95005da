// Shape, value and index-list checks of Inputs, and exact dtype rounding (Eigen's half and
// bfloat16 round to nearest even).
#include "nsa/ref/inputs.hpp"

#include <Eigen/Core>
#include <cmath>
#include <iomanip>
#include <sstream>
#include <stdexcept>
#include <string>

namespace nsa::ref {

double round_to(double x, Dtype dtype) {
  switch (dtype) {
    case Dtype::f64:
      return x;
    case Dtype::f32:
      return static_cast<double>(static_cast<float>(x));
    case Dtype::f16:
      return static_cast<double>(static_cast<float>(Eigen::half(static_cast<float>(x))));
    case Dtype::bf16:
      return static_cast<double>(static_cast<float>(Eigen::bfloat16(static_cast<float>(x))));
  }
  return x;
}

bool representable(double x, Dtype dtype) {
  if (std::isnan(x)) return true;
  return round_to(x, dtype) == x;
}

InputShapes input_shapes(const ValidConfig& vc) {
  const auto& c = vc.cfg;
  InputShapes s{};
  const int64_t l = c.cmp_block, m = c.phi_hidden;
  s.q = vc.total_q * c.h_q * c.d_k;
  s.k = vc.total_k * c.h_kv * c.d_k;
  s.v = vc.total_k * c.h_kv * c.d_v;
  s.gate = vc.total_q * c.h_q;
  // With a given compressed cache phi is not run: its parameters are not inputs.
  const bool runs_phi = !c.cmp_given;
  const bool has_pos = runs_phi && c.phi != Phi::mean;
  s.phi_pos_k = has_pos ? c.h_kv * l * c.d_k : 0;
  s.phi_pos_v = has_pos ? c.h_kv * l * c.d_v : 0;
  if (runs_phi && c.phi == Phi::linear) {
    s.phi_w1_k = c.h_kv * l * c.d_k * c.d_k;
    s.phi_w1_v = c.h_kv * l * c.d_v * c.d_v;
  } else if (runs_phi && c.phi == Phi::mlp) {
    s.phi_w1_k = c.h_kv * l * c.d_k * m;
    s.phi_w1_v = c.h_kv * l * c.d_v * m;
    s.phi_b1 = c.h_kv * m;
    s.phi_w2_k = c.h_kv * m * c.d_k;
    s.phi_w2_v = c.h_kv * m * c.d_v;
    s.phi_b2_k = c.h_kv * c.d_k;
    s.phi_b2_v = c.h_kv * c.d_v;
  }
  s.indices = c.given_indices ? vc.total_q * c.h_kv * c.top_n : 0;
  // Required whenever given, read or not: a config that judges a candidate's own index lists
  // turns the selection's scores off without changing the inputs.
  s.k_tilde = c.cmp_given ? vc.total_cmp * c.h_kv * c.d_k : 0;
  s.v_tilde = c.cmp_given ? vc.total_cmp * c.h_kv * c.d_v : 0;
  return s;
}

namespace {

template <class T>
void check_size(const std::string& name, const std::vector<T>& x, int64_t want) {
  if (static_cast<int64_t>(x.size()) != want)
    throw std::invalid_argument("input '" + name + "' has " + std::to_string(x.size()) +
                                " elements, expected " + std::to_string(want));
}

void check_values(const std::string& name, const std::vector<double>& x, Dtype dtype) {
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]))
      throw std::invalid_argument("input '" + name + "' element " + std::to_string(i) + " = " +
                                  std::to_string(x[i]) + " is not finite");
    if (!representable(x[i], dtype))
      throw std::invalid_argument("input '" + name + "' element " + std::to_string(i) + " = " +
                                  std::to_string(x[i]) + " is not representable in " +
                                  std::string(to_string(dtype)));
  }
}

}  // namespace

void check_input_tensor(const std::string& name, const std::vector<double>& x, int64_t want,
                        Dtype dtype) {
  check_size(name, x, want);
  check_values(name, x, dtype);
}

void check_phi_params(const ValidConfig& vc, const PhiParams& pk, const PhiParams& pv) {
  const auto s = input_shapes(vc);
  const Dtype dt = vc.cfg.dtype;
  check_input_tensor("phi_k.pos", pk.pos, s.phi_pos_k, dt);
  check_input_tensor("phi_v.pos", pv.pos, s.phi_pos_v, dt);
  check_input_tensor("phi_k.w1", pk.w1, s.phi_w1_k, dt);
  check_input_tensor("phi_v.w1", pv.w1, s.phi_w1_v, dt);
  check_input_tensor("phi_k.b1", pk.b1, s.phi_b1, dt);
  check_input_tensor("phi_v.b1", pv.b1, s.phi_b1, dt);
  check_input_tensor("phi_k.w2", pk.w2, s.phi_w2_k, dt);
  check_input_tensor("phi_v.w2", pv.w2, s.phi_w2_v, dt);
  check_input_tensor("phi_k.b2", pk.b2, s.phi_b2_k, dt);
  check_input_tensor("phi_v.b2", pv.b2, s.phi_b2_v, dt);
}

void check_inputs(const ValidConfig& vc, const Inputs& in) {
  const auto& c = vc.cfg;
  const auto s = input_shapes(vc);
  const Dtype dt = c.dtype;
  check_input_tensor("q", in.q, s.q, dt);
  for (Branch b : kAllBranches) {
    const int i = static_cast<int>(b);
    // Built by append: GCC 12's -Wrestrict misfires on `"_" + std::string(...)` in Release.
    std::string suffix = "_";
    suffix += to_string(b);
    // The selection branch needs compression inputs for its scores unless indices are given.
    // A given compressed cache replaces K_cmp/V_cmp.
    const bool needed = b == Branch::cmp
                            ? !c.cmp_given && (c.enable_cmp || (c.enable_slc && !c.given_indices))
                            : c.enabled(b);
    check_input_tensor("k" + suffix, in.k[i], needed ? s.k : static_cast<int64_t>(in.k[i].size()),
                       dt);
    check_input_tensor("v" + suffix, in.v[i], needed ? s.v : static_cast<int64_t>(in.v[i].size()),
                       dt);
    check_input_tensor("g" + suffix, in.gate[i],
                       c.enabled(b) ? s.gate : static_cast<int64_t>(in.gate[i].size()), dt);
  }
  check_phi_params(vc, in.phi_k, in.phi_v);
  check_size("indices", in.indices, s.indices);
  check_cmp_cache(vc, in);
  // native-sparse-attention-triton compresses V without a position table (its module passes
  // pe=None for V): under that profile a linear phi's V table must be 0 (docs/semantics.md).
  if (c.profile == "nsa_triton")
    for (std::size_t i = 0; i < in.phi_v.pos.size(); ++i)
      if (in.phi_v.pos[i] != 0)
        throw std::invalid_argument("input phi_v.pos[" + std::to_string(i) +
                                    "] = " + std::to_string(in.phi_v.pos[i]) +
                                    ": profile nsa_triton compresses V without a position table "
                                    "(every entry must be 0)");
  if (c.given_indices && c.enable_slc && c.index_policy == IndexPolicy::strict)
    check_indices_strict(vc, in.indices);
}

namespace {
std::string precise(double x) {
  std::ostringstream o;
  o << std::setprecision(17) << x;
  return o.str();
}
}  // namespace

void check_cmp_cache(const ValidConfig& vc, const Inputs& in) {
  const auto& c = vc.cfg;
  const auto s = input_shapes(vc);
  for (const bool is_k : {true, false}) {
    const std::string name = is_k ? "k_tilde" : "v_tilde";
    const auto& x = is_k ? in.k_tilde : in.v_tilde;
    const int64_t dim = is_k ? c.d_k : c.d_v;
    if (static_cast<int64_t>(x.size()) != (is_k ? s.k_tilde : s.v_tilde))
      throw std::invalid_argument(
          "input '" + name + "' has " + std::to_string(x.size()) + " elements, expected " +
          std::to_string(is_k ? s.k_tilde : s.v_tilde) +
          (c.cmp_given ? " ([total_cmp = " + std::to_string(vc.total_cmp) + ", h_kv = " +
                             std::to_string(c.h_kv) + ", " + std::to_string(dim) + "])"
                       : " (cmp_given is false: no compressed cache is read)"));
    if (!c.cmp_given) continue;
    for (std::size_t b = 0; b < vc.seqs.size(); ++b) {
      const auto& seq = vc.seqs[b];
      const int64_t nc = vc.num_cmp_blocks(seq.t_k);
      for (int64_t e = seq.c_begin * c.h_kv * dim; e < (seq.c_begin + nc) * c.h_kv * dim; ++e) {
        const double v = x[static_cast<std::size_t>(e)];
        const bool finite = std::isfinite(v);
        if (finite && representable(v, c.dtype)) continue;
        const int64_t block = e / (c.h_kv * dim) - seq.c_begin, g = e / dim % c.h_kv;
        throw std::invalid_argument(
            "input '" + name + "' sequence " + std::to_string(b) + ", block " +
            std::to_string(block) + ", kv head " + std::to_string(g) + ", component " +
            std::to_string(e % dim) + " (element " + std::to_string(e) + ") = " + precise(v) +
            (finite ? " is not representable in " + std::string(to_string(c.dtype))
                    : " is not finite"));
      }
    }
  }
}

void check_indices_strict(const ValidConfig& vc, const std::vector<int32_t>& indices) {
  const auto& c = vc.cfg;
  check_size("indices", indices, vc.total_q * c.h_kv * c.top_n);
  std::vector<int64_t> seen;
  for (std::size_t b = 0; b < vc.seqs.size(); ++b) {
    const auto& seq = vc.seqs[b];
    for (int64_t i = 0; i < seq.t_q; ++i) {
      const int64_t t = seq.pos(i);
      const int64_t last = t / c.slc_block;
      for (int64_t g = 0; g < c.h_kv; ++g) {
        const int32_t* row = indices.data() + ((seq.q_begin + i) * c.h_kv + g) * c.top_n;
        seen.clear();
        for (int64_t slot = 0; slot < c.top_n; ++slot) {
          const int64_t j = row[slot];
          auto where = [&] {
            return "index list (strict): sequence " + std::to_string(b) + ", t " +
                   std::to_string(t) + ", kv head " + std::to_string(g) + ", slot " +
                   std::to_string(slot) + ": value " + std::to_string(j);
          };
          if (j == -1) continue;
          if (j < -1 || j > last)
            throw std::invalid_argument(where() + " is not -1 or a candidate block in [0, " +
                                        std::to_string(last) + "]");
          if (std::find(seen.begin(), seen.end(), j) != seen.end())
            throw std::invalid_argument(where() + " is a duplicate");
          seen.push_back(j);
        }
      }
    }
  }
}

}  // namespace nsa::ref
