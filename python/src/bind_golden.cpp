// Golden files (golden/SCHEMA.md) through the project's reader: cases with their config, inputs
// (widened exactly to float64), upstream gradient, truth, gradients and tolerance attributes; and
// candidate files through the project's writer.
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <utility>

#include "arrays.hpp"
#include "bindings.hpp"
#include "nsa/golden/golden_file.hpp"
#include "shapes.hpp"

namespace nsa::py {

using nsa::golden::GoldenCase;
using nsa::golden::GoldenFile;

void bind_golden(nb::module_& m) {
  nb::class_<GoldenCase>(m, "GoldenCase")
      .def_ro("name", &GoldenCase::name)
      .def_prop_ro(
          "config", [](const GoldenCase& gc) -> const nsa::ref::ValidConfig& { return gc.vc; },
          nb::rv_policy::reference_internal)
      .def_ro("seed", &GoldenCase::seed)
      .def_prop_ro("regime", [](const GoldenCase& gc) { return nsa::ref::to_string(gc.regime); })
      .def_prop_ro("precision",
                   [](const GoldenCase& gc) { return nsa::ref::to_string(gc.precision); })
      .def_ro("generator_version", &GoldenCase::generator_version)
      .def_ro("has_grad", &GoldenCase::has_grad)
      .def("inputs", [](const GoldenCase& gc) { return inputs_to_dict(gc.vc, gc.inputs); })
      .def("expected",
           [](const GoldenCase& gc) {
             const nb::dict d =
                 outputs_to_dict(gc.vc, gc.truth, nsa::golden::expected_tensor_names(gc.vc));
             return nb::object(d["tensors"]);
           })
      .def_ro("baseline_err", &GoldenCase::baseline_err)
      .def("d_o",
           [](const GoldenCase& gc) -> nb::object {
             if (!gc.has_grad) return nb::none();
             return to_numpy(gc.d_o, {gc.vc.total_q, gc.vc.cfg.h_q, gc.vc.cfg.d_v});
           })
      .def("expected_grads",
           [](const GoldenCase& gc) -> nb::object {
             if (!gc.has_grad) return nb::none();
             const nb::dict d = grads_to_dict(gc.vc, gc.grad_truth);
             return nb::object(d["tensors"]);
           })
      .def_ro("grad_baseline_err", &GoldenCase::grad_baseline_err);

  nb::class_<GoldenFile>(m, "GoldenFile")
      .def_ro("suite", &GoldenFile::suite)
      .def_ro("schema_version", &GoldenFile::schema_version)
      .def("__len__", [](const GoldenFile& f) { return f.cases.size(); })
      .def(
          "case",
          [](const GoldenFile& f, std::size_t i) -> const GoldenCase& {
            if (i >= f.cases.size())
              throw nb::index_error(
                  ("case " + std::to_string(i) + " of " + std::to_string(f.cases.size())).c_str());
            return f.cases[i];
          },
          nb::rv_policy::reference_internal);

  m.def(
      "read_golden",
      [](const std::string& path) {
        nb::gil_scoped_release unlocked;
        return nsa::golden::read_golden(path);
      },
      nb::arg("path"), "Reads and checks a golden file completely (GoldenError when damaged).");

  m.def(
      "write_candidate",
      [](const std::string& path, const GoldenFile& golden, const nb::list& cases) {
        std::vector<std::pair<std::string, nsa::ref::Outputs>> outputs;
        std::map<std::string, nsa::ref::Gradients> grads;
        for (nb::handle entry : cases) {
          if (!nb::isinstance<nb::tuple>(entry) || nb::len(entry) != 3)
            throw nb::type_error(
                "write_candidate: each case is (name, outputs dict, grads dict or None)");
          const auto t = nb::borrow<nb::tuple>(entry);
          const auto name = nb::cast<std::string>(t[0]);
          const GoldenCase* gc = nullptr;
          for (const auto& c : golden.cases)
            if (c.name == name) gc = &c;
          if (!gc)
            throw std::invalid_argument("write_candidate: the golden file has no case '" + name +
                                        "'");
          outputs.emplace_back(name, candidate_outputs(gc->vc, nb::cast<nb::dict>(t[1])));
          if (!t[2].is_none()) grads[name] = candidate_grads(gc->vc, nb::cast<nb::dict>(t[2]));
        }
        nb::gil_scoped_release unlocked;
        nsa::golden::write_candidate(path, outputs, golden, grads);
      },
      nb::arg("path"), nb::arg("golden"), nb::arg("cases"),
      "Writes a candidate file: cases is a list of (case name, outputs dict, grads dict or None).");
}

}  // namespace nsa::py
