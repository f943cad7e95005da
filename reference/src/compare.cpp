// The tolerance rule (docs/tolerance.md) and the tie-aware index comparison.
#include "nsa/ref/compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "compare_rules.hpp"
#include "selection.hpp"

namespace nsa::ref {
namespace {

// (mantissa bits, minimum normal exponent) of each dtype.
std::pair<int, int> format_of(Dtype dt) {
  switch (dt) {
    case Dtype::f16:
      return {10, -14};
    case Dtype::bf16:
      return {7, -126};
    case Dtype::f32:
      return {23, -126};
    case Dtype::f64:
      return {52, -1022};
  }
  return {52, -1022};
}

}  // namespace

namespace detail {

double max_abs_finite(const std::vector<double>& x) {
  double m = 0;
  for (double v : x)
    if (std::isfinite(v)) m = std::max(m, std::abs(v));
  return m;
}

// Max |a - b| over elements where b (truth) is finite.
double max_err(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t i = 0; i < b.size(); ++i)
    if (std::isfinite(b[i]) && std::isfinite(a[i])) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

TensorVerdict check_tensor(const std::string& name, const std::vector<double>& truth,
                           const BaselineTensors& bases, const std::vector<double>& cand,
                           Dtype dtype, const Tolerance& tol) {
  TensorVerdict v;
  v.name = name;
  if (cand.empty() && !truth.empty()) return v;  // not provided: not checked
  v.checked = true;
  if (cand.size() != truth.size()) {
    v.pass = false;
    v.note = "size " + std::to_string(cand.size()) + ", expected " + std::to_string(truth.size());
    return v;
  }
  for (const auto* base : bases) {
    if (base->size() != truth.size())
      throw std::invalid_argument("compare: baseline tensor " + name + " has " +
                                  std::to_string(base->size()) + " elements, the truth " +
                                  std::to_string(truth.size()));
    v.baseline_err = std::max(v.baseline_err, max_err(*base, truth));
  }
  v.bound = tol.alpha * v.baseline_err + tol.beta * ulp(max_abs_finite(truth), dtype);
  for (std::size_t i = 0; i < truth.size(); ++i) {
    const double t = truth[i], c = cand[i];
    std::string problem;
    if (std::isnan(c))
      problem = "NaN (unwritten or invalid)";
    else if (std::isinf(t) && c != t)
      problem = "expected " + std::to_string(t) + " exactly";
    else if (!std::isinf(t) && std::isinf(c))
      problem = "Inf where the truth is finite";
    if (!problem.empty()) {
      if (v.pass) {  // report the first structural problem as the worst element
        v.pass = false;
        v.note = problem + " at element " + std::to_string(i);
        v.worst = static_cast<int64_t>(i);
        v.expected = t;
        v.actual = c;
      }
      continue;
    }
    if (std::isinf(t)) continue;
    const double err = std::abs(c - t);
    if (err > v.max_err || v.worst < 0) {
      v.max_err = std::max(v.max_err, err);
      if (v.pass) {
        v.worst = static_cast<int64_t>(i);
        v.expected = t;
        v.actual = c;
      }
    }
  }
  if (v.max_err > v.bound) v.pass = false;
  return v;
}

}  // namespace detail

namespace {

using detail::BaselineTensors;
using detail::check_tensor;
using detail::max_abs_finite;
using detail::max_err;

int64_t position_of_row(const ValidConfig& vc, int64_t row) {
  for (const auto& s : vc.seqs)
    if (row >= s.q_begin && row < s.q_begin + s.t_q) return s.pos(row - s.q_begin);
  throw std::invalid_argument("compare: row " + std::to_string(row) + " is in no sequence");
}

// Indices: well-formed (ascending, unique, -1 padded, candidates, right count), forced blocks
// identical, and any other difference only between blocks whose truth scores are within delta.
TensorVerdict check_indices(const ValidConfig& vc, const Outputs& truth,
                            const std::vector<Outputs>& bases, const Outputs& cand,
                            const Tolerance& tol, bool* differs) {
  TensorVerdict v;
  v.name = "indices";
  *differs = false;
  if (cand.indices.empty()) return v;
  v.checked = true;
  if (cand.indices.size() != truth.indices.size()) {
    v.pass = false;
    v.note = "size " + std::to_string(cand.indices.size()) + ", expected " +
             std::to_string(truth.indices.size());
    return v;
  }
  const auto& c = vc.cfg;
  if (c.given_indices) {
    // Given lists are inputs echoed back (any slot order, -1 anywhere, and under skip_invalid /
    // multiset any values): the candidate must echo them exactly, not form a selection.
    for (std::size_t i = 0; i < cand.indices.size(); ++i) {
      if (cand.indices[i] == truth.indices[i]) continue;
      v.pass = false;
      v.worst = static_cast<int64_t>(i);
      v.expected = truth.indices[i];
      v.actual = cand.indices[i];
      v.note = "given index list not echoed";
      break;
    }
    return v;
  }
  const int64_t n = c.top_n, ng = static_cast<int64_t>(truth.groups.size());
  const bool have_scores = truth.ns_max > 0 && !truth.scores.empty();
  // delta: the score error model of the baselines, as for any other tensor (scores are fp32).
  double delta = 0;
  if (have_scores) {
    double base_err = 0;
    for (const auto& base : bases) {
      if (base.scores.size() != truth.scores.size())
        throw std::invalid_argument("compare: baseline scores cover other blocks than the truth");
      base_err = std::max(base_err, max_err(base.scores, truth.scores));
    }
    delta = tol.alpha * base_err + tol.beta * ulp(max_abs_finite(truth.scores), Dtype::f32);
    v.baseline_err = base_err;
  }
  v.bound = delta;
  int64_t mismatched_rows = 0;
  auto fail = [&](int64_t flat, const std::string& why) {
    if (v.pass) {
      v.pass = false;
      v.worst = flat;
      v.expected = truth.indices[flat];
      v.actual = cand.indices[flat];
      v.note = why;
    }
  };
  for (std::size_t ri = 0; ri < truth.rows.size(); ++ri) {
    const int64_t t = position_of_row(vc, truth.rows[ri]);
    const int64_t n_cand = detail::num_candidates(vc, t);
    // Only forced_mode always pins blocks; score_one forced blocks compete like the others.
    const bool pinned = c.forced_mode == ForcedMode::always;
    const auto forced = detail::forced_mask(vc, t);
    for (int64_t gi = 0; gi < ng; ++gi) {
      const int64_t base_flat = (static_cast<int64_t>(ri) * ng + gi) * n;
      const int32_t* tr = truth.indices.data() + base_flat;
      const int32_t* cr = cand.indices.data() + base_flat;
      auto where = [&](int64_t slot) {
        return "row " + std::to_string(truth.rows[ri]) + " (t " + std::to_string(t) +
               "), kv head " + std::to_string(truth.groups[gi]) + ", slot " + std::to_string(slot) +
               ": ";
      };
      // Well-formed: ascending candidates, then -1 padding, as many as the truth selects.
      int64_t count = 0;
      bool ok = true;
      for (int64_t s = 0; s < n && ok; ++s) {
        const int32_t x = cr[s];
        if (x == -1) {
          for (int64_t r = s + 1; r < n; ++r)
            if (cr[r] != -1) {
              fail(base_flat + r, where(r) + "entry after -1 padding");
              ok = false;
              break;
            }
          break;
        }
        if (x < 0 || x >= n_cand) {
          fail(base_flat + s,
               where(s) + "not a candidate block (0.." + std::to_string(n_cand - 1) + ")");
          ok = false;
        } else if (s > 0 && x <= cr[s - 1]) {
          fail(base_flat + s, where(s) + "not strictly ascending");
          ok = false;
        }
        ++count;
      }
      if (!ok) continue;
      const int64_t want = std::min(n, n_cand);
      if (count != want) {
        fail(base_flat, where(0) + std::to_string(count) + " blocks selected, expected " +
                            std::to_string(want));
        continue;
      }
      if (std::equal(tr, tr + n, cr)) continue;
      *differs = true;
      ++mismatched_rows;
      std::vector<int32_t> only_t, only_c;
      std::set_difference(tr, tr + want, cr, cr + want, std::back_inserter(only_t));
      std::set_difference(cr, cr + want, tr, tr + want, std::back_inserter(only_c));
      for (int32_t j : only_t)
        if (pinned && forced[j])
          fail(base_flat, where(0) + "forced block " + std::to_string(j) + " missing");
      if (!have_scores) {
        fail(base_flat, where(0) + "indices differ and no truth scores to judge ties");
        continue;
      }
      const double* sc = truth.scores.data() + (static_cast<int64_t>(ri) * ng + gi) * truth.ns_max;
      // The truth picked only_t over only_c; the swap is acceptable only within delta.
      double worst_gap = 0;
      for (int32_t a : only_t)
        for (int32_t b : only_c) worst_gap = std::max(worst_gap, sc[a] - sc[b]);
      if (worst_gap > delta)
        fail(base_flat, where(0) + "selected block with truth score gap " +
                            std::to_string(worst_gap) + " > delta " + std::to_string(delta));
    }
  }
  v.max_err = static_cast<double>(mismatched_rows);
  if (v.pass && mismatched_rows > 0)
    v.note = std::to_string(mismatched_rows) + " (row, kv head) lists differ within ties";
  return v;
}

void require_same_rows(const Outputs& a, const Outputs& b, const char* what) {
  if (a.rows != b.rows || a.heads != b.heads)
    throw std::invalid_argument(std::string("compare: ") + what +
                                " covers other rows or heads than the truth");
}

}  // namespace

double ulp(double x, Dtype dtype) {
  const auto [mant, emin] = format_of(dtype);
  const double a = std::abs(x);
  int e = emin;
  if (a > 0 && std::isfinite(a)) e = std::max(std::ilogb(a), emin);
  return std::ldexp(1.0, e - mant);
}

bool Verdict::pass() const {
  return std::all_of(tensors.begin(), tensors.end(), [](const auto& t) { return t.pass; });
}

const TensorVerdict* Verdict::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::string Verdict::table() const {
  std::ostringstream o;
  char line[512];
  std::snprintf(line, sizeof line, "  %-10s %-6s %12s %12s  %s\n", "tensor", "result", "max_err",
                "bound", "worst / note");
  o << line;
  for (const auto& t : tensors) {
    const char* result = !t.checked ? "--" : t.pass ? "ok" : "FAIL";
    std::string tail = t.note;
    if (t.worst >= 0 && t.checked && t.name != "indices")
      tail = "at " + std::to_string(t.worst) + ": expected " + std::to_string(t.expected) +
             ", got " + std::to_string(t.actual) + (tail.empty() ? "" : "; " + tail);
    if (!t.checked) tail = "not checked";
    std::snprintf(line, sizeof line, "  %-10s %-6s %12.4g %12.4g  %s\n", t.name.c_str(), result,
                  t.max_err, t.bound, tail.c_str());
    o << line;
  }
  return o.str();
}

Verdict compare(const ValidConfig& vc, const Outputs& truth, const std::vector<Outputs>& baselines,
                const Outputs& candidate, Tolerance tol) {
  if (baselines.empty()) throw std::invalid_argument("compare: no baseline");
  for (const auto& b : baselines) require_same_rows(truth, b, "a baseline");
  require_same_rows(truth, candidate, "the candidate");
  const auto& c = vc.cfg;
  auto tensors = [&](auto member) {
    BaselineTensors out;
    for (const auto& b : baselines) out.push_back(&member(b));
    return out;
  };
  Verdict v;
  bool differs = false;
  if (c.enable_slc)
    v.tensors.push_back(check_indices(vc, truth, baselines, candidate, tol, &differs));
  for (Branch b : kAllBranches) {
    if (!c.enabled(b)) continue;
    const std::string s(to_string(b));
    const int i = static_cast<int>(b);
    v.tensors.push_back(check_tensor(
        "o_" + s, truth.o_branch[i],
        tensors([i](const Outputs& o) -> const std::vector<double>& { return o.o_branch[i]; }),
        candidate.o_branch[i], c.dtype, tol));
    v.tensors.push_back(check_tensor(
        "lse_" + s, truth.lse[i],
        tensors([i](const Outputs& o) -> const std::vector<double>& { return o.lse[i]; }),
        candidate.lse[i], Dtype::f32, tol));
  }
  v.tensors.push_back(check_tensor(
      "o", truth.o, tensors([](const Outputs& o) -> const std::vector<double>& { return o.o; }),
      candidate.o, c.dtype, tol));
  return v;
}

Verdict compare(const ValidConfig& vc, const Outputs& truth, const Outputs& baseline,
                const Outputs& candidate, Tolerance tol) {
  return compare(vc, truth, std::vector<Outputs>{baseline}, candidate, tol);
}

Verdict check_candidate(const ValidConfig& vc, const Inputs& in, const Outputs& candidate,
                        Precision truth_precision, Tolerance tol) {
  RowSelection sel;
  sel.rows = candidate.rows;
  sel.heads = candidate.heads;
  sel.keep_scores = true;
  const Outputs truth = forward(vc, in, truth_precision, sel);
  const std::vector<Outputs> bases = forward_baselines(vc, in, sel);
  Verdict v = compare(vc, truth, bases, candidate, tol);
  const TensorVerdict* idx = v.find("indices");
  if (!idx || !idx->pass || idx->max_err == 0 || vc.cfg.given_indices) return v;
  // Indices differ only within ties: judge o_slc and o against the reference run with the
  // candidate's own index lists (every row needs one, so rows outside the selection get -1).
  Config cc = vc.cfg;
  cc.profile = "custom";
  cc.given_indices = true;
  cc.index_policy = IndexPolicy::multiset;
  const ValidConfig vk = validate(cc);
  Inputs ik = in;
  const int64_t n = cc.top_n, ng = static_cast<int64_t>(candidate.groups.size());
  ik.indices.assign(static_cast<std::size_t>(vk.total_q * cc.h_kv * n), -1);
  for (std::size_t ri = 0; ri < candidate.rows.size(); ++ri)
    for (int64_t gi = 0; gi < ng; ++gi)
      std::copy_n(candidate.indices.begin() + (static_cast<int64_t>(ri) * ng + gi) * n, n,
                  ik.indices.begin() + (candidate.rows[ri] * cc.h_kv + candidate.groups[gi]) * n);
  sel.keep_scores = false;
  const Outputs truth_k = forward(vk, ik, truth_precision, sel);
  const std::vector<Outputs> bases_k = forward_baselines(vk, ik, sel);
  Verdict vk_verdict = compare(vk, truth_k, bases_k, candidate, tol);
  for (auto& t : v.tensors) {
    if (t.name != "o_slc" && t.name != "o" && t.name != "lse_slc") continue;
    const TensorVerdict* redo = vk_verdict.find(t.name);
    if (!redo) continue;
    t = *redo;
    t.note = (t.note.empty() ? "" : t.note + "; ") + "judged with the candidate's indices";
  }
  return v;
}

}  // namespace nsa::ref
