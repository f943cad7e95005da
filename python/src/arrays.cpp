#include "arrays.hpp"

#include <stdexcept>
#include <utility>

namespace nsa::py {

int64_t element_count(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const Shape& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + (shape.size() == 1 ? ",)" : ")");
}

namespace {

template <class Array>
Shape shape_of(const Array& a) {
  Shape s;
  for (std::size_t i = 0; i < a.ndim(); ++i) s.push_back(static_cast<int64_t>(a.shape(i)));
  return s;
}

template <class T, class Array>
std::vector<T> copy_out(const Array& a, const std::string& what, const Shape& shape) {
  if (static_cast<int64_t>(a.size()) != element_count(shape))
    throw std::invalid_argument(what + ": shape " + shape_string(shape_of(a)) + ", expected " +
                                shape_string(shape));
  const T* p = a.data();
  return std::vector<T>(p, p + a.size());
}

template <class T>
nb::object wrap(std::vector<T> v, const Shape& shape) {
  if (static_cast<int64_t>(v.size()) != element_count(shape))
    throw std::logic_error("nsa_verify: internal error: " + std::to_string(v.size()) +
                           " elements for shape " + shape_string(shape));
  // numpy needs a data pointer even for zero elements.
  if (v.empty()) v.reserve(1);
  auto* owner = new std::vector<T>(std::move(v));
  nb::capsule release(owner, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  std::vector<std::size_t> dims(shape.begin(), shape.end());
  return nb::cast(nb::ndarray<nb::numpy, T>(owner->data(), dims.size(), dims.data(), release),
                  nb::rv_policy::reference);
}

template <class T, class Array>
bool take_entry(const nb::dict& arrays, const std::string& name, const Shape& shape,
                std::vector<T>& out) {
  const nb::str key(name.c_str());
  if (!arrays.contains(key)) return false;
  const nb::handle value = arrays[key];
  Array a;
  if (!nb::try_cast(value, a, /*convert=*/false)) {
    // What it is instead: an array's dtype and layout, else its type.
    std::string got = nb::str(value.type()).c_str();
    if (nb::hasattr(value, "dtype"))
      got = "dtype " + std::string(nb::str(nb::object(value.attr("dtype"))).c_str()) + " (" + got +
            ")";
    throw std::invalid_argument(name + ": expected a C-contiguous " +
                                (sizeof(T) == 8 ? std::string("float64") : std::string("int32")) +
                                " numpy array, got " + got);
  }
  out = copy_out<T>(a, name, shape);
  return true;
}

}  // namespace

std::vector<double> to_vector(const DoubleArray& a, const std::string& what, const Shape& shape) {
  return copy_out<double>(a, what, shape);
}
std::vector<int32_t> to_vector(const IndexArray& a, const std::string& what, const Shape& shape) {
  return copy_out<int32_t>(a, what, shape);
}

nb::object to_numpy(std::vector<double> v, const Shape& shape) { return wrap(std::move(v), shape); }
nb::object to_numpy(std::vector<int32_t> v, const Shape& shape) {
  return wrap(std::move(v), shape);
}

bool take(const nb::dict& arrays, const std::string& name, const Shape& shape,
          std::vector<double>& out) {
  return take_entry<double, DoubleArray>(arrays, name, shape, out);
}
bool take(const nb::dict& arrays, const std::string& name, const Shape& shape,
          std::vector<int32_t>& out) {
  return take_entry<int32_t, IndexArray>(arrays, name, shape, out);
}

}  // namespace nsa::py
