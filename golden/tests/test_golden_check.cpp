// `nsa golden check` from both sides, through real candidate files: every tensor's bound in its
// ulp dtype (from the stored baseline_max_abs_err and ulp_dtype attributes, not from a verdict),
// each float encoding of the schema, NaN and ±inf through those encodings, shapes and types of
// candidate datasets, missing cases and tensors, re-judging with the candidate's own indices, and
// the command's exit status (0 pass, 1 a candidate failed, 2 nothing could be judged).
#include <hdf5.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "golden_test_support.hpp"
#include "h5.hpp"
#include "half.hpp"
#include "judge_oracle.hpp"
#include "nsa/golden/check.hpp"

using namespace nsa::golden;
using namespace nsa::golden::test;
using nsa::ref::Dtype;
namespace jo = nsa::judge_oracle;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
const nsa::ref::Tolerance kTol{3.0, 0.5};  // alpha != beta: a mixed-up term shows

// How a candidate dataset is stored.
enum class Store { f64, f32, f16, bf16, i32, i64, odd_float, unwritten };

struct Put {
  std::string tensor;
  Store store = Store::f64;
  std::vector<double> values;  // float stores
  std::vector<int32_t> ints;   // integer stores
  std::vector<int64_t> dims;   // the dataset's shape
};

h5::Handle odd_float_type() {
  // binary16's layout with another exponent bias: a float type, but not one of the schema's.
  h5::Handle t(H5Tcopy(h5::fp16_type()), H5Tclose);
  REQUIRE(H5Tset_ebias(t, 14) >= 0);
  return t;
}

void put(hid_t grp, const Put& p) {
  const auto& n = p.tensor;
  switch (p.store) {
    case Store::f64:
      h5::write_dataset(grp, n, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, p.values.data(), p.dims);
      break;
    case Store::f32: {
      std::vector<float> f(p.values.begin(), p.values.end());
      h5::write_dataset(grp, n, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, f.data(), p.dims);
      break;
    }
    case Store::f16:
    case Store::bf16:
    case Store::odd_float: {
      const bool bf = p.store == Store::bf16;
      std::vector<uint16_t> bits;
      for (double x : p.values)
        bits.push_back(
            encode_half(nsa::ref::round_to(x, bf ? Dtype::bf16 : Dtype::f16), bf ? kBf16 : kFp16));
      const auto t = p.store == Store::odd_float ? odd_float_type()
                     : bf                        ? h5::bf16_type()
                                                 : h5::fp16_type();
      h5::write_dataset(grp, n, t, t, bits.data(), p.dims);
      break;
    }
    case Store::i32:
      h5::write_dataset(grp, n, H5T_STD_I32LE, H5T_NATIVE_INT32, p.ints.data(), p.dims);
      break;
    case Store::i64: {
      std::vector<int64_t> w(p.ints.begin(), p.ints.end());
      h5::write_dataset(grp, n, H5T_STD_I64LE, H5T_NATIVE_INT64, w.data(), p.dims);
      break;
    }
    case Store::unwritten: {
      std::vector<hsize_t> hd(p.dims.begin(), p.dims.end());
      const hid_t space = H5Screate_simple(static_cast<int>(hd.size()), hd.data(), nullptr);
      const hid_t ds =
          H5Dcreate2(grp, n.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      REQUIRE(ds >= 0);
      H5Dclose(ds);
      H5Sclose(space);
      break;
    }
  }
}

// A candidate file holding `puts` under /cases/<case>/outputs/ for each listed case.
void write_cand(const std::string& path,
                const std::vector<std::pair<std::string, std::vector<Put>>>& cases) {
  const auto f = h5::create_file(path);
  const auto cg = h5::create_group(f, "cases", path);
  for (const auto& [name, puts] : cases) {
    const auto g = h5::create_group(cg, name, path);
    const auto og = h5::create_group(g, "outputs", path);
    for (const auto& p : puts) put(og, p);
  }
}

// What the golden file stores for a tensor: truth, shape and the two attributes of the rule.
struct Stored {
  std::vector<double> truth;
  std::vector<int32_t> ints;
  std::vector<int64_t> dims;
  double baseline_err = 0;
  Dtype ulp_dtype = Dtype::f64;
};

Stored stored(const std::string& golden, const std::string& cs, const std::string& tensor) {
  const auto f = h5::open_file(golden);
  const auto ds = h5::open_dataset(f, "cases/" + cs + "/expected/" + tensor, "test");
  Stored s;
  s.dims = h5::shape_of(ds);
  if (tensor == "indices") {
    s.ints = h5::read_int32(ds, "test");
    return s;
  }
  s.truth = h5::read_floats(ds, "test");
  s.baseline_err = h5::read_attr_double(ds, "baseline_max_abs_err", "test");
  const auto u = h5::read_attr_string(ds, "ulp_dtype", "test");
  REQUIRE(nsa::ref::parse_enum(u, s.ulp_dtype));
  return s;
}

double stored_bound(const Stored& s, const nsa::ref::Tolerance& tol) {
  return jo::bound(tol.alpha, tol.beta, s.baseline_err, jo::max_abs_finite(s.truth), s.ulp_dtype);
}

int64_t finite_element(const std::vector<double>& x) {
  for (std::size_t i = x.size() / 3; i < x.size(); ++i)
    if (std::isfinite(x[i])) return static_cast<int64_t>(i);
  return -1;
}

// The sample golden file, written once per process.
const std::string& golden_path() {
  static const std::string p = written_sample("check_golden.h5");
  return p;
}
const GoldenFile& golden() {
  static const GoldenFile g = read_golden(golden_path());
  return g;
}

FileReport check_puts(const std::string& cs, const std::vector<Put>& puts,
                      nsa::ref::Tolerance tol = kTol) {
  const auto path = temp_path("cand.h5");
  write_cand(path, {{cs, puts}});
  auto r = check_file(golden(), read_candidate(path, golden()), tol);
  std::filesystem::remove(path);
  return r;
}

const CaseReport& report_of(const FileReport& r, const std::string& cs) {
  for (const auto& c : r.cases)
    if (c.name == cs) return c;
  FAIL("no case " << cs);
  return r.cases.front();
}

// The candidate broke exactly `tensor` of case `cs`: it fails with `note`, nothing else does.
void require_fail(const FileReport& r, const std::string& cs, const std::string& tensor,
                  const std::string& note) {
  const auto& c = report_of(r, cs);
  INFO(c.verdict.table());
  CHECK(r.status() == CheckStatus::fail);
  const auto* t = c.verdict.find(tensor);
  REQUIRE(t);
  CHECK(t->checked);
  CHECK_FALSE(t->pass);
  if (!note.empty()) CHECK_THAT(t->note, Catch::Matchers::Contains(note));
  for (const auto& o : c.verdict.tensors)
    if (o.name != tensor) CHECK(o.pass);
}

void require_pass(const FileReport& r, const std::string& cs, const std::string& tensor) {
  const auto& c = report_of(r, cs);
  INFO(c.verdict.table());
  CHECK(r.status() == CheckStatus::pass);
  REQUIRE(c.verdict.find(tensor));
  CHECK(c.verdict.find(tensor)->checked);
}

// The three dtype cases of the sample: padded fp32, varlen bf16 (with an empty sequence),
// fp16 with a query suffix.
std::vector<std::string> dtype_cases() {
  return {golden().cases[0].name, golden().cases[1].name, golden().cases[2].name};
}

int run_nsa(const std::string& args) {
  const std::string cmd =
      std::string("'") + NSA_CLI + "' golden check " + args + " >/dev/null 2>&1";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace

TEST_CASE("golden check: every candidate tensor's bound, in its ulp dtype, from the file",
          "[golden]") {
  int rows = 0;
  for (const auto& cs : dtype_cases())
    for (const auto& tensor : jo::output_tensors()) {
      const auto s = stored(golden_path(), cs, tensor);
      const double b = stored_bound(s, kTol);
      const int64_t i = finite_element(s.truth);
      REQUIRE(i >= 0);
      INFO(cs << " " << tensor << " (ulp dtype " << nsa::ref::to_string(s.ulp_dtype) << "): bound "
              << b << " at element " << i);
      for (bool outside : {true, false}) {
        auto x = s.truth;
        x[i] = outside ? jo::just_outside(x[i], b) : jo::just_inside(x[i], b);
        const auto r = check_puts(cs, {{tensor, Store::f64, x, {}, s.dims}});
        if (outside)
          require_fail(r, cs, tensor, "");
        else
          require_pass(r, cs, tensor);
        CHECK(report_of(r, cs).verdict.find(tensor)->bound == Approx(b).epsilon(1e-12));
      }
      ++rows;
    }
  CHECK(rows == 3 * 7);
}

TEST_CASE("golden check: candidate datasets in each float encoding of the schema", "[golden]") {
  const auto cs = dtype_cases();
  const Dtype dts[] = {Dtype::f32, Dtype::bf16, Dtype::f16};
  const Store stores[] = {Store::f32, Store::bf16, Store::f16};
  for (int k = 0; k < 3; ++k) {
    INFO(cs[k]);
    // The truth rounded to the case dtype is within 3·e_b + 0.5 ulp: o tensors stored as a
    // kernel returns them pass, lse stored in fp32 passes.
    std::vector<Put> all;
    for (const auto& tensor : jo::output_tensors()) {
      const auto s = stored(golden_path(), cs[k], tensor);
      all.push_back(
          {tensor, tensor.rfind("lse", 0) == 0 ? Store::f32 : stores[k], s.truth, {}, s.dims});
    }
    const auto r = check_puts(cs[k], all);
    INFO(report_of(r, cs[k]).verdict.table());
    CHECK(r.status() == CheckStatus::pass);
    if (dts[k] == Dtype::f32) continue;
    // lse is judged in fp32 ulps: the same lse stored in the case's two-byte dtype fails.
    const auto s = stored(golden_path(), cs[k], "lse_win");
    require_fail(check_puts(cs[k], {{"lse_win", stores[k], s.truth, {}, s.dims}}), cs[k], "lse_win",
                 "");
  }
}

TEST_CASE("golden check: NaN and infinities survive the file encodings", "[golden]") {
  const auto bf = golden().cases[1].name, h = golden().cases[2].name, f = golden().cases[0].name;
  struct Row {
    const char* rule;
    std::string cs, tensor;
    Store store;
    double bad;  // the value put at the chosen element; the same element keeps the truth to pass
    bool at_neg_inf;
    const char* note;
  };
  const std::vector<Row> rows = {
      {"NaN (bf16 bits)", bf, "o", Store::bf16, std::nan(""), false, "NaN"},
      {"+inf (fp16 bits) where the truth is finite", h, "o_win", Store::f16, kInf, false,
       "Inf where the truth is finite"},
      {"-inf (fp32) where the truth is finite", f, "lse_slc", Store::f32, -kInf, false,
       "Inf where the truth is finite"},
      {"the most negative fp32 where the truth is -inf", f, "lse_cmp", Store::f32,
       -static_cast<double>(std::numeric_limits<float>::max()), true, "exactly"},
      {"NaN (fp32) where the truth is -inf", f, "lse_cmp", Store::f32, std::nan(""), true, "NaN"},
  };
  for (const auto& r : rows) {
    INFO(r.rule << ": " << r.cs << " " << r.tensor);
    const auto s = stored(golden_path(), r.cs, r.tensor);
    int64_t i = -1;
    for (std::size_t j = 0; j < s.truth.size() && i < 0; ++j)
      if (r.at_neg_inf ? s.truth[j] == -kInf : std::isfinite(s.truth[j]))
        i = static_cast<int64_t>(j);
    REQUIRE(i >= 0);
    auto x = s.truth;
    x[i] = r.bad;
    require_fail(check_puts(r.cs, {{r.tensor, r.store, x, {}, s.dims}}), r.cs, r.tensor, r.note);
    require_pass(check_puts(r.cs, {{r.tensor, r.store, s.truth, {}, s.dims}}), r.cs, r.tensor);
  }
}

TEST_CASE("golden check: a candidate dataset of the wrong shape or type fails that tensor",
          "[golden]") {
  const auto cs = golden().cases[0].name;  // padded fp32, h_q 4, d_v 16
  const auto o = stored(golden_path(), cs, "o");
  const auto win = stored(golden_path(), cs, "o_win");
  const auto idx = stored(golden_path(), cs, "indices");
  auto short_dims = o.dims;
  short_dims.back() -= 1;
  std::vector<double> shorter(o.truth.begin(), o.truth.end() - o.dims[0] * o.dims[1]);
  auto wide_idx = idx.dims;
  wide_idx.back() += 1;
  std::vector<int32_t> wider(idx.ints);
  wider.resize(wider.size() + static_cast<std::size_t>(idx.dims[0] * idx.dims[1]), -1);
  std::vector<int32_t> as_ints(o.truth.size(), 0);
  struct Row {
    const char* rule;
    Put bad, good;
    const char* note;
  };
  const std::vector<Row> rows = {
      {"shape: last dim one short",
       {"o", Store::f64, shorter, {}, short_dims},
       {"o", Store::f64, o.truth, {}, o.dims},
       "has shape"},
      {"type: int32 for a float output",
       {"o", Store::i32, {}, as_ints, o.dims},
       {"o", Store::f32, o.truth, {}, o.dims},
       "has type int32"},
      {"type: a two-byte float that is neither fp16 nor bf16",
       {"o", Store::odd_float, std::vector<double>(o.truth.size(), 0.5), {}, o.dims},
       {"o", Store::f32, o.truth, {}, o.dims},
       "other float"},
      {"type: int64 indices",
       {"indices", Store::i64, {}, idx.ints, idx.dims},
       {"indices", Store::i32, {}, idx.ints, idx.dims},
       "expected int32"},
      {"shape: indices one slot wider",
       {"indices", Store::i32, {}, wider, wide_idx},
       {"indices", Store::i32, {}, idx.ints, idx.dims},
       "has shape"},
      // A dataset created and never written reads as HDF5's fill value (0): judged, and wrong.
      {"a dataset never written",
       {"o", Store::unwritten, {}, {}, o.dims},
       {"o", Store::f64, o.truth, {}, o.dims},
       ""},
  };
  for (const auto& r : rows) {
    INFO(r.rule);
    // The other tensors of the same file are still judged.
    const Put ok_win{"o_win", Store::f64, win.truth, {}, win.dims};
    const auto bad = check_puts(cs, {r.bad, ok_win});
    require_fail(bad, cs, r.bad.tensor, r.note);
    CHECK(report_of(bad, cs).verdict.find("o_win")->checked);
    require_pass(check_puts(cs, {r.good, ok_win}), cs, r.good.tensor);
  }
}

TEST_CASE("golden check: index lists through the file", "[golden]") {
  const auto cs = golden().cases[0].name;
  const auto idx = stored(golden_path(), cs, "indices");
  const int64_t n = idx.dims.back();
  // The last row's list of KV head 0 with its last block dropped: one too few.
  auto bad = idx.ints;
  const std::size_t at = bad.size() - static_cast<std::size_t>(idx.dims[1] * n);
  int64_t last = n - 1;
  while (bad[at + last] < 0) --last;
  bad[at + last] = -1;
  require_fail(check_puts(cs, {{"indices", Store::i32, {}, bad, idx.dims}}), cs, "indices",
               "blocks selected");
  require_pass(check_puts(cs, {{"indices", Store::i32, {}, idx.ints, idx.dims}}), cs, "indices");
}

TEST_CASE("golden check: a tie-break of its own is judged with the candidate's indices",
          "[golden]") {
  // A case whose block scores tie exactly: a scale so small that every exp(z - m) is 1 in
  // double makes the compressed softmax uniform, so interior blocks tie, and the other
  // tie-break legally picks other blocks (t = 256..259: block 2 instead of 1).
  CaseSpec spec{"000_ties", {}, 77, nsa::ref::Regime::typical};
  spec.cfg.profile = "custom";
  spec.cfg.scale = 1e-30;
  spec.cfg.t_k = 260;
  spec.cfg.h_q = 2;
  spec.cfg.top_n = 4;
  spec.cfg.window = 16;
  GoldenFile g;
  g.suite = "config";
  g.cases.push_back(make_case(spec, nsa::ref::Precision::f64, 2));
  const auto gpath = temp_path("ties_golden.h5");
  write_golden(gpath, g);
  const auto back = read_golden(gpath);
  auto hi = spec.cfg;
  hi.tie_break = nsa::ref::TieBreak::higher_index_first;
  const auto legal =
      nsa::ref::forward(nsa::ref::validate(hi), g.cases[0].inputs, nsa::ref::Precision::f64);
  REQUIRE(legal.indices != g.cases[0].truth.indices);
  auto puts_of = [&](const nsa::ref::Outputs& o) {
    std::vector<Put> p;
    for (const auto& t : jo::output_tensors())
      p.push_back({t, Store::f64, jo::tensor_of(o, t), {}, stored(gpath, spec.name, t).dims});
    p.push_back({"indices", Store::i32, {}, o.indices, stored(gpath, spec.name, "indices").dims});
    return p;
  };
  const auto cpath = temp_path("ties_cand.h5");
  auto judge = [&](const nsa::ref::Outputs& o) {
    write_cand(cpath, {{spec.name, puts_of(o)}});
    return check_file(back, read_candidate(cpath, back), kTol);
  };
  const auto good = judge(legal);
  INFO(good.cases[0].verdict.table());
  CHECK(good.status() == CheckStatus::pass);
  CHECK_THAT(good.cases[0].verdict.find("o_slc")->note,
             Catch::Matchers::Contains("candidate's indices"));
  // The candidate's lists with the truth's selection outputs: o_slc does not match its lists.
  auto mixed = legal;
  mixed.o_branch[1] = g.cases[0].truth.o_branch[1];
  const auto bad = judge(mixed);
  INFO(bad.cases[0].verdict.table());
  CHECK(bad.status() == CheckStatus::fail);
  CHECK_FALSE(bad.cases[0].verdict.find("o_slc")->pass);
  std::filesystem::remove(gpath);
  std::filesystem::remove(cpath);
}

TEST_CASE("golden check: missing cases and tensors are reported as not checked", "[golden]") {
  const auto cs = golden().cases[0].name;
  const auto o = stored(golden_path(), cs, "o");
  const auto r = check_puts(cs, {{"o", Store::f64, o.truth, {}, o.dims}});
  CHECK(r.status() == CheckStatus::pass);
  CHECK(r.passed == 1);
  CHECK(r.failed == 0);
  CHECK(r.not_checked == static_cast<int>(golden().cases.size()) - 1);
  CHECK(r.tensors == 1);
  for (const auto& c : r.cases) {
    CHECK(c.checked == (c.name == cs));
    if (!c.checked) continue;
    for (const auto& t : c.verdict.tensors) CHECK(t.checked == (t.name == "o"));
    CHECK_THAT(c.verdict.table(), Catch::Matchers::Contains("not checked"));
  }
  // No output of any golden case: nothing judged, which is neither a pass nor a failure.
  const auto none = check_puts("no_such_case", {{"o", Store::f64, o.truth, {}, o.dims}});
  CHECK(none.status() == CheckStatus::no_check);
  CHECK(none.not_checked == static_cast<int>(golden().cases.size()));
  // Present and wrong: a failure.
  auto x = o.truth;
  x[0] += 1.0;
  CHECK(check_puts(cs, {{"o", Store::f64, x, {}, o.dims}}).status() == CheckStatus::fail);
}

TEST_CASE("golden check: exit status 0 pass, 1 a candidate failed, 2 nothing judged", "[golden]") {
  const auto& g = golden_path();
  const auto cs = golden().cases[1].name;  // bf16
  const auto s = stored(g, cs, "lse_slc");
  const double b = stored_bound(s, kTol);
  const int64_t i = finite_element(s.truth);
  const auto out = temp_path("exit_outside.h5"), in = temp_path("exit_inside.h5");
  auto x = s.truth;
  x[i] = jo::just_outside(s.truth[i], b);
  write_cand(out, {{cs, {{"lse_slc", Store::f64, x, {}, s.dims}}}});
  x[i] = jo::just_inside(s.truth[i], b);
  write_cand(in, {{cs, {{"lse_slc", Store::f64, x, {}, s.dims}}}});
  const auto o = stored(g, golden().cases[0].name, "o");
  auto short_dims = o.dims;
  short_dims.back() -= 1;
  const auto misshaped = temp_path("exit_shape.h5");
  write_cand(misshaped, {{golden().cases[0].name,
                          {{"o",
                            Store::f64,
                            std::vector<double>(o.truth.size() - o.dims[0] * o.dims[1]),
                            {},
                            short_dims}}}});
  const auto nothing = temp_path("exit_nothing.h5");
  write_cand(nothing, {{"no_such_case", {{"o", Store::f64, o.truth, {}, o.dims}}}});
  const auto truncated = temp_path("exit_truncated.h5");
  std::filesystem::copy_file(g, truncated, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(truncated, std::filesystem::file_size(truncated) / 2);
  const auto text = temp_path("exit_text.h5");
  std::ofstream(text) << "not HDF5\n";
  const auto newer = temp_path("exit_schema.h5");
  std::filesystem::copy_file(g, newer, std::filesystem::copy_options::overwrite_existing);
  {
    Rw rw(newer);
    h5::write_attr(rw.f, "schema_version", int64_t{kSchemaVersion + 1});
  }
  const std::string tol = " --alpha 3 --beta 0.5";
  struct Row {
    const char* what;
    std::string args;
    int code;
  };
  const std::vector<Row> rows = {
      {"the golden file as its own candidate", g + " " + g, 0},
      {"lse_slc at the bound (alpha 3, beta 0.5)", g + " " + in + tol, 0},
      {"lse_slc just past the bound", g + " " + out + tol, 1},
      {"a dataset of the wrong shape", g + " " + misshaped, 1},
      {"no output of any golden case", g + " " + nothing, 2},
      {"a truncated candidate", g + " " + truncated, 2},
      {"a truncated golden file", truncated + " " + g, 2},
      {"a candidate that is not HDF5", g + " " + text, 2},
      {"a missing candidate", g + " " + g + ".absent", 2},
      {"a missing golden file", g + ".absent " + in, 2},
      {"a golden file of another schema version", newer + " " + g, 2},
      {"one file only", g, 2},
      {"a negative alpha", g + " " + g + " --alpha -1", 2},
  };
  for (const auto& r : rows) {
    INFO(r.what << ": nsa golden check " << r.args);
    CHECK(run_nsa(r.args) == r.code);
  }
  for (const auto& p : {out, in, misshaped, nothing, truncated, text, newer})
    std::filesystem::remove(p);
}

TEST_CASE("golden check: each stored tensor's ulp_dtype is the rule's", "[golden]") {
  // The numpy checker and other readers take the ulp dtype from this attribute: o tensors in the
  // case dtype, lse, p_cmp, scores and score_gap in fp32 whatever the case dtype.
  const auto f = h5::open_file(golden_path());
  int checked = 0;
  for (const auto& gc : golden().cases) {
    const std::string dt(nsa::ref::to_string(gc.vc.cfg.dtype));
    for (const auto& name : expected_tensor_names(gc.vc)) {
      if (name == "indices") continue;
      const auto ds = h5::open_dataset(f, "cases/" + gc.name + "/expected/" + name, "test");
      INFO(gc.name << " " << name);
      CHECK(h5::read_attr_string(ds, "ulp_dtype", "test") ==
            (name.rfind("o", 0) == 0 ? dt : std::string("fp32")));
      ++checked;
    }
  }
  CHECK(checked > 6 * 7);
}
