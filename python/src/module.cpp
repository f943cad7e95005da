// nsa_verify._core: the extension behind the nsa_verify package (docs/python.md). The Python
// modules give it checked, C-contiguous numpy arrays; this file registers the parts and turns the
// libraries' exceptions into the package's (nsa_verify/_errors.py).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include "bindings.hpp"
#include "nsa/cuda/forward.hpp"
#include "nsa/golden/golden_file.hpp"
#include "nsa/ref/config.hpp"

namespace nb = nanobind;

namespace {

// The package's exception classes, kept for the life of the process (translators outlive any
// module state).
struct ErrorClasses {
  PyObject* config_error;
  PyObject* golden_error;
  PyObject* cuda_error;
};

void translate(const std::exception_ptr& p, void* payload) {
  const auto* classes = static_cast<const ErrorClasses*>(payload);
  try {
    std::rethrow_exception(p);
  } catch (const nsa::ref::ConfigError& e) {
    // ConfigError(message, field, value, rule), a ValueError.
    nb::object err = nb::borrow(classes->config_error)(e.what(), e.field(), e.value(), e.rule());
    PyErr_SetObject(classes->config_error, err.ptr());
  } catch (const nsa::golden::GoldenError& e) {
    PyErr_SetString(classes->golden_error, e.what());
  } catch (const nsa::cuda::CudaError& e) {
    PyErr_SetString(classes->cuda_error, e.what());
  }
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "NSA Verify: the reference, golden files and the judge (docs/python.md)";
  m.attr("__version__") = NSA_VERIFY_VERSION;
  m.attr("built_with_cuda") = static_cast<bool>(NSA_VERIFY_HAVE_CUDA);

  nb::module_ errors = nb::module_::import_("nsa_verify._errors");
  auto keep = [&](const char* name) { return nb::object(errors.attr(name)).release().ptr(); };
  static ErrorClasses classes{keep("ConfigError"), keep("GoldenError"), keep("CudaError")};
  nb::register_exception_translator(translate, &classes);

  nsa::py::bind_config(m);
  nsa::py::bind_reference(m);
  nsa::py::bind_golden(m);
  nsa::py::bind_judge(m);
  nsa::py::bind_cuda(m);
}
