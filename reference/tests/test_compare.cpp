// The comparator's tensor rules (docs/tolerance.md), one table row each: a candidate that breaks
// exactly that rule by the smallest margin must fail that tensor and only it, and the candidate
// just inside must pass. Bounds are computed by judge_oracle.hpp from the baseline's outputs,
// never read back from a verdict. Index rules: test_compare_indices.cpp.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <map>

#include "judge_oracle.hpp"
#include "nsa/ref/compare.hpp"
#include "nsa/ref/generate.hpp"

using namespace nsa::ref;
namespace jo = nsa::judge_oracle;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Config small_cfg(Dtype dt = Dtype::bf16) {
  Config c;
  c.t_k = 300;
  c.h_q = 4;
  c.h_kv = 2;
  c.d_k = 16;
  c.d_v = 16;
  c.top_n = 3;
  c.window = 40;
  c.dtype = dt;
  return c;
}

ValidConfig small_config(Dtype dt = Dtype::bf16) { return validate(small_cfg(dt)); }

// Truth and baseline of one small case per dtype. compare() takes the truth as given, so the
// double reference stands in for the f128 truth here (the rule does not care how it was made).
struct Fixture {
  ValidConfig vc;
  Inputs in;
  Outputs truth, base;
};

const Fixture& fixture(Dtype dt) {
  static std::map<Dtype, Fixture> cache;
  auto it = cache.find(dt);
  if (it == cache.end()) {
    Fixture f;
    f.vc = small_config(dt);
    f.in = generate_inputs(f.vc, 8);
    f.truth = forward(f.vc, f.in, Precision::f64);
    f.base = forward(f.vc, f.in, Precision::baseline);
    it = cache.emplace(dt, std::move(f)).first;
  }
  return it->second;
}

// The tolerances every row runs with: alpha != beta so that a mixed-up term shows, and each
// term alone.
const std::vector<Tolerance>& tolerances() {
  static const std::vector<Tolerance> t = {{3.0, 0.5}, {0.0, 5.0}, {1.5, 0.0}};
  return t;
}

double expected_bound(const Fixture& f, const std::string& tensor, const Tolerance& tol) {
  const auto& t = jo::tensor_of(f.truth, tensor);
  return jo::bound(tol.alpha, tol.beta, jo::baseline_error(jo::tensor_of(f.base, tensor), t),
                   jo::max_abs_finite(t), jo::ulp_dtype_of(tensor, f.vc.cfg.dtype));
}

int64_t first_finite(const std::vector<double>& x) {
  for (std::size_t i = x.size() / 2; i < x.size(); ++i)
    if (std::isfinite(x[i])) return static_cast<int64_t>(i);
  return -1;
}
int64_t first_neg_inf(const std::vector<double>& x) {
  for (std::size_t i = 0; i < x.size(); ++i)
    if (x[i] == -kInf) return static_cast<int64_t>(i);
  return -1;
}
int64_t last_element(const std::vector<double>& x) { return static_cast<int64_t>(x.size()) - 1; }

// The verdict breaks exactly `tensor` (every other tensor passes), with `note` in its note.
void require_only_failure(const Verdict& v, const std::string& tensor, const std::string& note) {
  INFO(v.table());
  const auto* t = v.find(tensor);
  REQUIRE(t);
  CHECK(t->checked);
  CHECK_FALSE(t->pass);
  if (!note.empty()) CHECK_THAT(t->note, Catch::Matchers::Contains(note));
  for (const auto& other : v.tensors)
    if (other.name != tensor) CHECK(other.pass);
}

void require_pass(const Verdict& v) {
  INFO(v.table());
  CHECK(v.pass());
  for (const auto& t : v.tensors) CHECK(t.checked);
}

const Dtype kDtypes[] = {Dtype::f32, Dtype::f16, Dtype::bf16};

}  // namespace

TEST_CASE("compare: ulp of each dtype") {
  CHECK(ulp(1.0, Dtype::f32) == std::ldexp(1.0, -23));
  CHECK(ulp(1.0, Dtype::f16) == std::ldexp(1.0, -10));
  CHECK(ulp(1.0, Dtype::bf16) == std::ldexp(1.0, -7));
  CHECK(ulp(3.0, Dtype::bf16) == std::ldexp(1.0, -6));
  CHECK(ulp(0.0, Dtype::f16) == std::ldexp(1.0, -24));  // subnormal spacing
  CHECK(ulp(1e-30, Dtype::f32) == std::ldexp(1.0, -123));
  CHECK(ulp(1e-40, Dtype::f32) == std::ldexp(1.0, -149));
  // The oracle's spacing is the distance to the next value of the type, as the hardware has it.
  for (double x : {1.0, 0.3, 5e-39, 1e-3, 65000.0, 3e38}) {
    const float f = static_cast<float>(x);
    if (f == 0 || !std::isfinite(f)) continue;
    const float p2 = std::ldexp(1.0f, std::ilogb(f));  // the power of two at or below f
    CHECK(jo::spacing(f, Dtype::f32) == static_cast<double>(std::nextafter(p2, INFINITY) - p2));
    CHECK(ulp(f, Dtype::f32) == jo::spacing(f, Dtype::f32));
    CHECK(ulp(x, Dtype::bf16) == jo::spacing(x, Dtype::bf16));
    CHECK(ulp(x, Dtype::f16) == jo::spacing(x, Dtype::f16));
  }
}

TEST_CASE("compare: the baseline and the double reference pass against f128 truth") {
  for (Dtype dt : kDtypes) {
    const auto vc = small_config(dt);
    const auto in = generate_inputs(vc, 7);
    for (Precision p : {Precision::baseline, Precision::f64}) {
      RowSelection all;
      const auto cand = forward(vc, in, p, all);
      const auto v = check_candidate(vc, in, cand);
      INFO(to_string(dt) << " " << to_string(p) << "\n" << v.table());
      CHECK(v.pass());
      if (p == Precision::f64) CHECK(v.find("o")->max_err < 1e-12);
    }
  }
}

// Rule: max |X − X*| ≤ α·e_b + β·ulp_τ(max |X*|) per tensor, τ the case dtype for o tensors and
// fp32 for lse whatever the case dtype. One element just past the bound fails that tensor; the
// same element at the bound passes.
TEST_CASE("compare: each tensor's bound, with its ulp dtype, alpha and beta separately") {
  int rows = 0;
  for (Dtype dt : kDtypes)
    for (const auto& tol : tolerances())
      for (const auto& tensor : jo::output_tensors()) {
        const auto& f = fixture(dt);
        const double b = expected_bound(f, tensor, tol);
        const auto& truth = jo::tensor_of(f.truth, tensor);
        const int64_t i = first_finite(truth);
        REQUIRE(i >= 0);
        INFO(to_string(dt) << " alpha " << tol.alpha << " beta " << tol.beta << " " << tensor
                           << ": bound " << b << " at element " << i);
        for (bool outside : {true, false}) {
          Outputs cand = f.truth;
          jo::tensor_of(cand, tensor)[i] =
              outside ? jo::just_outside(truth[i], b) : jo::just_inside(truth[i], b);
          const auto v = compare(f.vc, f.truth, f.base, cand, tol);
          if (outside) {
            require_only_failure(v, tensor, "");
            CHECK(v.find(tensor)->worst == i);
          } else {
            require_pass(v);
          }
          CHECK(v.find(tensor)->bound == Approx(b).epsilon(1e-12));
        }
        ++rows;
      }
  CHECK(rows == 3 * 3 * 7);
}

// The structural rules: NaN anywhere, ±inf where the truth is finite, −inf exactly where the
// truth is −inf, every element written, the candidate tensor of the truth's size.
TEST_CASE("compare: structural rules, each from both sides") {
  struct Row {
    const char* rule;
    const char* tensor;
    const char* note;  // phrase of the failing tensor's note
    std::function<int64_t(const std::vector<double>&)> pick;
    std::function<double(double truth, double bound)> bad, good;
  };
  auto nan = [](double, double) { return kNaN; };
  auto inside = [](double t, double b) { return jo::just_inside(t, b); };
  auto neg_inf = [](double, double) { return -kInf; };
  std::vector<Row> table;
  for (const auto& t : jo::output_tensors())
    table.push_back({"NaN where the truth is finite", t.c_str(), "NaN", first_finite, nan, inside});
  const std::vector<Row> more = {
      {"NaN where the truth is -inf", "lse_cmp", "NaN", first_neg_inf, nan, neg_inf},
      {"+inf where the truth is finite", "o_slc", "Inf where the truth is finite", first_finite,
       [](double, double) { return kInf; }, inside},
      {"+inf where the truth is finite", "lse_win", "Inf where the truth is finite", first_finite,
       [](double, double) { return kInf; }, inside},
      {"-inf where the truth is finite", "lse_slc", "Inf where the truth is finite", first_finite,
       neg_inf, inside},
      {"-inf where the truth is finite", "o", "Inf where the truth is finite", first_finite,
       neg_inf, inside},
      {"finite (the most negative double) where the truth is -inf", "lse_cmp", "exactly",
       first_neg_inf, [](double, double) { return -std::numeric_limits<double>::max(); }, neg_inf},
      {"+inf where the truth is -inf", "lse_cmp", "exactly", first_neg_inf,
       [](double, double) { return kInf; }, neg_inf},
      {"an unwritten (NaN-poisoned) last element", "o", "unwritten", last_element, nan,
       [](double t, double) { return t; }},
      {"an unwritten (NaN-poisoned) last element", "lse_win", "unwritten", last_element, nan,
       [](double t, double) { return t; }},
  };
  table.insert(table.end(), more.begin(), more.end());
  const Tolerance tol{3.0, 0.5};
  for (Dtype dt : kDtypes)
    for (const auto& r : table) {
      const auto& f = fixture(dt);
      const auto& truth = jo::tensor_of(f.truth, r.tensor);
      const int64_t i = r.pick(truth);
      REQUIRE(i >= 0);
      const double b = expected_bound(f, r.tensor, tol);
      INFO(to_string(dt) << " " << r.tensor << ": " << r.rule << " (element " << i << ")");
      Outputs bad = f.truth, good = f.truth;
      jo::tensor_of(bad, r.tensor)[i] = r.bad(truth[i], b);
      jo::tensor_of(good, r.tensor)[i] = r.good(truth[i], b);
      const auto vb = compare(f.vc, f.truth, f.base, bad, tol);
      require_only_failure(vb, r.tensor, r.note);
      CHECK(vb.find(r.tensor)->worst == i);
      require_pass(compare(f.vc, f.truth, f.base, good, tol));
    }
}

TEST_CASE("compare: a candidate tensor of another size fails; of the truth's size passes") {
  const auto& f = fixture(Dtype::bf16);
  for (const std::string tensor : {"o", "lse_cmp"}) {
    INFO(tensor);
    for (int delta : {-1, +1}) {
      Outputs bad = f.truth;
      auto& x = jo::tensor_of(bad, tensor);
      if (delta < 0)
        x.pop_back();
      else
        x.push_back(0.0);
      require_only_failure(compare(f.vc, f.truth, f.base, bad), tensor, "size");
    }
    require_pass(compare(f.vc, f.truth, f.base, f.truth));
  }
}

// A tensor the candidate does not provide is not checked, never passed; provided and wrong it
// fails. The verdict as a whole passes on what was checked.
TEST_CASE("compare: a missing tensor is reported as not checked") {
  const auto& f = fixture(Dtype::f32);
  for (const auto& tensor : jo::output_tensors()) {
    INFO(tensor);
    Outputs cand = f.truth;
    jo::tensor_of(cand, tensor).clear();
    const auto v = compare(f.vc, f.truth, f.base, cand);
    CHECK_FALSE(v.find(tensor)->checked);
    CHECK(v.pass());
    CHECK_THAT(v.table(), Catch::Matchers::Contains("not checked"));
    for (const auto& t : v.tensors)
      if (t.name != tensor) CHECK(t.checked);
    Outputs wrong = f.truth;
    auto& x = jo::tensor_of(wrong, tensor);
    x.assign(x.size(), kNaN);
    CHECK_FALSE(compare(f.vc, f.truth, f.base, wrong).find(tensor)->pass);
  }
  Outputs no_indices = f.truth;
  no_indices.indices.clear();
  CHECK_FALSE(compare(f.vc, f.truth, f.base, no_indices).find("indices")->checked);
}

TEST_CASE("compare: check_candidate judges with the same rule as compare") {
  // The whole check (truth and baseline computed inside, f128) turns red on the same margins.
  Config c = small_cfg(Dtype::bf16);
  c.t_k = 100;
  c.h_q = 2;
  c.h_kv = 1;
  const auto vc = validate(c);
  const auto in = generate_inputs(vc, 8);
  const auto truth = forward(vc, in, Precision::f128);
  const auto base = forward(vc, in, Precision::baseline);
  const Tolerance tol{3.0, 0.5};
  for (const std::string tensor : {"o_win", "lse_cmp"}) {
    const auto& t = jo::tensor_of(truth, tensor);
    const double b =
        jo::bound(tol.alpha, tol.beta, jo::baseline_error(jo::tensor_of(base, tensor), t),
                  jo::max_abs_finite(t), jo::ulp_dtype_of(tensor, vc.cfg.dtype));
    const int64_t i = first_finite(t);
    Outputs bad = truth, good = truth;
    jo::tensor_of(bad, tensor)[i] = jo::just_outside(t[i], b);
    jo::tensor_of(good, tensor)[i] = jo::just_inside(t[i], b);
    INFO(tensor);
    require_only_failure(check_candidate(vc, in, bad, Precision::f128, tol), tensor, "");
    require_pass(check_candidate(vc, in, good, Precision::f128, tol));
  }
}
