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

// Every float input tensor of a config with an mlp phi (so every phi parameter is present).
struct Named {
  std::string name;  // as check_inputs names it
  std::vector<double>* data;
};
std::vector<Named> float_tensors(Inputs& in) {
  std::vector<Named> t = {{"q", &in.q}};
  const char* br[] = {"cmp", "slc", "win"};
  for (int b = 0; b < 3; ++b) {
    t.push_back({std::string("k_") + br[b], &in.k[b]});
    t.push_back({std::string("v_") + br[b], &in.v[b]});
    t.push_back({std::string("g_") + br[b], &in.gate[b]});
  }
  for (auto [pre, p] :
       {std::pair<const char*, PhiParams*>{"phi_k.", &in.phi_k}, {"phi_v.", &in.phi_v}}) {
    t.push_back({std::string(pre) + "pos", &p->pos});
    t.push_back({std::string(pre) + "w1", &p->w1});
    t.push_back({std::string(pre) + "b1", &p->b1});
    t.push_back({std::string(pre) + "w2", &p->w2});
    t.push_back({std::string(pre) + "b2", &p->b2});
  }
  return t;
}

Config mlp_cfg(Dtype dt) {
  Config c = two_seqs();
  c.phi = Phi::mlp;
  c.phi_hidden = 3;
  c.dtype = dt;
  return c;
}

// (mantissa bits, largest finite value) of each input dtype.
std::pair<int, double> format_of(Dtype dt) {
  switch (dt) {
    case Dtype::f16:
      return {10, 65504.0};
    case Dtype::bf16:
      return {7, std::ldexp(255.0, 120)};
    case Dtype::f32:
      return {23, static_cast<double>(std::numeric_limits<float>::max())};
    case Dtype::f64:
      break;
  }
  return {52, std::numeric_limits<double>::max()};
}

// One value rule of check_inputs for one element: `bad` must be rejected naming the tensor, the
// element and `why`; `good` (the nearest value the rule keeps) must be accepted.
struct ValueRow {
  const char* rule;
  double bad, good;
  std::string why;
};

std::vector<ValueRow> value_rows(Dtype dt) {
  const auto [mant, top] = format_of(dt);
  const double half_ulp = std::ldexp(1.0, -mant - 1), ulp1 = std::ldexp(1.0, -mant);
  const std::string name(to_string(dt));
  return {
      {"NaN", std::numeric_limits<double>::quiet_NaN(), 0.5, "not finite"},
      {"+inf (the largest finite value is kept)", std::numeric_limits<double>::infinity(), top,
       "not finite"},
      {"-inf (the most negative finite value is kept)", -std::numeric_limits<double>::infinity(),
       -top, "not finite"},
      {"1 + half an ulp (1 + one ulp is kept)", 1.0 + half_ulp, 1.0 + ulp1,
       "not representable in " + name},
      {"-(1 + half an ulp)", -(1.0 + half_ulp), -(1.0 + ulp1), "not representable in " + name},
  };
}

}  // namespace

TEST_CASE("inputs: every tensor's size, one element short or over, is named with both sizes") {
  const auto vc = validate(mlp_cfg(Dtype::f32));
  const auto good = generate_inputs(vc, 1);
  CHECK(error_of(vc, good) == "<no error>");
  int rows = 0;
  auto probe = good;
  const std::size_t tensors = float_tensors(probe).size();
  for (std::size_t k = 0; k < tensors; ++k)
    for (int delta : {-1, +1}) {
      auto in = good;
      const auto t = float_tensors(in)[k];
      const auto want = static_cast<int64_t>(t.data->size());
      REQUIRE(want > 0);
      if (delta < 0)
        t.data->pop_back();
      else
        t.data->push_back(0.0);
      INFO(t.name << " " << delta);
      CHECK_THAT(error_of(vc, in), Contains("'" + t.name + "'") &&
                                       Contains(std::to_string(want + delta) + " elements") &&
                                       Contains("expected " + std::to_string(want)));
      ++rows;
    }
  CHECK(rows == 2 * 20);
  // Index lists: one entry short or over.
  for (int delta : {-1, +1}) {
    auto in = good;
    const auto want = static_cast<int64_t>(in.indices.size());
    in.indices.resize(static_cast<std::size_t>(want + delta), -1);
    CHECK_THAT(error_of(vc, in), Contains("'indices'") &&
                                     Contains(std::to_string(want + delta) + " elements") &&
                                     Contains("expected " + std::to_string(want)));
  }
  // Parameters the phi does not use must be absent: mean takes none, linear no b1/w2/b2.
  Config lin = two_seqs();
  lin.phi = Phi::linear;
  const auto vl = validate(lin);
  auto lin_in = generate_inputs(vl, 1);
  CHECK(error_of(vl, lin_in) == "<no error>");
  lin_in.phi_v.b2 = {0.0};
  CHECK_THAT(error_of(vl, lin_in), Contains("'phi_v.b2'") && Contains("expected 0"));
  const auto vm = validate(two_seqs());
  auto mean_in = generate_inputs(vm, 1);
  mean_in.phi_k.pos = {1.0};
  CHECK_THAT(error_of(vm, mean_in), Contains("'phi_k.pos'") && Contains("expected 0"));
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

TEST_CASE("inputs: every tensor's values, phi parameters included, finite and representable") {
  int rows = 0;
  for (Dtype dt : {Dtype::f32, Dtype::f16, Dtype::bf16}) {
    const auto vc = validate(mlp_cfg(dt));
    const auto good = generate_inputs(vc, 3);
    REQUIRE(error_of(vc, good) == "<no error>");
    auto probe = good;
    const std::size_t tensors = float_tensors(probe).size();
    for (std::size_t k = 0; k < tensors; ++k)
      for (const auto& r : value_rows(dt)) {
        auto bad = good, ok = good;
        const auto tb = float_tensors(bad)[k], tg = float_tensors(ok)[k];
        const std::size_t e = tb.data->size() / 2;
        (*tb.data)[e] = r.bad;
        (*tg.data)[e] = r.good;
        INFO(to_string(dt) << " " << tb.name << "[" << e << "]: " << r.rule);
        CHECK_THAT(error_of(vc, bad), Contains("'" + tb.name + "'") &&
                                          Contains("element " + std::to_string(e) + " ") &&
                                          Contains(r.why));
        CHECK(error_of(vc, ok) == "<no error>");
        ++rows;
      }
  }
  CHECK(rows == 3 * 20 * 5);
}

TEST_CASE("inputs: strict index lists name the first bad (sequence, t, kv head, slot, value)") {
  const auto vc = validate(two_seqs());
  auto good = generate_inputs(vc, 4);
  CHECK_NOTHROW(check_indices_strict(vc, good.indices));
  // Sequence 1, t = 5: candidates are blocks 0..2 (l' = 2). Each row puts `bad` into an otherwise
  // valid list (rejected, named) and `ok` (the nearest value the rule keeps) into the same slot.
  struct Row {
    const char* rule;
    int64_t seq, t, head;
    std::vector<int32_t> bad, ok;
    int64_t slot;  // where the error points
    const char* why;
  };
  const std::vector<Row> rows = {
      {"one past the last candidate",
       1,
       5,
       1,
       {0, 1, 3, -1},
       {0, 1, 2, -1},
       2,
       "not -1 or a candidate block in [0, 2]"},
      {"far past the candidates",
       1,
       5,
       1,
       {0, 1, 7, -1},
       {0, 1, 2, -1},
       2,
       "not -1 or a candidate block in [0, 2]"},
      {"-2, next to the -1 padding",
       1,
       5,
       0,
       {2, 0, 1, -2},
       {2, 0, 1, -1},
       3,
       "not -1 or a candidate block"},
      {"INT32_MIN",
       0,
       9,
       1,
       {INT32_MIN, -1, -1, -1},
       {-1, -1, -1, -1},
       0,
       "not -1 or a candidate block"},
      {"a duplicate, named at its second listing",
       1,
       6,
       0,
       {1, -1, 1, -1},
       {1, -1, 2, -1},
       2,
       "duplicate"},
  };
  for (const auto& r : rows) {
    auto in = good, ok = good;
    std::copy(r.bad.begin(), r.bad.end(),
              in.indices.data() + (row_of(r.seq, r.t) * 2 + r.head) * 4);
    std::copy(r.ok.begin(), r.ok.end(), ok.indices.data() + (row_of(r.seq, r.t) * 2 + r.head) * 4);
    const std::string want = "sequence " + std::to_string(r.seq) + ", t " + std::to_string(r.t) +
                             ", kv head " + std::to_string(r.head) + ", slot " +
                             std::to_string(r.slot) + ": value " +
                             std::to_string(r.bad[static_cast<std::size_t>(r.slot)]);
    INFO(r.rule << ": " << want);
    CHECK_THAT(error_of(vc, in), Contains(want) && Contains(r.why));
    CHECK(error_of(vc, ok) == "<no error>");
  }
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
