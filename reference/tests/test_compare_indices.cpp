// The comparator's index rules (docs/tolerance.md, "Indices"), one table row each from both sides:
// well-formedness clause by clause, forced blocks, the tie margin δ (in fp32 ulps whatever the
// case dtype), the echo of given lists, and the re-judging of o_slc, lse_slc and o with the
// candidate's own indices. δ and the re-judged bounds come from judge_oracle.hpp.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <map>

#include "judge_oracle.hpp"
#include "nsa/ref/compare.hpp"
#include "nsa/ref/generate.hpp"

using namespace nsa::ref;
namespace jo = nsa::judge_oracle;

namespace {

// One sequence of 600 keys, l = 32, d = 16, l' = 64, n = 5 (1 initial and 2 local forced
// blocks), G = 2. Row t has ⌊t/64⌋ + 1 candidates: t = 599 has 10 (> n), t = 250 has 4 (< n),
// t = 0 has 1.
Config index_cfg(Dtype dt) {
  Config c;
  c.profile = "custom";
  c.t_k = 600;
  c.h_q = 2;
  c.h_kv = 1;
  c.d_k = 16;
  c.d_v = 16;
  c.top_n = 5;
  c.window = 40;
  c.dtype = dt;
  return c;
}

struct Fixture {
  ValidConfig vc;
  Outputs truth, base;
};

const Fixture& fixture(Dtype dt) {
  static std::map<Dtype, Fixture> cache;
  auto it = cache.find(dt);
  if (it == cache.end()) {
    Fixture f;
    f.vc = validate(index_cfg(dt));
    const auto in = generate_inputs(f.vc, 21);
    f.truth = forward(f.vc, in, Precision::f64);
    f.base = forward(f.vc, in, Precision::baseline);
    it = cache.emplace(dt, std::move(f)).first;
  }
  return it->second;
}

// What one row of the table works on: copies of truth and baseline (a row may set the truth's
// list and scores of its (row, KV head) to make a tie or a gap exact) and the candidate.
struct Work {
  ValidConfig vc;
  Outputs truth, base, cand;
  int32_t* list(Outputs& o, int64_t t) { return o.indices.data() + t * vc.cfg.top_n; }
  double* scores(Outputs& o, int64_t t) { return o.scores.data() + t * o.ns_max; }
  // Sets the truth's (and the candidate's) list of row t.
  void set_truth_list(int64_t t, std::vector<int32_t> l) {
    l.resize(static_cast<std::size_t>(vc.cfg.top_n), -1);
    std::copy(l.begin(), l.end(), list(truth, t));
    std::copy(l.begin(), l.end(), list(cand, t));
  }
  void set_cand_list(int64_t t, std::vector<int32_t> l) {
    l.resize(static_cast<std::size_t>(vc.cfg.top_n), -1);
    std::copy(l.begin(), l.end(), list(cand, t));
  }
  // Truth and baseline score of block j of row t (the baseline exact there).
  void set_score(int64_t t, int32_t j, double s) {
    scores(truth, t)[j] = s;
    scores(base, t)[j] = s;
  }
  double score(int64_t t, int32_t j) { return scores(truth, t)[j]; }
  // δ = α · e_s + β · ulp_fp32(max |scores*|), from this row's truth and baseline scores.
  double delta(const Tolerance& tol) {
    return jo::bound(tol.alpha, tol.beta, jo::baseline_error(base.scores, truth.scores),
                     jo::max_abs_finite(truth.scores), Dtype::f32);
  }
};

const std::vector<Tolerance>& tolerances() {
  static const std::vector<Tolerance> t = {{3.0, 0.5}, {0.0, 5.0}, {1.5, 0.0}};
  return t;
}

// The candidate's swap of truth block `out` for block `in` at row 599, the truth list being
// [0, 1, 7, 8, 9] (forced: 0 initial, 8 and 9 local), with score*(out) − score*(in) = gap.
void swap_with_gap(Work& w, int32_t out, int32_t in, double gap_over_delta_sign,
                   const Tolerance& tol) {
  const int64_t t = 599;
  w.set_truth_list(t, {0, 1, 7, 8, 9});
  const double s_out = w.score(t, out);
  w.set_score(t, in, s_out);  // exact: the baseline error there is 0, δ does not move
  const double d = w.delta(tol);
  double s_in = s_out - d;
  if (gap_over_delta_sign > 0)
    while (!(s_out - s_in > d)) s_in = std::nextafter(s_in, -INFINITY);
  else if (gap_over_delta_sign < 0)
    while (s_out - s_in > d) s_in = std::nextafter(s_in, INFINITY);
  else
    s_in = s_out;  // an exact tie
  w.set_score(t, in, s_in);
  REQUIRE(d == w.delta(tol));
  std::vector<int32_t> l = {0, 1, 7, 8, 9};
  std::replace(l.begin(), l.end(), out, in);
  std::sort(l.begin(), l.end());
  w.set_cand_list(t, l);
}

struct Row {
  const char* rule;
  const char* note;  // phrase of the failing verdict's note
  std::function<void(Work&, const Tolerance&)> bad, good;
  ForcedMode forced = ForcedMode::always;
};

const std::vector<Row>& table() {
  static const std::vector<Row> rows = {
      {"strictly ascending: two entries swapped", "ascending",
       [](Work& w, const Tolerance&) {
         int32_t* l = w.list(w.cand, 599);
         std::swap(l[1], l[2]);
       },
       [](Work&, const Tolerance&) {}},
      {"strictly ascending: a block listed twice", "ascending",
       [](Work& w, const Tolerance&) {
         int32_t* l = w.list(w.cand, 599);
         l[1] = l[0];
       },
       [](Work&, const Tolerance&) {}},
      {"candidates only: block floor(t/l')+1 (t = 250: block 4)", "not a candidate block",
       [](Work& w, const Tolerance&) {
         w.set_cand_list(250, {0, 1, 2, 3, 4});
       },
       [](Work& w, const Tolerance&) {
         w.set_cand_list(250, {0, 1, 2, 3, -1});
       }},
      {"candidates only: a negative entry other than -1", "not a candidate block",
       [](Work& w, const Tolerance&) {
         w.set_cand_list(250, {-2, 0, 1, 2, 3});
       },
       [](Work& w, const Tolerance&) {
         w.set_cand_list(250, {0, 1, 2, 3, -1});
       }},
      {"-1 padding only at the end (t = 250, 4 candidates)", "after -1 padding",
       [](Work& w, const Tolerance&) {
         w.set_cand_list(250, {-1, 0, 1, 2, 3});
       },
       [](Work& w, const Tolerance&) {
         w.set_cand_list(250, {0, 1, 2, 3, -1});
       }},
      {"-1 padding only at the end (t = 599, a full list)", "after -1 padding",
       [](Work& w, const Tolerance&) {
         int32_t* l = w.list(w.cand, 599);
         l[1] = -1;
       },
       [](Work&, const Tolerance&) {}},
      {"exactly min(n, candidates): one too few of n (t = 599)", "4 blocks selected, expected 5",
       [](Work& w, const Tolerance&) {
         int32_t* l = w.list(w.cand, 599);
         std::copy(l + 2, l + 5, l + 1);
         l[4] = -1;
       },
       [](Work&, const Tolerance&) {}},
      {"exactly min(n, candidates): one too few of the candidates (t = 250)",
       "3 blocks selected, expected 4",
       [](Work& w, const Tolerance&) {
         w.set_cand_list(250, {0, 2, 3, -1, -1});
       },
       [](Work& w, const Tolerance&) {
         w.set_cand_list(250, {0, 1, 2, 3, -1});
       }},
      {"exactly min(n, candidates): an empty list (t = 0)", "0 blocks selected, expected 1",
       [](Work& w, const Tolerance&) { w.set_cand_list(0, {-1}); },
       [](Work& w, const Tolerance&) { w.set_cand_list(0, {0}); }},
      {"forced initial block (j < n_init) present, though tied", "forced block 0 missing",
       [](Work& w, const Tolerance& tol) { swap_with_gap(w, 0, 5, 0, tol); },
       [](Work& w, const Tolerance& tol) { swap_with_gap(w, 1, 5, 0, tol); }},
      {"forced local block (floor(t/l') - n_local < j) present, though tied",
       "forced block 8 missing",
       [](Work& w, const Tolerance& tol) { swap_with_gap(w, 8, 5, 0, tol); },
       [](Work& w, const Tolerance& tol) { swap_with_gap(w, 7, 5, 0, tol); }},
      {"the current block present, though tied", "forced block 9 missing",
       [](Work& w, const Tolerance& tol) { swap_with_gap(w, 9, 5, 0, tol); },
       [](Work& w, const Tolerance& tol) { swap_with_gap(w, 7, 5, 0, tol); }},
      {"tie margin: a free block swapped with a truth score gap just over / at delta", "gap",
       [](Work& w, const Tolerance& tol) { swap_with_gap(w, 7, 5, +1, tol); },
       [](Work& w, const Tolerance& tol) { swap_with_gap(w, 7, 5, -1, tol); }},
      {"forced_mode score_one pins nothing: a forced block competes under delta", "gap",
       [](Work& w, const Tolerance& tol) { swap_with_gap(w, 0, 5, +1, tol); },
       [](Work& w, const Tolerance& tol) { swap_with_gap(w, 0, 5, -1, tol); },
       ForcedMode::score_one},
  };
  return rows;
}

}  // namespace

TEST_CASE("compare indices: every clause of the index rule, from both sides") {
  int cases = 0;
  for (Dtype dt : {Dtype::f32, Dtype::f16, Dtype::bf16})
    for (const auto& tol : tolerances())
      for (const auto& r : table()) {
        const auto& f = fixture(dt);
        Config c = f.vc.cfg;
        c.forced_mode = r.forced;
        INFO(to_string(dt) << " alpha " << tol.alpha << " beta " << tol.beta << ": " << r.rule);
        for (bool breaks : {true, false}) {
          Work w{validate(c), f.truth, f.base, f.truth};
          (breaks ? r.bad : r.good)(w, tol);
          const auto v = compare(w.vc, w.truth, w.base, w.cand, tol);
          INFO((breaks ? "breaking" : "inside") << "\n" << v.table());
          const auto* idx = v.find("indices");
          REQUIRE(idx);
          CHECK(idx->checked);
          if (breaks) {
            CHECK_FALSE(idx->pass);
            CHECK_THAT(idx->note, Catch::Matchers::Contains(r.note));
          } else {
            CHECK(idx->pass);
          }
          for (const auto& t : v.tensors)  // the outputs are the truth's: only indices may fail
            if (t.name != "indices") CHECK(t.pass);
          ++cases;
        }
      }
  CHECK(cases == 3 * 3 * static_cast<int>(table().size()) * 2);
}

TEST_CASE("compare indices: the tie margin delta is in fp32 ulps whatever the case dtype") {
  // With beta alone, delta = beta · ulp_fp32(max |scores*|): a comparator using the case's bf16
  // or fp16 ulp would accept a gap 2^16 (2^13) times larger.
  for (Dtype dt : {Dtype::f16, Dtype::bf16}) {
    const auto& f = fixture(dt);
    const Tolerance tol{0.0, 2.0};
    Work w{f.vc, f.truth, f.base, f.truth};
    swap_with_gap(w, 7, 5, +1, tol);
    const double d = w.delta(tol);
    CHECK(d == 2.0 * jo::spacing(jo::max_abs_finite(f.truth.scores), Dtype::f32));
    const auto v = compare(w.vc, w.truth, w.base, w.cand, tol);
    INFO(to_string(dt) << "\n" << v.table());
    CHECK_FALSE(v.find("indices")->pass);
  }
}

TEST_CASE("compare indices: a block swap outside ties fails") {
  Config c = index_cfg(Dtype::f32);
  c.profile = "canonical";
  const auto vc = validate(c);
  const auto in = generate_inputs(vc, 11, Regime::peaked);
  auto truth = forward(vc, in, Precision::f64);
  // Find a (row, group) with a clear positive gap and swap its weakest free block for the best
  // unselected one: the gap is a real score difference, far above delta for f32.
  bool swapped = false;
  const auto n = vc.cfg.top_n;
  for (std::size_t r = 0; r < truth.rows.size() && !swapped; ++r) {
    if (!(truth.score_gap[r] > 1e-2) || std::isinf(truth.score_gap[r])) continue;
    const double* sc = truth.scores.data() + r * truth.ns_max;
    int32_t* idx = truth.indices.data() + r * n;
    const int64_t t = vc.seqs[0].pos(truth.rows[r]), cur = t / vc.cfg.slc_block;
    int best_un = -1, worst_sel = -1;
    for (int64_t j = 0; j <= cur; ++j) {
      const bool sel = std::find(idx, idx + n, j) != idx + n;
      const bool forced = j < vc.cfg.n_init || j > cur - vc.cfg.n_local;
      if (!sel && (best_un < 0 || sc[j] > sc[best_un])) best_un = static_cast<int>(j);
      if (sel && !forced && (worst_sel < 0 || sc[j] < sc[worst_sel]))
        worst_sel = static_cast<int>(j);
    }
    if (best_un < 0 || worst_sel < 0) continue;
    std::replace(idx, idx + n, worst_sel, best_un);
    std::sort(idx, idx + n, [](int32_t a, int32_t b) {
      return (a < 0) < (b < 0) || (a >= 0 && b >= 0 && a < b);
    });
    swapped = true;
  }
  REQUIRE(swapped);
  const auto v = check_candidate(vc, in, truth, Precision::f64);
  CHECK_FALSE(v.find("indices")->pass);
  CHECK(v.find("indices")->note.find("gap") != std::string::npos);
}

TEST_CASE("compare indices: given index lists must be echoed as given") {
  Config c = index_cfg(Dtype::f32);
  c.t_k = 200;
  c.given_indices = true;
  c.index_policy = IndexPolicy::multiset;
  const auto vc = validate(c);
  auto in = generate_inputs(vc, 3);
  in.indices = generate_indices(vc, 3, true);  // duplicates, -1 anywhere, out of range
  const auto truth = forward(vc, in, Precision::f64);
  const auto base = forward(vc, in, Precision::baseline);
  REQUIRE(truth.indices == in.indices);
  CHECK(compare(vc, truth, base, truth).pass());
  auto bad = truth;
  bad.indices[17] = bad.indices[17] == -1 ? 0 : -1;
  const auto v = compare(vc, truth, base, bad);
  CHECK_FALSE(v.find("indices")->pass);
  CHECK(v.find("indices")->worst == 17);
  CHECK_THAT(v.find("indices")->note, Catch::Matchers::Contains("not echoed"));
}

// Where the lists differ within ties, o_slc, lse_slc and o are judged against truth and baseline
// recomputed with the candidate's own lists (given indices, multiset policy). The re-judged bound
// is computed here from those two runs.
TEST_CASE("compare indices: outputs are re-judged with the candidate's own indices") {
  for (Dtype dt : {Dtype::f32, Dtype::bf16}) {
    Config c = index_cfg(dt);
    c.t_k = 400;
    const auto vc = validate(c);
    auto in = generate_inputs(vc, 10);
    // Identical compressed keys make every interior block's score depend only on how many
    // compressed blocks overlap it: exact ties, which the two tie-breaks resolve differently.
    std::fill(in.k[0].begin(), in.k[0].end(), 0.5);
    Config hi = c;
    hi.tie_break = TieBreak::higher_index_first;
    const auto legal = forward(validate(hi), in, Precision::f64);
    const auto truth = forward(vc, in, Precision::f64);
    REQUIRE(legal.indices != truth.indices);
    // The rule's own recomputation: the candidate's lists as given indices.
    Config ck = c;
    ck.given_indices = true;
    ck.index_policy = IndexPolicy::multiset;
    const auto vk = validate(ck);
    Inputs ik = in;
    ik.indices = legal.indices;
    const auto truth_k = forward(vk, ik, Precision::f64);
    const auto bases_k = forward_baselines(vk, ik);  // check_candidate's baseline set
    INFO(to_string(dt));
    {
      const auto v = check_candidate(vc, in, legal, Precision::f64);
      INFO(v.table());
      CHECK(v.pass());
      CHECK(v.find("indices")->max_err > 0);
      CHECK_THAT(v.find("o_slc")->note, Catch::Matchers::Contains("candidate's indices"));
    }
    const Tolerance tol{3.0, 0.5};
    for (const std::string tensor : {"o_slc", "lse_slc", "o"}) {
      INFO(tensor);
      // Outputs of the truth's selection reported with the candidate's lists: wrong.
      Outputs mixed = legal;
      jo::tensor_of(mixed, tensor) = jo::tensor_of(truth, tensor);
      const auto vm = check_candidate(vc, in, mixed, Precision::f64, tol);
      INFO(vm.table());
      CHECK_FALSE(vm.find(tensor)->pass);
      // Margins of the re-judged bound.
      const auto& tk = jo::tensor_of(truth_k, tensor);
      double base_err = 0;
      for (const auto& bk : bases_k)
        base_err = std::max(base_err, jo::baseline_error(jo::tensor_of(bk, tensor), tk));
      const double b = jo::bound(tol.alpha, tol.beta, base_err, jo::max_abs_finite(tk),
                                 jo::ulp_dtype_of(tensor, dt));
      std::size_t i = tk.size() - 1;
      while (!std::isfinite(tk[i])) --i;
      for (bool outside : {true, false}) {
        Outputs cand = truth_k;
        cand.indices = legal.indices;
        jo::tensor_of(cand, tensor)[i] =
            outside ? jo::just_outside(tk[i], b) : jo::just_inside(tk[i], b);
        const auto v = check_candidate(vc, in, cand, Precision::f64, tol);
        INFO((outside ? "outside" : "inside") << " bound " << b << "\n" << v.table());
        CHECK(v.find(tensor)->pass == !outside);
        CHECK(v.find("indices")->pass);
        if (outside) CHECK(v.find(tensor)->worst == static_cast<int64_t>(i));
      }
    }
  }
}
