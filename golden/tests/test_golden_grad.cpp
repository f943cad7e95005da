// The backward in golden files (schema 2): round trip of dO and the gradients, version 1 files
// read as forward only, damaged gradient data, and the judging of candidate gradients.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>

#include "golden_test_support.hpp"
#include "nsa/golden/check.hpp"

using namespace nsa::golden;
using namespace nsa::golden::test;
using nsa::ref::Branch;
using nsa::ref::Config;

namespace {

// A one-case golden file of `cfg` with its f64 truth, written to a temporary path; `edit` may
// change the seeded inputs first.
std::pair<GoldenFile, std::string> one_case(
    const std::string& name, const Config& cfg,
    const std::function<void(nsa::ref::Inputs&)>& edit = [](nsa::ref::Inputs&) {}) {
  GoldenFile g;
  g.suite = "config";
  CaseSpec spec;
  spec.name = "000_" + name;
  spec.cfg = cfg;
  spec.seed = 5;
  auto in = nsa::ref::generate_inputs(nsa::ref::validate(cfg), spec.seed);
  edit(in);
  g.cases.push_back(make_case(spec, std::move(in), nsa::ref::Precision::f64, 2));
  const auto path = temp_path(name + ".h5");
  write_golden(path, g);
  return {g, path};
}

Config small() {
  Config c;
  c.t_k = 150;
  c.h_q = 4;
  c.h_kv = 2;
  c.d_k = 8;
  c.d_v = 8;
  c.top_n = 4;
  c.window = 20;
  return c;
}

}  // namespace

TEST_CASE("golden grad: write then read gives back dO, every gradient and its baseline error",
          "[golden]") {
  const auto path = written_sample("grad_roundtrip.h5");
  const auto back = read_golden(path);
  REQUIRE(back.schema_version == kSchemaVersion);
  REQUIRE(back.cases.size() == sample().cases.size());
  for (std::size_t i = 0; i < back.cases.size(); ++i) {
    const auto& a = sample().cases[i];
    const auto& b = back.cases[i];
    INFO("case " << a.name);
    REQUIRE(b.has_grad);
    CHECK(b.d_o == a.d_o);
    CHECK(b.grad_baseline_err == a.grad_baseline_err);
    const auto names = nsa::ref::grad_tensor_names(a.vc);
    CHECK(b.grad_baseline_err.size() == names.size());
    for (const auto& n : names) {
      INFO("gradient " << n);
      CHECK(nsa::ref::grad_tensor(b.vc, b.grad_truth, n) ==
            nsa::ref::grad_tensor(a.vc, a.grad_truth, n));
    }
  }
  std::filesystem::remove(path);
}

TEST_CASE("golden grad: a schema 1 file is read as forward only and says so", "[golden]") {
  const auto path = written_sample("grad_v1.h5");
  {
    Rw rw(path);
    h5::write_attr(rw.f, "schema_version", int64_t{1});
    for (const auto& gc : sample().cases) {
      const std::string c = "cases/" + gc.name;
      REQUIRE(H5Ldelete(rw.f, (c + "/inputs/do").c_str(), H5P_DEFAULT) >= 0);
      REQUIRE(H5Ldelete(rw.f, (c + "/expected/grad").c_str(), H5P_DEFAULT) >= 0);
    }
  }
  const auto v1 = read_golden(path);
  CHECK(v1.schema_version == 1);
  for (const auto& gc : v1.cases) {
    CHECK_FALSE(gc.has_grad);
    CHECK(check_case(gc, gc.truth).pass());  // the forward is still judged
  }
  const auto e = error_of([&] { check_case_gradients(v1.cases[0], v1.cases[0].grad_truth); });
  CHECK(contains(e, "schema 1"));
  CHECK(contains(e, "holds no gradients"));
  std::filesystem::remove(path);
}

TEST_CASE("golden grad: damaged backward data is rejected naming the case and dataset",
          "[golden]") {
  const auto path = written_sample("grad_damaged.h5");
  const auto& gc = sample().cases[0];
  const std::string c = "cases/" + gc.name;
  SECTION("missing gradient") {
    {
      Rw rw(path);
      REQUIRE(H5Ldelete(rw.f, (c + "/expected/grad/dk_win").c_str(), H5P_DEFAULT) >= 0);
    }
    const auto e = error_of([&] { read_golden(path); });
    CHECK(contains(e, "case " + gc.name));
    CHECK(contains(e, "expected/grad/dk_win is missing"));
  }
  SECTION("gradient of the wrong shape") {
    replace_dataset(path, c + "/expected/grad/dq", H5T_IEEE_F64LE, {3});
    const auto e = error_of([&] { read_golden(path); });
    CHECK(contains(e, "expected/grad/dq has shape [3]"));
  }
  SECTION("missing dO") {
    {
      Rw rw(path);
      REQUIRE(H5Ldelete(rw.f, (c + "/inputs/do").c_str(), H5P_DEFAULT) >= 0);
    }
    CHECK(contains(error_of([&] { read_golden(path); }), "inputs/do is missing"));
  }
  SECTION("dO of another dtype than the case's") {
    const auto& vc = gc.vc;
    replace_dataset(path, c + "/inputs/do", H5T_IEEE_F64LE,
                    {static_cast<hsize_t>(vc.total_q), static_cast<hsize_t>(vc.cfg.h_q),
                     static_cast<hsize_t>(vc.cfg.d_v)});
    const auto e = error_of([&] { read_golden(path); });
    CHECK(contains(e, "inputs/do has type fp64, expected fp32"));
  }
  std::filesystem::remove(path);
}

TEST_CASE(
    "golden grad check: exact gradients pass, perturbed ones fail, absent ones are not "
    "checked",
    "[golden]") {
  const auto path = written_sample("grad_check.h5");
  const auto golden = read_golden(path);
  const auto& gc = golden.cases[0];
  const auto exact = check_case_gradients(gc, gc.grad_truth);
  CHECK(exact.pass());
  for (const auto& t : exact.tensors) CHECK(t.checked);
  // Every run of the backward baseline set passes by construction (alpha >= 1); a read-back file
  // recomputes the set.
  for (const auto& b : sample().cases[0].grad_baselines) CHECK(check_case_gradients(gc, b).pass());
  // A candidate file with dq off by 4 bounds at one element and dv_slc exact: dq fails there,
  // dv_slc passes, the others are not checked.
  nsa::ref::Gradients cand;
  cand.dq = gc.grad_truth.dq;
  const double bound = exact.find("dq")->bound;
  REQUIRE(bound > 0);
  cand.dq[11] += 4 * bound;
  cand.dv[1] = gc.grad_truth.dv[1];
  const auto cpath = temp_path("grad_candidate.h5");
  write_candidate(cpath, {{gc.name, nsa::ref::Outputs{}}}, golden, {{gc.name, cand}});
  const auto cands = read_candidate(cpath, golden);
  REQUIRE(cands.count(gc.name) == 1);
  const auto& cc = cands.at(gc.name);
  CHECK(cc.has_grads());
  CHECK_FALSE(cc.has_forward());
  const auto v = check_case_gradients(gc, cc.grads);
  CHECK_FALSE(v.pass());
  CHECK_FALSE(v.find("dq")->pass);
  CHECK(v.find("dq")->worst == 11);
  CHECK(v.find("dv_slc")->checked);
  CHECK(v.find("dv_slc")->pass);
  CHECK_FALSE(v.find("dk_cmp")->checked);
  CHECK_FALSE(v.find("dg_win")->checked);
  std::filesystem::remove(path);
  std::filesystem::remove(cpath);
}

TEST_CASE("golden grad check: a gradient the case cannot have fails, naming it", "[golden]") {
  auto cfg = small();
  cfg.enable_win = false;
  const auto [g, path] = one_case("no_window", cfg);
  const auto golden = read_golden(path);
  const auto& gc = golden.cases[0];
  const auto cpath = temp_path("grad_disabled_candidate.h5");
  auto write_one = [&](const char* name, int64_t n) {
    const auto f = h5::create_file(cpath);
    const auto cs = h5::create_group(f, "cases", "t");
    const auto c = h5::create_group(cs, gc.name, "t");
    const auto o = h5::create_group(c, "outputs", "t");
    const auto gr = h5::create_group(o, "grad", "t");
    std::vector<double> x(static_cast<std::size_t>(n));
    h5::write_dataset(gr, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, x.data(), {n});
  };
  // Each is the candidate's failure: a failed tensor whose note names the dataset and the reason,
  // not damage of the file.
  auto rejected = [&](const char* name) {
    const auto cands = read_candidate(cpath, golden);
    const auto& cc = cands.at(gc.name);
    CHECK(cc.has_grads());
    const auto v = check_case_gradients(gc, cc);
    CHECK_FALSE(v.pass());
    const auto* t = v.find(name);
    REQUIRE(t);
    CHECK(t->checked);
    CHECK_FALSE(t->pass);
    return t->note;
  };
  write_one("dk_win", gc.vc.total_k * 2 * 8);
  const auto note = rejected("dk_win");
  CHECK(contains(note, "outputs/grad/dk_win"));
  CHECK(contains(note, "branch win is disabled"));
  write_one("dphi_k_w1", 4);
  CHECK(contains(rejected("dphi_k_w1"), "phi mean has no parameter 'w1'"));
  write_one("dq", 3);
  CHECK(contains(rejected("dq"), "outputs/grad/dq has shape [3]"));
  // Through the command's path: a failed candidate (exit 1), not damage (exit 2).
  CHECK(check_file(golden, read_candidate(cpath, golden)).status() == CheckStatus::fail);
  std::filesystem::remove(path);
  std::filesystem::remove(cpath);
}

TEST_CASE(
    "golden grad check: with the candidate's own tied selection, gradients are judged "
    "against the reference run with it",
    "[golden]") {
  // q = 0: every compressed softmax is uniform, so blocks covered alike score exactly alike and
  // the other tie rule picks other blocks.
  auto cfg = small();
  cfg.t_k = 400;
  cfg.top_n = 5;
  const auto [g, path] =
      one_case("ties", cfg, [](nsa::ref::Inputs& in) { std::fill(in.q.begin(), in.q.end(), 0.0); });
  const auto golden = read_golden(path);
  const auto& gc = golden.cases[0];
  Config other = gc.vc.cfg;
  other.profile = "custom";
  other.tie_break = nsa::ref::TieBreak::higher_index_first;
  const auto vo = nsa::ref::validate(other);
  const auto fo = nsa::ref::forward(vo, gc.inputs, nsa::ref::Precision::f64);
  REQUIRE(fo.indices != gc.truth.indices);  // the tie rule matters on these inputs
  // The forward's judge accepts the other selection as a tie-break.
  CHECK(check_case(gc, fo).find("indices")->pass);
  // Gradients of the other selection, computed by the reference with those lists.
  Config given = gc.vc.cfg;
  given.profile = "custom";
  given.given_indices = true;
  given.index_policy = nsa::ref::IndexPolicy::multiset;
  const auto vg = nsa::ref::validate(given);
  auto in = gc.inputs;
  in.indices = fo.indices;
  const auto grads = nsa::ref::backward(vg, in, gc.d_o, nsa::ref::Precision::f64);
  const auto own = check_case_gradients(gc, grads, fo.indices);
  CHECK(own.pass());
  CHECK(contains(own.find("dk_slc")->note, "candidate's indices"));
  // The same gradients judged against the truth's selection fail on the selection branch, and
  // the truth's gradients fail against the other selection.
  CHECK_FALSE(check_case_gradients(gc, grads).pass());
  CHECK_FALSE(check_case_gradients(gc, gc.grad_truth, fo.indices).pass());
  std::filesystem::remove(path);
}

namespace {

// The canonical suite's given-cache cases (cmp_given), truth in f64.
GoldenFile cmp_given_sample() {
  GoldenFile g;
  g.suite = "canonical";
  for (const auto& s : suite_cases("canonical"))
    if (s.cfg.cmp_given) g.cases.push_back(make_case(s, nsa::ref::Precision::f64, 2));
  return g;
}

}  // namespace

TEST_CASE("golden: a given compressed cache round-trips: k~, v~ and their gradients, no K_cmp",
          "[golden]") {
  const auto sample_file = cmp_given_sample();
  REQUIRE(sample_file.cases.size() == 2);
  const auto path = temp_path("cmp_given.h5");
  write_golden(path, sample_file);
  const auto back = read_golden(path);
  REQUIRE(back.schema_version == 3);
  for (std::size_t i = 0; i < back.cases.size(); ++i) {
    const auto& a = sample_file.cases[i];
    const auto& b = back.cases[i];
    INFO("case " << a.name);
    REQUIRE(b.vc.cfg.cmp_given);
    CHECK(!b.inputs.k_tilde.empty());
    CHECK(b.inputs.k_tilde == a.inputs.k_tilde);
    CHECK(b.inputs.v_tilde == a.inputs.v_tilde);
    CHECK(b.inputs.phi_k.w1.empty());
    CHECK(check_case(b, b.truth).pass());
    const auto names = nsa::ref::grad_tensor_names(a.vc);
    for (const auto& n : names) {
      INFO("gradient " << n);
      CHECK(nsa::ref::grad_tensor(b.vc, b.grad_truth, n) ==
            nsa::ref::grad_tensor(a.vc, a.grad_truth, n));
    }
    CHECK(check_case_gradients(b, b.grad_truth).pass());
  }
  {
    Rw rw(path);
    // The decode case has separate K/V: no k_cmp is stored, the cache and its gradient are.
    const std::string c = "cases/" + sample_file.cases[0].name;
    CHECK(H5Lexists(rw.f, (c + "/inputs/k_cmp").c_str(), H5P_DEFAULT) == 0);
    CHECK(H5Lexists(rw.f, (c + "/inputs/k_tilde").c_str(), H5P_DEFAULT) > 0);
    CHECK(H5Lexists(rw.f, (c + "/expected/grad/dk_tilde").c_str(), H5P_DEFAULT) > 0);
    CHECK(H5Lexists(rw.f, (c + "/expected/grad/dk_cmp").c_str(), H5P_DEFAULT) == 0);
  }
  // A wrong gradient of the cache fails the judge.
  {
    auto cand = back.cases[0].grad_truth;
    for (double& x : cand.dk_tilde) x *= 1.25;
    const auto v = check_case_gradients(back.cases[0], cand);
    INFO(v.table());
    CHECK_FALSE(v.pass());
    const auto* t = v.find("dk_tilde");
    REQUIRE(t != nullptr);
    CHECK_FALSE(t->pass);
    CHECK(v.find("dv_tilde")->pass);
  }
  // A version 2 file cannot hold a given cache.
  {
    Rw rw(path);
    h5::write_attr(rw.f, "schema_version", int64_t{2});
  }
  const auto e = error_of([&] { read_golden(path); });
  CHECK(contains(e, "cmp_given = true needs schema_version 3 (the file says 2)"));
  std::filesystem::remove(path);
}
