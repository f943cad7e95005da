#include "shapes.hpp"

#include <stdexcept>

#include "nsa/golden/golden_file.hpp"
#include "nsa/ref/backward.hpp"

namespace nsa::py {

using nsa::ref::Branch;
using nsa::ref::Phi;

bool reads_kv(const nsa::ref::ValidConfig& vc, Branch b) {
  const auto& c = vc.cfg;
  // A given compressed cache (cmp_given) replaces K_cmp/V_cmp.
  if (b == Branch::cmp) return !c.cmp_given && (c.enable_cmp || (c.enable_slc && !c.given_indices));
  return c.enabled(b);
}

namespace {

// phi's parameters for a tensor of head dim D (golden/SCHEMA.md, inputs/phi_*).
void phi_shapes(const nsa::ref::ValidConfig& vc, const std::string& prefix, int64_t dim,
                NamedShapes& out) {
  const auto& c = vc.cfg;
  const int64_t l = c.cmp_block, m = c.phi_hidden, h = c.h_kv;
  if (c.phi == Phi::mean) return;
  out.push_back({prefix + "pos", {h, l, dim}});
  if (c.phi == Phi::linear) {
    out.push_back({prefix + "w1", {h, l * dim, dim}});
    return;
  }
  out.push_back({prefix + "w1", {h, l * dim, m}});
  out.push_back({prefix + "b1", {h, m}});
  out.push_back({prefix + "w2", {h, m, dim}});
  out.push_back({prefix + "b2", {h, dim}});
}

}  // namespace

NamedShapes named_input_shapes(const nsa::ref::ValidConfig& vc) {
  const auto& c = vc.cfg;
  const int64_t tq = vc.total_q, tk = vc.total_k;
  NamedShapes s;
  s.push_back({"q", {tq, c.h_q, c.d_k}});
  for (Branch b : nsa::ref::kAllBranches) {
    const std::string n(nsa::ref::to_string(b));
    if (reads_kv(vc, b)) {
      s.push_back({"k_" + n, {tk, c.h_kv, c.d_k}});
      s.push_back({"v_" + n, {tk, c.h_kv, c.d_v}});
    }
  }
  for (Branch b : nsa::ref::kAllBranches)
    if (c.enabled(b)) s.push_back({"g_" + std::string(nsa::ref::to_string(b)), {tq, c.h_q}});
  if (c.cmp_given) {  // the compressed cache instead of phi's parameters
    s.push_back({"k_tilde", {vc.total_cmp, c.h_kv, c.d_k}});
    s.push_back({"v_tilde", {vc.total_cmp, c.h_kv, c.d_v}});
  } else {
    // check_inputs() wants phi's parameters whenever phi has them, whichever branches run.
    phi_shapes(vc, "phi_k_", c.d_k, s);
    phi_shapes(vc, "phi_v_", c.d_v, s);
  }
  if (c.given_indices) s.push_back({"indices", {tq, c.h_kv, c.top_n}});
  return s;
}

Shape output_shape(const nsa::ref::ValidConfig& vc, const std::string& name, int64_t rows,
                   int64_t heads, int64_t groups) {
  const auto& c = vc.cfg;
  if (name == "p_cmp") return {rows, heads, vc.max_cmp_blocks()};
  if (name == "scores") return {rows, groups, vc.max_slc_blocks()};
  if (name == "indices") return {rows, groups, c.top_n};
  if (name == "score_gap") return {rows, groups};
  if (name.rfind("lse_", 0) == 0) return {rows, heads};
  return {rows, heads, c.d_v};  // o, o_<b>
}

NamedShapes output_shapes(const nsa::ref::ValidConfig& vc, int64_t rows, int64_t heads,
                          int64_t groups) {
  NamedShapes s;
  for (const auto& name : nsa::golden::expected_tensor_names(vc))
    s.push_back({name, output_shape(vc, name, rows, heads, groups)});
  return s;
}

NamedShapes grad_shapes(const nsa::ref::ValidConfig& vc, int64_t rows, int64_t keys) {
  const auto& c = vc.cfg;
  NamedShapes phi;
  phi_shapes(vc, "dphi_k_", c.d_k, phi);
  phi_shapes(vc, "dphi_v_", c.d_v, phi);
  NamedShapes s;
  for (const auto& name : nsa::ref::grad_tensor_names(vc)) {
    if (name == "dq") {
      s.push_back({name, {rows, c.h_q, c.d_k}});
    } else if (name.rfind("dg_", 0) == 0) {
      s.push_back({name, {rows, c.h_q}});
    } else if (name == "dk_tilde" || name == "dv_tilde") {  // every given block, any key subset
      s.push_back({name, {vc.total_cmp, c.h_kv, name == "dk_tilde" ? c.d_k : c.d_v}});
    } else if (name.rfind("dk_", 0) == 0) {
      s.push_back({name, {keys, c.h_kv, c.d_k}});
    } else if (name.rfind("dv_", 0) == 0) {
      s.push_back({name, {keys, c.h_kv, c.d_v}});
    } else {
      s.push_back({name, shape_of(phi, name, "gradient")});
    }
  }
  return s;
}

const Shape& shape_of(const NamedShapes& table, const std::string& name, const std::string& what) {
  for (const auto& [n, shape] : table)
    if (n == name) return shape;
  std::string known;
  for (const auto& [n, _] : table) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument(what + " '" + name + "' is not one of this config's (" + known + ")");
}

}  // namespace nsa::py
