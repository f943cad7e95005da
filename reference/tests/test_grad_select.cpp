// select_gradients: the rows and keys of full gradients equal the backward computed on those rows
// and keys alone (GradSelection), bit for bit; bad selections are refused with their index.
#include <catch2/catch.hpp>

#include "nsa/ref/backward.hpp"
#include "nsa/ref/generate.hpp"
#include "test_support.hpp"

using namespace nsa;
using namespace nsa::ref;

namespace {

Config small_varlen() {
  Config c;
  c.profile = "custom";
  c.layout = Layout::varlen;
  c.cu_seqlens_k = {0, 37, 37, 90};
  c.cu_seqlens_q = {0, 12, 12, 40};
  c.h_q = 4;
  c.h_kv = 2;
  c.d_k = 6;
  c.d_v = 5;
  c.cmp_block = 8;
  c.cmp_stride = 4;
  c.slc_block = 8;
  c.top_n = 3;
  c.window = 9;
  c.phi = Phi::linear;
  return c;
}

}  // namespace

TEST_CASE("grad: select_gradients of full gradients equals the backward on those rows and keys") {
  for (const bool shared : {false, true}) {
    Config c = small_varlen();
    c.shared_kv = shared;
    const auto vc = validate(c);
    const auto in = generate_inputs(vc, 5, Regime::typical);
    const auto d_o = generate_grad_output(vc, 5);
    const Gradients full = backward(vc, in, d_o, Precision::f64);
    const std::vector<int64_t> rows = {0, 11, 12, 39}, keys = {0, 36, 37, 50, 89};
    GradSelection sel;
    sel.rows = rows;
    sel.keys = keys;
    const Gradients part = backward(vc, in, d_o, Precision::f64, sel);
    const Gradients picked = select_gradients(vc, full, rows, keys);
    INFO("shared_kv " << shared);
    CHECK(picked.rows == rows);
    CHECK(picked.keys == keys);
    for (const auto& name : grad_tensor_names(vc)) {
      INFO(name);
      CHECK(grad_tensor(vc, picked, name) == grad_tensor(vc, part, name));
    }
  }
}

TEST_CASE("grad: select_gradients refuses partial gradients and rows or keys out of range") {
  const auto vc = validate(small_varlen());
  const auto in = generate_inputs(vc, 5, Regime::typical);
  const auto d_o = generate_grad_output(vc, 5);
  const Gradients full = backward(vc, in, d_o, Precision::f64);
  CHECK_THROWS_WITH(select_gradients(vc, full, {0, 40}, {}),
                    Catch::Contains("rows[1] = 40 is not in [0, 40)"));
  CHECK_THROWS_WITH(select_gradients(vc, full, {}, {-1}),
                    Catch::Contains("keys[0] = -1 is not in [0, 90)"));
  GradSelection sel;
  sel.rows = {3};
  const Gradients part = backward(vc, in, d_o, Precision::f64, sel);
  CHECK_THROWS_WITH(select_gradients(vc, part, {3}, {}),
                    Catch::Contains("hold 1 rows, expected all 40"));
}
