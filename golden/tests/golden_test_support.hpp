// Shared helpers of the golden tests: the smoke suite with the double truth as a sample golden
// file, temporary paths, and HDF5 surgery on written files.
#pragma once

#include <hdf5.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "h5.hpp"
#include "nsa/golden/suites.hpp"

namespace nsa::golden::test {

inline std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("nsa_golden_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

// Smoke cases with the f64 truth: fast, and every dtype, layout and phi of the schema.
inline const GoldenFile& sample() {
  static const GoldenFile f = [] {
    GoldenFile g;
    g.suite = "smoke";
    for (const auto& s : suite_cases("smoke"))
      g.cases.push_back(make_case(s, nsa::ref::Precision::f64, 2));
    return g;
  }();
  return f;
}

inline std::string written_sample(const std::string& name) {
  const auto path = temp_path(name);
  write_golden(path, sample());
  return path;
}

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const GoldenError& e) {
    return e.what();
  }
  return "<no error>";
}

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Opens a written file for surgery with the plain HDF5 API.
struct Rw {
  hid_t f;
  explicit Rw(const std::string& path) {
    h5::silence_errors();
    f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(f >= 0);
  }
  ~Rw() { H5Fclose(f); }
};

inline void replace_dataset(const std::string& path, const std::string& ds, hid_t type,
                            std::vector<hsize_t> dims) {
  Rw rw(path);
  REQUIRE(H5Ldelete(rw.f, ds.c_str(), H5P_DEFAULT) >= 0);
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t d = H5Dcreate2(rw.f, ds.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(d >= 0);
  H5Dclose(d);
  H5Sclose(space);
}

}  // namespace nsa::golden::test
