// check_inputs / check_indices_strict and the row selection: bad input gets an error that names
// the tensor (or index entry) and the value, never a crash or a silent result.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "nsa/ref/forward.hpp"
#include "nsa/ref/generate.hpp"
#include "test_support.hpp"

using namespace nsa;
using namespace nsa::ref;
using Catch::Matchers::Contains;

namespace {

// Two sequences (varlen, keys 10 and 7, the second with a 4-query suffix), 2 KV heads.
Config two_seqs() {
  Config c;
  c.profile = "custom";
  c.layout = Layout::varlen;
  c.cu_seqlens_k = {0, 10, 17};
  c.cu_seqlens_q = {0, 10, 14};
  c.h_q = 4;
  c.h_kv = 2;
  c.d_k = 3;
  c.d_v = 2;
  c.cmp_block = 2;
  c.cmp_stride = 1;
  c.slc_block = 2;
  c.top_n = 4;
  c.window = 3;
  c.given_indices = true;
  return c;
}

std::string error_of(const ValidConfig& vc, const Inputs& in) {
  try {
    forward(vc, in, Precision::f64);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no error>";
}

// Packed query row of (sequence, t) in two_seqs(): sequence 1's queries sit at t = 3..6.
int64_t row_of(int64_t seq, int64_t t) { return seq == 0 ? t : 10 + (t - 3); }

}  // namespace

TEST_CASE("inputs: wrong tensor sizes are named with both sizes") {
  const auto vc = validate(two_seqs());
  const auto good = generate_inputs(vc, 1);
  const auto sh = input_shapes(vc);
  CHECK(error_of(vc, good) == "<no error>");
  {
    auto in = good;
    in.q.pop_back();
    CHECK_THAT(error_of(vc, in), Contains("'q'") && Contains(std::to_string(sh.q - 1)) &&
                                     Contains("expected " + std::to_string(sh.q)));
  }
  {
    auto in = good;
    in.k[1].push_back(0.0);
    CHECK_THAT(error_of(vc, in), Contains("'k_slc'") && Contains(std::to_string(sh.k + 1)));
  }
  {
    auto in = good;
    in.gate[2].clear();
    CHECK_THAT(error_of(vc, in), Contains("'g_win'") && Contains("0 elements"));
  }
  {
    auto in = good;
    in.indices.resize(3);
    CHECK_THAT(error_of(vc, in), Contains("'indices'") && Contains("3 elements"));
  }
  {
    // phi parameters: a linear phi needs P and W; a mean phi takes none.
    Config c = two_seqs();
    c.phi = Phi::linear;
    const auto vl = validate(c);
    auto in = generate_inputs(vl, 1);
    in.phi_v.w1.pop_back();
    CHECK_THAT(error_of(vl, in), Contains("'phi_v.w1'"));
    auto mean_in = good;
    mean_in.phi_k.pos = {1.0};
    CHECK_THAT(error_of(vc, mean_in), Contains("'phi_k.pos'") && Contains("expected 0"));
  }
}

TEST_CASE("inputs: a disabled branch needs no tensors") {
  Config c = two_seqs();
  c.enable_win = false;
  c.given_indices = false;
  const auto vc = validate(c);
  auto in = generate_inputs(vc, 2);
  in.k[2].clear();
  in.v[2].clear();
  in.gate[2].clear();
  CHECK(error_of(vc, in) == "<no error>");
  // With given indices and no compression branch, the compression inputs are not needed either.
  c.given_indices = true;
  c.enable_cmp = false;
  const auto vg = validate(c);
  auto ig = generate_inputs(vg, 2);
  ig.k[0].clear();
  ig.v[0].clear();
  ig.gate[0].clear();
  CHECK(error_of(vg, ig) == "<no error>");
}

TEST_CASE("inputs: non-finite and non-representable values are named with their position") {
  const auto vc = validate(two_seqs());
  const auto good = generate_inputs(vc, 3);
  {
    auto in = good;
    in.v[0][5] = std::numeric_limits<double>::quiet_NaN();
    CHECK_THAT(error_of(vc, in),
               Contains("'v_cmp'") && Contains("element 5") && Contains("not finite"));
  }
  {
    auto in = good;
    in.q[7] = std::numeric_limits<double>::infinity();
    CHECK_THAT(error_of(vc, in), Contains("'q'") && Contains("element 7") && Contains("inf"));
  }
  {
    auto in = good;
    in.gate[1][2] = 0.1;  // not an fp32 value
    CHECK_THAT(error_of(vc, in), Contains("'g_slc'") && Contains("element 2") &&
                                     Contains("not representable in fp32"));
  }
  for (Dtype dt : {Dtype::f16, Dtype::bf16}) {
    Config c = two_seqs();
    c.dtype = dt;
    const auto v16 = validate(c);
    auto in = generate_inputs(v16, 3);
    CHECK(error_of(v16, in) == "<no error>");
    // 1 + 2^-12 is an fp32 value but has too many significant bits for fp16 and bf16.
    in.k[2][4] = 1.0 + std::ldexp(1.0, -12);
    CHECK_THAT(error_of(v16, in),
               Contains("'k_win'") && Contains("element 4") &&
                   Contains("not representable in " + std::string(to_string(dt))));
  }
}

TEST_CASE("inputs: strict index lists name the first bad (sequence, t, kv head, slot, value)") {
  const auto vc = validate(two_seqs());
  const auto good = generate_inputs(vc, 4);
  CHECK_NOTHROW(check_indices_strict(vc, good.indices));
  struct Bad {
    int64_t seq, t, head, slot;
    int32_t value;
    const char* why;
  };
  // Sequence 1, t = 5: candidates are blocks 0..2 (l' = 2).
  for (const auto& b : std::vector<Bad>{{1, 5, 1, 2, 7, "not -1 or a candidate block in [0, 2]"},
                                        {1, 5, 1, 2, 3, "not -1 or a candidate block in [0, 2]"},
                                        {1, 5, 0, 3, -2, "not -1 or a candidate block"},
                                        {0, 9, 1, 0, INT32_MIN, "not -1 or a candidate block"}}) {
    auto in = good;
    in.indices[(row_of(b.seq, b.t) * 2 + b.head) * 4 + b.slot] = b.value;
    const std::string want = "sequence " + std::to_string(b.seq) + ", t " + std::to_string(b.t) +
                             ", kv head " + std::to_string(b.head) + ", slot " +
                             std::to_string(b.slot) + ": value " + std::to_string(b.value);
    INFO(want);
    CHECK_THAT(error_of(vc, in), Contains(want) && Contains(b.why));
  }
  // A duplicate is named at its second listing.
  auto in = good;
  int32_t* row = in.indices.data() + (row_of(1, 6) * 2 + 0) * 4;
  row[0] = 1;
  row[1] = -1;
  row[2] = 1;
  row[3] = -1;
  CHECK_THAT(error_of(vc, in),
             Contains("sequence 1, t 6, kv head 0, slot 2: value 1") && Contains("duplicate"));
  // The lenient policies accept what strict rejects.
  for (auto policy : {IndexPolicy::skip_invalid, IndexPolicy::multiset}) {
    Config c = two_seqs();
    c.index_policy = policy;
    const auto vl = validate(c);
    auto adv = generate_inputs(vl, 4);
    adv.indices = generate_indices(vl, 9, true);
    CHECK_THROWS(check_indices_strict(vl, adv.indices));
    CHECK(error_of(vl, adv) == "<no error>");
  }
}

TEST_CASE("inputs: row selections outside the batch are rejected") {
  const auto vc = validate(two_seqs());
  const auto in = generate_inputs(vc, 5);
  RowSelection s;
  s.rows = {0, 14};
  CHECK_THROWS_WITH(forward(vc, in, Precision::f64, s),
                    Contains("rows[1] = 14") && Contains("total_q = 14"));
  s.rows = {-1};
  CHECK_THROWS_WITH(forward(vc, in, Precision::f64, s), Contains("rows[0] = -1"));
  s.rows.clear();
  s.heads = {3, 4};
  CHECK_THROWS_WITH(forward(vc, in, Precision::f64, s),
                    Contains("heads[1] = 4") && Contains("h_q = 4"));
}
