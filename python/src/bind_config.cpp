// Configs: parsing (JSON text; the Python side turns dicts and files into it), validation,
// profiles, and what a ValidConfig tells about the problem's tensors.
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "bindings.hpp"
#include "nsa/golden/golden_file.hpp"
#include "nsa/ref/config_json.hpp"
#include "shapes.hpp"

namespace nsa::py {

namespace {

nb::tuple as_tuple(const Shape& shape) {
  nb::list l;
  for (int64_t d : shape) l.append(d);
  return nb::tuple(l);
}

nb::dict shapes_dict(const NamedShapes& table) {
  nb::dict d;
  for (const auto& [name, shape] : table) d[name.c_str()] = as_tuple(shape);
  return d;
}

}  // namespace

void bind_config(nb::module_& m) {
  using nsa::ref::ValidConfig;
  nb::class_<ValidConfig>(m, "ValidConfig")
      .def_prop_ro("json", [](const ValidConfig& vc) { return nsa::ref::config_to_json(vc.cfg); })
      .def_ro("total_q", &ValidConfig::total_q)
      .def_ro("total_k", &ValidConfig::total_k)
      .def_ro("group", &ValidConfig::group)
      .def_ro("scale", &ValidConfig::scale)
      .def_ro("max_t_k", &ValidConfig::max_t_k)
      .def_prop_ro("max_cmp_blocks", &ValidConfig::max_cmp_blocks)
      .def_prop_ro("max_slc_blocks", &ValidConfig::max_slc_blocks)
      .def_prop_ro("sequences",
                   [](const ValidConfig& vc) {
                     nb::list l;
                     for (const auto& s : vc.seqs)
                       l.append(nb::make_tuple(s.q_begin, s.k_begin, s.t_q, s.t_k));
                     return l;
                   })
      .def("input_shapes",
           [](const ValidConfig& vc) { return shapes_dict(named_input_shapes(vc)); })
      .def("output_shapes",
           [](const ValidConfig& vc) {
             return shapes_dict(output_shapes(vc, vc.total_q, vc.cfg.h_q, vc.cfg.h_kv));
           })
      .def("grad_shapes",
           [](const ValidConfig& vc) {
             return shapes_dict(grad_shapes(vc, vc.total_q, vc.total_k));
           })
      .def("describe", [](const ValidConfig& vc) { return nsa::ref::describe(vc.cfg); });

  m.def(
      "validate_json",
      [](const std::string& text) { return nsa::ref::validate(nsa::ref::config_from_json(text)); },
      nb::arg("text"), "Parses a config's JSON text and validates it (ConfigError on a bad rule).");
  m.def(
      "profile_json",
      [](const std::string& name) {
        return nsa::ref::config_to_json(nsa::ref::profile_config(name));
      },
      nb::arg("name"), "The JSON text of a named profile's config (ConfigError for another name).");
  m.def("profile_names", &nsa::ref::profile_names);
}

}  // namespace nsa::py
