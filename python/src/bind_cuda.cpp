// The project's CUDA forward on device tensors, without host copies: the inputs and the output
// buffers arrive through DLPack (torch CUDA tensors, allocated by nsa_verify/cuda.py) and their
// device pointers go to nsa::cuda::Plan::run. In a build without CUDA the same binding is there
// and nsa::cuda's stub throws CudaError ("this build has no CUDA kernels").
#include <nanobind/stl/string.h>

#include <memory>
#include <stdexcept>

#include "arrays.hpp"
#include "bindings.hpp"
#include "nsa/cuda/forward.hpp"
#include "shapes.hpp"

namespace nsa::py {

namespace {

namespace dl = nb::dlpack;
using AnyArray = nb::ndarray<>;
using nsa::ref::Branch;
using nsa::ref::ValidConfig;

dl::dtype dtype_of(nsa::ref::Dtype d) {
  switch (d) {
    case nsa::ref::Dtype::f16:
      return {static_cast<uint8_t>(dl::dtype_code::Float), 16, 1};
    case nsa::ref::Dtype::bf16:
      return {static_cast<uint8_t>(dl::dtype_code::Bfloat), 16, 1};
    case nsa::ref::Dtype::f64:
      return {static_cast<uint8_t>(dl::dtype_code::Float), 64, 1};
    case nsa::ref::Dtype::f32:
      break;
  }
  return {static_cast<uint8_t>(dl::dtype_code::Float), 32, 1};
}

const dl::dtype kFloat32{static_cast<uint8_t>(dl::dtype_code::Float), 32, 1};
const dl::dtype kInt32{static_cast<uint8_t>(dl::dtype_code::Int), 32, 1};

std::string dtype_name(dl::dtype t) {
  const auto code = static_cast<dl::dtype_code>(t.code);
  const char* kind = code == dl::dtype_code::Float    ? "float"
                     : code == dl::dtype_code::Bfloat ? "bfloat"
                     : code == dl::dtype_code::Int    ? "int"
                     : code == dl::dtype_code::UInt   ? "uint"
                                                      : "dlpack type code ";
  return kind + std::to_string(t.bits);
}

// Checks and hands out the device pointers of one call; every tensor on one CUDA device.
class DeviceTensors {
 public:
  // The pointer of `dict[name]` (nullptr when absent and !required) after checking that it is
  // a C-contiguous CUDA tensor of `dtype` and `shape` on the device of the others.
  void* get(const nb::dict& dict, const std::string& name, const Shape& shape, dl::dtype dtype,
            bool required) {
    const nb::str key(name.c_str());
    if (!dict.contains(key)) {
      if (required)
        throw std::invalid_argument("cuda forward: tensor '" + name + "' is missing (shape " +
                                    shape_string(shape) + ")");
      return nullptr;
    }
    AnyArray a;
    if (!nb::try_cast(dict[key], a, /*convert=*/false))
      throw std::invalid_argument("cuda forward: '" + name +
                                  "' is not a DLPack tensor (a torch CUDA tensor)");
    if (a.device_type() != nb::device::cuda::value)
      throw std::invalid_argument("cuda forward: '" + name +
                                  "' is not on a CUDA device (DLPack device type " +
                                  std::to_string(a.device_type()) + ")");
    if (device_ < 0) device_ = a.device_id();
    if (a.device_id() != device_)
      throw std::invalid_argument("cuda forward: '" + name +
                                  "' is on cuda:" + std::to_string(a.device_id()) +
                                  ", the others on cuda:" + std::to_string(device_));
    if (a.dtype() != dtype)
      throw std::invalid_argument("cuda forward: '" + name + "' has dtype " +
                                  dtype_name(a.dtype()) + ", expected " + dtype_name(dtype));
    Shape got;
    for (std::size_t i = 0; i < a.ndim(); ++i) got.push_back(static_cast<int64_t>(a.shape(i)));
    if (got != shape)
      throw std::invalid_argument("cuda forward: '" + name + "' has shape " + shape_string(got) +
                                  ", expected " + shape_string(shape));
    int64_t expect = 1;
    for (std::size_t i = a.ndim(); i-- > 0;) {
      if (a.shape(i) > 1 && a.stride(i) != expect)
        throw std::invalid_argument("cuda forward: '" + name +
                                    "' is not C-contiguous (call .contiguous())");
      expect *= static_cast<int64_t>(a.shape(i));
    }
    return a.data();
  }

 private:
  int device_ = -1;
};

struct CudaPlan {
  nsa::ref::ValidConfig vc;
  std::unique_ptr<nsa::cuda::Plan> plan;

  explicit CudaPlan(const ValidConfig& config) : vc(config) {
    if (!nsa::cuda::device_available())
      throw nsa::cuda::CudaError(NSA_VERIFY_HAVE_CUDA
                                     ? "cuda forward: no CUDA device available"
                                     : "cuda forward: " + nsa::cuda::unsupported(vc));
    if (const auto why = nsa::cuda::unsupported(vc); !why.empty())
      throw std::invalid_argument("cuda forward: " + why);
    plan = std::make_unique<nsa::cuda::Plan>(vc);
  }

  void run(const nb::dict& inputs, const nb::dict& outputs) {
    const auto& c = vc.cfg;
    const dl::dtype dt = dtype_of(c.dtype);
    DeviceTensors t;
    nsa::cuda::DeviceInputs in;
    for (const auto& [name, shape] : named_input_shapes(vc)) {
      const bool is_index = name == "indices";
      const void* p = t.get(inputs, name, shape, is_index ? kInt32 : dt, true);
      if (is_index) {
        in.indices = static_cast<const int32_t*>(p);
        continue;
      }
      for (Branch b : nsa::ref::kAllBranches) {
        const std::string s(nsa::ref::to_string(b));
        const int i = static_cast<int>(b);
        if (name == "k_" + s) in.k[i] = p;
        if (name == "v_" + s) in.v[i] = p;
        if (name == "g_" + s) in.gate[i] = p;
      }
      if (name == "q") in.q = p;
      const void** phi[] = {&in.phi_k_pos, &in.phi_k_w1, &in.phi_k_b1, &in.phi_k_w2, &in.phi_k_b2,
                            &in.phi_v_pos, &in.phi_v_w1, &in.phi_v_b1, &in.phi_v_w2, &in.phi_v_b2};
      const char* phi_names[] = {"phi_k_pos", "phi_k_w1", "phi_k_b1", "phi_k_w2", "phi_k_b2",
                                 "phi_v_pos", "phi_v_w1", "phi_v_b1", "phi_v_w2", "phi_v_b2"};
      for (int j = 0; j < 10; ++j)
        if (name == phi_names[j]) *phi[j] = p;
    }
    const int64_t rows = vc.total_q;
    auto shape = [&](const std::string& name) {
      return output_shape(vc, name, rows, c.h_q, c.h_kv);
    };
    nsa::cuda::DeviceOutputs out;
    out.o = t.get(outputs, "o", shape("o"), dt, true);
    for (Branch b : nsa::ref::kAllBranches) {
      if (!c.enabled(b)) continue;
      const std::string s(nsa::ref::to_string(b));
      const int i = static_cast<int>(b);
      out.o_branch[i] = t.get(outputs, "o_" + s, shape("o_" + s), dt, false);
      out.lse[i] =
          static_cast<float*>(t.get(outputs, "lse_" + s, shape("lse_" + s), kFloat32, false));
    }
    const bool topn = c.enable_slc && !c.given_indices;
    if (topn) {
      out.indices =
          static_cast<int32_t*>(t.get(outputs, "indices", shape("indices"), kInt32, false));
      out.scores = static_cast<float*>(t.get(outputs, "scores", shape("scores"), kFloat32, false));
    }
    if (c.enable_cmp || topn)
      out.p_cmp = static_cast<float*>(t.get(outputs, "p_cmp", shape("p_cmp"), kFloat32, false));
    nb::gil_scoped_release unlocked;
    plan->run(in, out);
  }
};

}  // namespace

void bind_cuda(nb::module_& m) {
  m.def("cuda_device_available", &nsa::cuda::device_available);
  m.def("cuda_device_name", &nsa::cuda::device_name);
  m.def("cuda_unsupported", &nsa::cuda::unsupported, nb::arg("config"),
        "Empty when the kernels support the config, else the reason.");
  nb::class_<CudaPlan>(m, "CudaPlan")
      .def(nb::init<const ValidConfig&>(), nb::arg("config"))
      .def("run", &CudaPlan::run, nb::arg("inputs"), nb::arg("outputs"),
           "Runs the forward on the default stream; inputs and outputs are dicts of CUDA "
           "tensors (DLPack) named as in golden/SCHEMA.md.");
}

}  // namespace nsa::py
