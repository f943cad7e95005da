// numpy arrays in and out of the extension. The Python side (nsa_verify/_tensors.py) hands the
// extension C-contiguous float64 / int32 arrays of the shapes it checked; the extension checks
// the sizes again (a direct caller of _core gets an error too, never an out-of-bounds read) and
// copies them into the std::vectors the libraries take. Results leave as numpy arrays that own
// their vector.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace nsa::py {

namespace nb = nanobind;

using Shape = std::vector<int64_t>;
using DoubleArray = nb::ndarray<const double, nb::c_contig, nb::device::cpu>;
using IndexArray = nb::ndarray<const int32_t, nb::c_contig, nb::device::cpu>;

int64_t element_count(const Shape& shape);
std::string shape_string(const Shape& shape);

// The elements of `a`, which must hold exactly element_count(shape) of them; throws
// std::invalid_argument naming `what`, its shape and the expected shape otherwise.
std::vector<double> to_vector(const DoubleArray& a, const std::string& what, const Shape& shape);
std::vector<int32_t> to_vector(const IndexArray& a, const std::string& what, const Shape& shape);

// A numpy array that takes over `v`, viewed with `shape` (element_count(shape) == v.size()).
nb::object to_numpy(std::vector<double> v, const Shape& shape);
nb::object to_numpy(std::vector<int32_t> v, const Shape& shape);

// A dict entry of float64 arrays: `arrays[name]` as a vector of `shape`; false when absent.
bool take(const nb::dict& arrays, const std::string& name, const Shape& shape,
          std::vector<double>& out);
bool take(const nb::dict& arrays, const std::string& name, const Shape& shape,
          std::vector<int32_t>& out);

}  // namespace nsa::py
