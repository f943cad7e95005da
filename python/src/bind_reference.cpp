// The reference: the seeded input generator, the forward and the backward in every precision,
// on all rows or a selection (and all keys or a selection for the backward).
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <array>
#include <stdexcept>

#include "arrays.hpp"
#include "bindings.hpp"
#include "nsa/golden/golden_file.hpp"
#include "nsa/ref/generate.hpp"
#include "shapes.hpp"

namespace nsa::py {

using nsa::ref::Branch;
using nsa::ref::Inputs;
using nsa::ref::ValidConfig;

nsa::ref::Precision parse_precision(const std::string& name) {
  for (auto p : {nsa::ref::Precision::f64, nsa::ref::Precision::f128, nsa::ref::Precision::bin50,
                 nsa::ref::Precision::baseline})
    if (name == nsa::ref::to_string(p)) return p;
  throw std::invalid_argument("precision '" + name + "': expected one of f64|f128|bin50|baseline");
}

namespace {

// The vector of Inputs (const or not) that holds input `name` (shapes.hpp's names); null for
// "indices", which is int32.
template <class In>
auto input_slot(In& in, const std::string& name) -> decltype(&in.q) {
  for (Branch b : nsa::ref::kAllBranches) {
    const std::string s(nsa::ref::to_string(b));
    const int i = static_cast<int>(b);
    if (name == "k_" + s) return &in.k[i];
    if (name == "v_" + s) return &in.v[i];
    if (name == "g_" + s) return &in.gate[i];
  }
  if (name == "q") return &in.q;
  if (name == "k_tilde") return &in.k_tilde;
  if (name == "v_tilde") return &in.v_tilde;
  for (auto* phi : {&in.phi_k, &in.phi_v}) {
    const std::string prefix = phi == &in.phi_k ? "phi_k_" : "phi_v_";
    if (name == prefix + "pos") return &phi->pos;
    if (name == prefix + "w1") return &phi->w1;
    if (name == prefix + "b1") return &phi->b1;
    if (name == prefix + "w2") return &phi->w2;
    if (name == prefix + "b2") return &phi->b2;
  }
  return nullptr;
}

nb::list as_list(const std::vector<int64_t>& v) {
  nb::list l;
  for (int64_t x : v) l.append(x);
  return l;
}

}  // namespace

Inputs inputs_from(const ValidConfig& vc, const nb::dict& arrays) {
  Inputs in;
  for (const auto& [name, shape] : named_input_shapes(vc)) {
    bool found = false;
    if (name == "indices")
      found = take(arrays, name, shape, in.indices);
    else
      found = take(arrays, name, shape, *input_slot(in, name));
    if (!found)
      throw std::invalid_argument("input '" + name + "' is missing (shape " + shape_string(shape) +
                                  ")");
  }
  return in;
}

nb::dict inputs_to_dict(const ValidConfig& vc, const Inputs& in) {
  nb::dict d;
  for (const auto& [name, shape] : named_input_shapes(vc)) {
    if (name == "indices")
      d[name.c_str()] = to_numpy(in.indices, shape);
    else
      d[name.c_str()] = to_numpy(*input_slot(in, name), shape);
  }
  return d;
}

std::vector<std::string> forward_output_names(const ValidConfig& vc) {
  auto names = nsa::golden::expected_tensor_names(vc);
  if (vc.cfg.enable_slc && vc.cfg.given_indices) names.push_back("indices");
  return names;
}

nb::dict outputs_to_dict(const ValidConfig& vc, const nsa::ref::Outputs& out,
                         const std::vector<std::string>& names) {
  const auto r = static_cast<int64_t>(out.rows.size());
  const auto h = static_cast<int64_t>(out.heads.size());
  const auto g = static_cast<int64_t>(out.groups.size());
  nb::dict tensors;
  for (const auto& name : names) {
    const Shape shape = output_shape(vc, name, r, h, g);
    const auto n = element_count(shape);
    if (name == "indices") {
      if (static_cast<int64_t>(out.indices.size()) == n)
        tensors[name.c_str()] = to_numpy(out.indices, shape);
      continue;
    }
    const auto* v = out.tensor(name);
    if (v && static_cast<int64_t>(v->size()) == n) tensors[name.c_str()] = to_numpy(*v, shape);
  }
  nb::dict d;
  d["tensors"] = tensors;
  d["rows"] = as_list(out.rows);
  d["heads"] = as_list(out.heads);
  d["groups"] = as_list(out.groups);
  return d;
}

nsa::ref::Outputs candidate_outputs(const ValidConfig& vc, const nb::dict& arrays) {
  const auto& c = vc.cfg;
  nsa::ref::Outputs o;
  for (Branch b : nsa::ref::kAllBranches) {
    if (!c.enabled(b)) continue;
    const std::string s(nsa::ref::to_string(b));
    const int i = static_cast<int>(b);
    take(arrays, "o_" + s, output_shape(vc, "o_" + s, vc.total_q, c.h_q, c.h_kv), o.o_branch[i]);
    take(arrays, "lse_" + s, output_shape(vc, "lse_" + s, vc.total_q, c.h_q, c.h_kv), o.lse[i]);
  }
  take(arrays, "o", output_shape(vc, "o", vc.total_q, c.h_q, c.h_kv), o.o);
  if (c.enable_slc)
    take(arrays, "indices", output_shape(vc, "indices", vc.total_q, c.h_q, c.h_kv), o.indices);
  return o;
}

nb::dict grads_to_dict(const ValidConfig& vc, const nsa::ref::Gradients& g,
                       const nsa::ref::GradSelection& sel) {
  const auto rows = static_cast<int64_t>(g.rows.size());
  const auto keys = static_cast<int64_t>(g.keys.size());
  nb::dict tensors;
  for (const auto& [name, shape] : grad_shapes(vc, rows, keys)) {
    const bool query_side = name == "dq" || name.rfind("dg_", 0) == 0;
    const bool phi = name.rfind("dphi_", 0) == 0;
    const bool computed = query_side ? sel.query_grads : sel.key_grads && (!phi || sel.phi_params);
    if (computed) tensors[name.c_str()] = to_numpy(nsa::ref::grad_tensor(vc, g, name), shape);
  }
  nb::dict d;
  d["tensors"] = tensors;
  d["rows"] = as_list(g.rows);
  d["keys"] = as_list(g.keys);
  return d;
}

nsa::ref::Gradients candidate_grads(const ValidConfig& vc, const nb::dict& arrays) {
  const NamedShapes shapes = grad_shapes(vc, vc.total_q, vc.total_k);
  nsa::ref::Gradients g;
  for (auto [key, value] : arrays) {
    const auto name = nb::cast<std::string>(key);
    const Shape& shape = shape_of(shapes, name, "gradient");
    nb::dict one;
    one[key] = value;
    take(one, name, shape, nsa::ref::grad_tensor(vc, g, name));
  }
  return g;
}

void bind_reference(nb::module_& m) {
  m.def(
      "generate_inputs",
      [](const ValidConfig& vc, uint64_t seed, const std::string& regime) {
        nsa::ref::Regime r;
        if (!nsa::ref::parse_regime(regime, r))
          throw std::invalid_argument("regime '" + regime +
                                      "': expected one of typical|peaked|ties|extreme");
        Inputs in;
        {
          nb::gil_scoped_release unlocked;
          in = nsa::ref::generate_inputs(vc, seed, r);
        }
        return inputs_to_dict(vc, in);
      },
      nb::arg("config"), nb::arg("seed"), nb::arg("regime") = "typical");
  m.def(
      "generate_grad_output",
      [](const ValidConfig& vc, uint64_t seed) {
        return to_numpy(nsa::ref::generate_grad_output(vc, seed),
                        {vc.total_q, vc.cfg.h_q, vc.cfg.d_v});
      },
      nb::arg("config"), nb::arg("seed"));
  m.def(
      "forward",
      [](const ValidConfig& vc, const nb::dict& arrays, const std::string& precision,
         const std::vector<int64_t>& rows, const std::vector<int64_t>& heads, bool keep_scores,
         int threads) {
        const Inputs in = inputs_from(vc, arrays);
        const auto p = parse_precision(precision);
        nsa::ref::RowSelection sel{rows, heads, keep_scores, threads};
        nsa::ref::Outputs out;
        {
          nb::gil_scoped_release unlocked;
          out = nsa::ref::forward(vc, in, p, sel);
        }
        return outputs_to_dict(vc, out, forward_output_names(vc));
      },
      nb::arg("config"), nb::arg("inputs"), nb::arg("precision"), nb::arg("rows"), nb::arg("heads"),
      nb::arg("keep_scores"), nb::arg("threads"));
  m.def(
      "backward",
      [](const ValidConfig& vc, const nb::dict& arrays, const DoubleArray& d_o,
         const std::string& precision, const std::vector<int64_t>& rows,
         const std::vector<int64_t>& keys, bool query_grads, bool key_grads, bool phi_params,
         int threads) {
        const Inputs in = inputs_from(vc, arrays);
        const auto dov = to_vector(d_o, "do", {vc.total_q, vc.cfg.h_q, vc.cfg.d_v});
        const auto p = parse_precision(precision);
        nsa::ref::GradSelection sel{rows, keys, query_grads, key_grads, phi_params, threads};
        nsa::ref::Gradients g;
        {
          nb::gil_scoped_release unlocked;
          g = nsa::ref::backward(vc, in, dov, p, sel);
        }
        return grads_to_dict(vc, g, sel);
      },
      nb::arg("config"), nb::arg("inputs"), nb::arg("do"), nb::arg("precision"), nb::arg("rows"),
      nb::arg("keys"), nb::arg("query_grads"), nb::arg("key_grads"), nb::arg("phi_params"),
      nb::arg("threads"));
}

}  // namespace nsa::py
