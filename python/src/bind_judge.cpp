// The judge: the project's comparator (nsa::golden::check_case, check_case_gradients,
// nsa::ref::check_candidate, check_candidate_gradients, check_file) on a candidate's arrays.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <optional>

#include "arrays.hpp"
#include "bindings.hpp"
#include "nsa/golden/check.hpp"
#include "shapes.hpp"

namespace nsa::py {

using nsa::ref::Tolerance;
using nsa::ref::ValidConfig;

nb::list verdict_to_list(const nsa::ref::Verdict& v) {
  nb::list l;
  for (const auto& t : v.tensors) {
    nb::dict d;
    d["name"] = t.name;
    d["checked"] = t.checked;
    d["passed"] = t.pass;
    d["max_err"] = t.max_err;
    d["bound"] = t.bound;
    d["baseline_err"] = t.baseline_err;
    d["worst"] = t.worst;
    d["expected"] = t.expected;
    d["actual"] = t.actual;
    d["note"] = t.note;
    l.append(d);
  }
  return l;
}

namespace {

// Every row, head and KV head: what a candidate covers.
void cover_all(const ValidConfig& vc, nsa::ref::Outputs& o) {
  o.rows.clear();
  o.heads.clear();
  o.groups.clear();
  for (int64_t r = 0; r < vc.total_q; ++r) o.rows.push_back(r);
  for (int64_t h = 0; h < vc.cfg.h_q; ++h) o.heads.push_back(h);
  for (int64_t g = 0; g < vc.cfg.h_kv; ++g) o.groups.push_back(g);
  o.d_v = vc.cfg.d_v;
  o.top_n = vc.cfg.top_n;
}

void cover_all(const ValidConfig& vc, nsa::ref::Gradients& g) {
  g.rows.clear();
  g.keys.clear();
  for (int64_t r = 0; r < vc.total_q; ++r) g.rows.push_back(r);
  for (int64_t k = 0; k < vc.total_k; ++k) g.keys.push_back(k);
}

// The candidate's own forward indices for judging its gradients (empty: none given).
std::vector<int32_t> own_indices(const ValidConfig& vc, const std::optional<IndexArray>& a) {
  if (!a) return {};
  return to_vector(*a, "indices", output_shape(vc, "indices", vc.total_q, vc.cfg.h_q, vc.cfg.h_kv));
}

nb::dict case_report(const nsa::golden::CaseReport& c) {
  nb::dict d;
  d["name"] = c.name;
  d["checked"] = c.checked;
  d["forward"] = c.forward ? nb::object(verdict_to_list(c.verdict)) : nb::none();
  d["grads"] = c.grads ? nb::object(verdict_to_list(c.grad_verdict)) : nb::none();
  d["grad_note"] = c.grad_note;
  return d;
}

}  // namespace

void bind_judge(nb::module_& m) {
  m.def(
      "judge_case",
      [](const nsa::golden::GoldenCase& gc, const nb::dict& outputs, double alpha, double beta) {
        const auto cand = candidate_outputs(gc.vc, outputs);
        nsa::ref::Verdict v;
        {
          nb::gil_scoped_release unlocked;
          v = nsa::golden::check_case(gc, cand, Tolerance{alpha, beta});
        }
        return verdict_to_list(v);
      },
      nb::arg("case"), nb::arg("outputs"), nb::arg("alpha"), nb::arg("beta"));
  m.def(
      "judge_case_grads",
      [](const nsa::golden::GoldenCase& gc, const nb::dict& grads,
         const std::optional<IndexArray>& indices, double alpha, double beta) {
        const auto cand = candidate_grads(gc.vc, grads);
        const auto idx = own_indices(gc.vc, indices);
        nsa::ref::Verdict v;
        {
          nb::gil_scoped_release unlocked;
          v = nsa::golden::check_case_gradients(gc, cand, idx, Tolerance{alpha, beta});
        }
        return verdict_to_list(v);
      },
      nb::arg("case"), nb::arg("grads"), nb::arg("indices").none(), nb::arg("alpha"),
      nb::arg("beta"));
  m.def(
      "check_candidate",
      [](const ValidConfig& vc, const nb::dict& inputs, const nb::dict& outputs,
         const std::string& precision, double alpha, double beta) {
        const auto in = inputs_from(vc, inputs);
        auto cand = candidate_outputs(vc, outputs);
        cover_all(vc, cand);
        const auto p = parse_precision(precision);
        nsa::ref::Verdict v;
        {
          nb::gil_scoped_release unlocked;
          v = nsa::ref::check_candidate(vc, in, cand, p, Tolerance{alpha, beta});
        }
        return verdict_to_list(v);
      },
      nb::arg("config"), nb::arg("inputs"), nb::arg("outputs"), nb::arg("precision"),
      nb::arg("alpha"), nb::arg("beta"));
  m.def(
      "check_candidate_gradients",
      [](const ValidConfig& vc, const nb::dict& inputs, const DoubleArray& d_o,
         const nb::dict& grads, const std::optional<IndexArray>& indices,
         const std::string& precision, double alpha, double beta) {
        const auto in = inputs_from(vc, inputs);
        const auto dov = to_vector(d_o, "do", {vc.total_q, vc.cfg.h_q, vc.cfg.d_v});
        auto cand = candidate_grads(vc, grads);
        cover_all(vc, cand);
        const auto idx = own_indices(vc, indices);
        const auto p = parse_precision(precision);
        nsa::ref::Verdict v;
        {
          nb::gil_scoped_release unlocked;
          v = nsa::ref::check_candidate_gradients(vc, in, dov, cand, p, Tolerance{alpha, beta},
                                                  idx);
        }
        return verdict_to_list(v);
      },
      nb::arg("config"), nb::arg("inputs"), nb::arg("do"), nb::arg("grads"),
      nb::arg("indices").none(), nb::arg("precision"), nb::arg("alpha"), nb::arg("beta"));
  m.def(
      "check_file",
      [](const nsa::golden::GoldenFile& golden, const std::string& candidate_path, double alpha,
         double beta) {
        nsa::golden::FileReport report;
        {
          nb::gil_scoped_release unlocked;
          const auto cands = nsa::golden::read_candidate(candidate_path, golden);
          report = nsa::golden::check_file(golden, cands, Tolerance{alpha, beta});
        }
        nb::list cases;
        for (const auto& c : report.cases) cases.append(case_report(c));
        nb::dict d;
        d["cases"] = cases;
        d["passed"] = report.passed;
        d["failed"] = report.failed;
        d["not_checked"] = report.not_checked;
        d["tensors"] = report.tensors;
        d["grad_tensors"] = report.grad_tensors;
        d["status"] = static_cast<int>(report.status());
        return d;
      },
      nb::arg("golden"), nb::arg("candidate_path"), nb::arg("alpha"), nb::arg("beta"));
}

}  // namespace nsa::py
