// Golden file reader and writer: round trip, the two-byte float types against HDF5's own
// conversion, and rejection of damaged files with errors naming case, dataset and expectation.
#include <hdf5.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "golden_test_support.hpp"
#include "h5.hpp"
#include "half.hpp"

using namespace nsa::golden;
using namespace nsa::golden::test;
using nsa::ref::Dtype;

TEST_CASE("golden io: write then read gives back every value", "[golden]") {
  const auto path = written_sample("roundtrip.h5");
  const auto back = read_golden(path);
  const auto& orig = sample();
  REQUIRE(back.suite == "smoke");
  REQUIRE(back.cases.size() == orig.cases.size());
  for (std::size_t i = 0; i < orig.cases.size(); ++i) {
    const auto& a = orig.cases[i];
    const auto& b = back.cases[i];
    INFO(a.name);
    CHECK(a.name == b.name);
    CHECK(nsa::ref::describe(a.vc.cfg) == nsa::ref::describe(b.vc.cfg));
    CHECK(a.seed == b.seed);
    CHECK(a.regime == b.regime);
    CHECK(b.precision == nsa::ref::Precision::f64);
    CHECK(a.inputs.q == b.inputs.q);
    for (int br = 0; br < 3; ++br) {
      CHECK(a.inputs.k[br] == b.inputs.k[br]);
      CHECK(a.inputs.v[br] == b.inputs.v[br]);
      CHECK(a.inputs.gate[br] == b.inputs.gate[br]);
    }
    CHECK(a.inputs.phi_k.w1 == b.inputs.phi_k.w1);
    CHECK(a.inputs.phi_v.b2 == b.inputs.phi_v.b2);
    CHECK(a.inputs.indices == b.inputs.indices);
    for (int br = 0; br < 3; ++br) {
      if (!a.vc.cfg.enabled(static_cast<nsa::ref::Branch>(br))) continue;
      CHECK(a.truth.o_branch[br] == b.truth.o_branch[br]);
      CHECK(a.truth.lse[br] == b.truth.lse[br]);
    }
    CHECK(a.truth.o == b.truth.o);
    CHECK(a.truth.indices == b.truth.indices);
    if (!a.vc.cfg.given_indices) {
      CHECK(a.truth.scores == b.truth.scores);
      CHECK(a.truth.p_cmp == b.truth.p_cmp);
    }
    CHECK(a.baseline_err.at("o") == b.baseline_err.at("o"));
  }
  // Writing the same content twice gives the same content (the regeneration test relies on it).
  const auto again = written_sample("roundtrip2.h5");
  CHECK(diff_files(path, again).empty());
  std::filesystem::remove(path);
  std::filesystem::remove(again);
}

TEST_CASE("golden io: two-byte formats agree with IEEE and with HDF5's own conversion",
          "[golden]") {
  // Constants from the IEEE 754 binary16 and bfloat16 definitions.
  CHECK(encode_half(1.0, kFp16) == 0x3C00);
  CHECK(encode_half(-2.0, kFp16) == 0xC000);
  CHECK(encode_half(65504.0, kFp16) == 0x7BFF);
  CHECK(encode_half(std::ldexp(1.0, -24), kFp16) == 0x0001);
  CHECK(encode_half(1.0, kBf16) == 0x3F80);
  CHECK(encode_half(-0.0, kBf16) == 0x8000);
  CHECK_THROWS(encode_half(1.0 + std::ldexp(1.0, -11), kFp16));
  CHECK_THROWS(encode_half(65520.0, kFp16));
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const auto b = static_cast<uint16_t>(bits);
    // bfloat16 is the top half of a binary32.
    const uint32_t wide = bits << 16;
    float f;
    std::memcpy(&f, &wide, sizeof f);
    const double v = decode_half(b, kBf16);
    if (std::isnan(f)) {
      CHECK(std::isnan(v));
      continue;
    }
    REQUIRE(v == static_cast<double>(f));
    REQUIRE(encode_half(v, kBf16) == b);
    const double h = decode_half(b, kFp16);
    if (!std::isnan(h)) REQUIRE(encode_half(h, kFp16) == b);
  }
  // HDF5 converting our stored types to native float must see the same values.
  for (Dtype dt : {Dtype::f16, Dtype::bf16}) {
    const auto path = temp_path("half.h5");
    const HalfFormat fmt = dt == Dtype::f16 ? kFp16 : kBf16;
    std::vector<uint16_t> bits;
    for (uint32_t b = 0; b < 65536; ++b) {
      const double v = decode_half(static_cast<uint16_t>(b), fmt);
      if (std::isfinite(v)) bits.push_back(static_cast<uint16_t>(b));
    }
    {
      const auto f = h5::create_file(path);
      const auto t = h5::file_type_of(dt);
      h5::write_dataset(f, "x", t, t, bits.data(), {static_cast<int64_t>(bits.size())});
    }
    const auto f = h5::open_file(path);
    const auto ds = h5::open_dataset(f, "x", "test");
    CHECK(h5::type_name(ds) == std::string(nsa::ref::to_string(dt)));
    std::vector<float> conv(bits.size());
    REQUIRE(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, conv.data()) >= 0);
    const auto ours = h5::read_floats(ds, "test");
    std::size_t bad = 0;
    for (std::size_t i = 0; i < bits.size(); ++i) bad += static_cast<double>(conv[i]) != ours[i];
    CHECK(bad == 0);
    std::filesystem::remove(path);
  }
}

TEST_CASE("golden io: damaged files are rejected with the case, dataset and expectation",
          "[golden]") {
  const auto path = written_sample("damaged.h5");
  const auto c0 = sample().cases[0].name;  // fp32, padded
  SECTION("not an HDF5 file") {
    std::ofstream(path, std::ios::trunc) << "{\"t_k\": 5}";
    CHECK(contains(error_of([&] { read_golden(path); }), "not an HDF5 file"));
  }
  SECTION("missing file") {
    CHECK(contains(error_of([&] { read_golden(path + ".absent"); }), ".absent"));
  }
  SECTION("truncated") {
    const auto size = std::filesystem::file_size(path);
    for (double frac : {0.9, 0.5, 0.1, 0.001}) {
      std::filesystem::resize_file(path, static_cast<uintmax_t>(size * frac));
      const auto e = error_of([&] { read_golden(path); });
      INFO(frac << ": " << e);
      CHECK(e != "<no error>");
      CHECK(contains(e, path));
    }
  }
  SECTION("another schema version") {
    {
      Rw rw(path);
      h5::write_attr(rw.f, "schema_version", int64_t{kSchemaVersion + 1});
    }
    const auto e = error_of([&] { read_golden(path); });
    CHECK(contains(e, "schema_version " + std::to_string(kSchemaVersion + 1)));
    CHECK(contains(e,
                   "versions 1 (forward only), 2 (forward and backward) and 3 (also given "
                   "compressed caches)"));
  }
  SECTION("missing dataset") {
    {
      Rw rw(path);
      REQUIRE(H5Ldelete(rw.f, ("cases/" + c0 + "/inputs/q").c_str(), H5P_DEFAULT) >= 0);
    }
    const auto e = error_of([&] { read_golden(path); });
    CHECK(contains(e, "case " + c0));
    CHECK(contains(e, "inputs/q is missing"));
  }
  SECTION("missing expected output") {
    {
      Rw rw(path);
      REQUIRE(H5Ldelete(rw.f, ("cases/" + c0 + "/expected/o_slc").c_str(), H5P_DEFAULT) >= 0);
    }
    const auto e = error_of([&] { read_golden(path); });
    CHECK(contains(e, "case " + c0));
    CHECK(contains(e, "expected/o_slc is missing"));
  }
  SECTION("wrong shape") {
    replace_dataset(path, "cases/" + c0 + "/inputs/q", H5T_IEEE_F32LE, {130, 4, 15});
    const auto e = error_of([&] { read_golden(path); });
    CHECK(contains(e, "case " + c0));
    CHECK(contains(e, "inputs/q has shape [130, 4, 15], expected [130, 4, 16]"));
  }
  SECTION("wrong dtype") {
    replace_dataset(path, "cases/" + c0 + "/inputs/k_win", H5T_IEEE_F64LE, {130, 2, 16});
    const auto e = error_of([&] { read_golden(path); });
    CHECK(contains(e, "inputs/k_win has type fp64, expected fp32"));
  }
  SECTION("wrong expected dtype") {
    replace_dataset(path, "cases/" + c0 + "/expected/o", H5T_IEEE_F32LE, {130, 4, 16});
    const auto e = error_of([&] { read_golden(path); });
    CHECK(contains(e, "expected/o has type fp32, expected fp64"));
  }
  SECTION("dtype attribute disagrees") {
    {
      Rw rw(path);
      const auto ds = h5::open_dataset(rw.f, "cases/" + c0 + "/inputs/q", "test");
      h5::write_attr(ds, "dtype", std::string("bf16"));
    }
    CHECK(contains(error_of([&] { read_golden(path); }), "dtype attribute 'bf16'"));
  }
  SECTION("config attribute damaged") {
    {
      Rw rw(path);
      const auto g = h5::open_group(rw.f, "cases/" + c0, "test");
      h5::write_attr(g, "config_json", std::string("{\"t_k\": \"long\"}"));
    }
    const auto e = error_of([&] { read_golden(path); });
    CHECK(contains(e, "config_json"));
    CHECK(contains(e, "t_k"));
  }
  SECTION("an input value that the dtype cannot hold") {
    const auto bf = sample().cases[1].name;  // bf16
    {
      Rw rw(path);
      const auto ds = h5::open_dataset(rw.f, "cases/" + bf + "/inputs/g_win", "test");
      const uint16_t nan_bits = 0x7FC0;    // a bfloat16 NaN, written as raw bits
      const hid_t type = H5Dget_type(ds);  // the stored type itself: no conversion
      const hid_t space = H5Dget_space(ds);
      hsize_t one = 1, start[2] = {0, 0}, count[2] = {1, 1};  // g_win is [total_q, h_q]
      REQUIRE(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr) >= 0);
      const hid_t mem = H5Screate_simple(1, &one, nullptr);
      REQUIRE(H5Dwrite(ds, type, mem, space, H5P_DEFAULT, &nan_bits) >= 0);
      H5Sclose(mem);
      H5Sclose(space);
      H5Tclose(type);
    }
    const auto e = error_of([&] { read_golden(path); });
    CHECK(contains(e, "case " + bf));
    CHECK(contains(e, "inputs"));
  }
  std::filesystem::remove(path);
}

TEST_CASE("golden diff: a changed value, attribute or dataset is reported", "[golden]") {
  const auto a = written_sample("diff_a.h5");
  const auto b = written_sample("diff_b.h5");
  REQUIRE(diff_files(a, b).empty());
  const auto c0 = sample().cases[0].name;
  {
    Rw rw(b);
    const auto ds = h5::open_dataset(rw.f, "cases/" + c0 + "/expected/o", "test");
    auto x = h5::read_floats(ds, "test");
    x[5] = std::nextafter(x[5], 1e9);  // one ulp of float64
    REQUIRE(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x.data()) >= 0);
    const auto g = h5::open_group(rw.f, "cases/" + c0, "test");
    h5::write_attr(g, "window", int64_t{21});
  }
  const auto d = diff_files(a, b);
  REQUIRE(d.size() == 2);
  CHECK(contains(d[0] + d[1], "cases/" + c0 + "/expected/o: data differ"));
  CHECK(contains(d[0] + d[1], "attribute window: values differ"));
  std::filesystem::remove(a);
  std::filesystem::remove(b);
}

TEST_CASE("suites: every case of every suite validates, names are unique and ordered", "[golden]") {
  for (const auto& s : suites()) {
    INFO(s.name);
    const auto cases = suite_cases(s.name);
    CHECK(!cases.empty());
    for (std::size_t i = 0; i < cases.size(); ++i) {
      INFO(cases[i].name);
      CHECK_NOTHROW(nsa::ref::validate(cases[i].cfg));
      if (i) CHECK(cases[i - 1].name < cases[i].name);
    }
  }
  CHECK_THROWS_AS(suite_cases("nope"), std::invalid_argument);
}

TEST_CASE("golden io: a dataset declaring more than it stores is refused before allocating",
          "[golden]") {
  const auto path = temp_path("sparse.h5");
  {
    const auto f = h5::create_file(path);
    const hsize_t dims = hsize_t{1} << 30, chunk = 4096;
    const hid_t space = H5Screate_simple(1, &dims, nullptr);
    const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    const hid_t ds =
        H5Dcreate2(f, "huge", H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);  // unwritten
    REQUIRE(ds >= 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
  }
  const auto f = h5::open_file(path);
  const auto ds = h5::open_dataset(f, "huge", "test");
  const auto e = error_of([&] { h5::read_floats(ds, "dataset huge"); });
  CHECK(contains(e, "dataset huge: declares 1073741824 elements but stores only 0 bytes"));
  std::filesystem::remove(path);
}
