// Invariants of the reference forward (f64) on fuzz-decoded tiny configs and inputs
// (docs/fuzzing.md, target "reference"):
//  - finite inputs give finite outputs; an empty key set gives exactly o = 0 and lse = -inf,
//    and so does a disabled branch;
//  - p_cmp rows are softmax weights: >= 0, summing to 1 over the visible blocks, 0 beyond;
//  - computed index lists are valid: ascending, distinct candidates, -1 padding at the end only,
//    min(n, candidates) entries, forced blocks present (forced_mode always), and the free blocks
//    are the best-scored ones under the tie rule (checked against the returned scores);
//  - causality and sequence isolation: changing K/V at and after a cut point of one sequence
//    leaves every row that cannot see the cut bit-identical;
//  - the backward (docs/semantics.md, "Backward"): finite gradients for finite inputs and dO;
//    exactly 0 for a disabled branch, for a row whose key sets are all empty (dq, dg), and for
//    keys after the last position any query of their sequence reaches.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "finding.hpp"
#include "nsa/ref/backward.hpp"
#include "nsa/ref/forward.hpp"
#include "nsa/ref/generate.hpp"
#include "tiny_case.hpp"

namespace {

using namespace nsa::ref;
using nsa::fuzz::ByteReader;

std::string at(const ValidConfig& vc, int64_t row, const std::string& what) {
  return what + " (row " + std::to_string(row) + "; " + describe(vc.cfg) + ")";
}

int64_t visible(const ValidConfig& vc, int64_t t) {
  const int64_t reach = vc.cfg.cmp_visibility == CmpVisibility::inclusive ? t + 1 : t;
  return vc.num_cmp_blocks(reach);
}

// Row r of the packed queries: its sequence and position.
struct RowPos {
  int64_t seq, t;
};
std::vector<RowPos> row_positions(const ValidConfig& vc) {
  std::vector<RowPos> out(static_cast<std::size_t>(vc.total_q));
  for (std::size_t s = 0; s < vc.seqs.size(); ++s)
    for (int64_t i = 0; i < vc.seqs[s].t_q; ++i)
      out[static_cast<std::size_t>(vc.seqs[s].q_begin + i)] = {static_cast<int64_t>(s),
                                                               vc.seqs[s].pos(i)};
  return out;
}

// r is a packed query row (every row is computed, so output row r is query row r).
void check_branch_outputs(const ValidConfig& vc, const Inputs& in, const Outputs& out, int64_t r,
                          int64_t t) {
  const auto& c = vc.cfg;
  const int64_t nh = c.h_q;
  for (Branch b : kAllBranches) {
    const int bi = static_cast<int>(b);
    // Whether the branch's key set for this row is empty (or the branch is off).
    bool empty = !c.enabled(b);
    if (b == Branch::cmp && c.enable_cmp) empty = visible(vc, t) == 0;
    for (int64_t h = 0; h < nh; ++h) {
      const double lse = out.lse[bi][r * nh + h];
      // A given list selects nothing when none of its entries is a candidate block.
      bool slc_empty = false;
      if (b == Branch::slc && c.enable_slc && c.given_indices) {
        const int32_t* idx = in.indices.data() + (r * c.h_kv + h / vc.group) * c.top_n;
        slc_empty = true;
        for (int64_t s = 0; s < c.top_n; ++s)
          if (idx[s] >= 0 && idx[s] <= t / c.slc_block) slc_empty = false;
      }
      for (int64_t e = 0; e < c.d_v; ++e) {
        const double o = out.o_branch[bi][(r * nh + h) * c.d_v + e];
        if (empty || slc_empty) {
          NSA_FUZZ_EXPECT(o == 0.0, at(vc, r,
                                       "o_" + std::string(to_string(b)) +
                                           " not exactly 0 for an empty/disabled branch"));
        } else {
          NSA_FUZZ_EXPECT(std::isfinite(o),
                          at(vc, r, "o_" + std::string(to_string(b)) + " not finite"));
        }
      }
      if (empty) {
        NSA_FUZZ_EXPECT(std::isinf(lse) && lse < 0,
                        at(vc, r, "lse_" + std::string(to_string(b)) + " not -inf when empty"));
      } else if (!slc_empty) {
        NSA_FUZZ_EXPECT(std::isfinite(lse),
                        at(vc, r, "lse_" + std::string(to_string(b)) + " not finite"));
      }
    }
  }
  for (int64_t i = 0; i < nh * c.d_v; ++i)
    NSA_FUZZ_EXPECT(std::isfinite(out.o[r * nh * c.d_v + i]), at(vc, r, "o not finite"));
}

void check_p_cmp(const ValidConfig& vc, const Outputs& out, int64_t r, int64_t t) {
  const auto& c = vc.cfg;
  const bool computed = c.enable_cmp || (c.enable_slc && !c.given_indices);
  const int64_t vis = computed ? visible(vc, t) : 0;
  for (int64_t h = 0; h < c.h_q; ++h) {
    const double* p = out.p_cmp.data() + (r * c.h_q + h) * out.nc_max;
    double sum = 0;
    for (int64_t i = 0; i < out.nc_max; ++i) {
      if (i < vis) {
        NSA_FUZZ_EXPECT(p[i] >= 0 && p[i] <= 1, at(vc, r, "p_cmp entry outside [0, 1]"));
        sum += p[i];
      } else {
        NSA_FUZZ_EXPECT(p[i] == 0, at(vc, r, "p_cmp nonzero beyond the visible blocks"));
      }
    }
    if (vis > 0)
      NSA_FUZZ_EXPECT(std::fabs(sum - 1.0) <= 1e-12 * static_cast<double>(vis + 1),
                      at(vc, r, "p_cmp row sums to " + std::to_string(sum) + ", not 1"));
  }
}

void check_indices(const ValidConfig& vc, const Outputs& out, int64_t r, int64_t t) {
  const auto& c = vc.cfg;
  if (!c.enable_slc || c.given_indices) return;
  const int64_t n_cand = t / c.slc_block + 1, cur = t / c.slc_block, n = c.top_n;
  for (int64_t g = 0; g < c.h_kv; ++g) {
    const int32_t* idx = out.indices.data() + (r * c.h_kv + g) * n;
    const double* score = out.scores.data() + (r * c.h_kv + g) * out.ns_max;
    const int64_t want = std::min(n, n_cand);
    std::vector<char> chosen(static_cast<std::size_t>(n_cand), 0);
    for (int64_t s = 0; s < n; ++s) {
      if (s < want) {
        NSA_FUZZ_EXPECT(idx[s] >= 0 && idx[s] < n_cand, at(vc, r, "index not a candidate"));
        NSA_FUZZ_EXPECT(s == 0 || idx[s] > idx[s - 1], at(vc, r, "indices not ascending/distinct"));
        chosen[static_cast<std::size_t>(idx[s])] = 1;
      } else {
        NSA_FUZZ_EXPECT(idx[s] == -1, at(vc, r, "index list not -1 padded after its entries"));
      }
    }
    for (int64_t j = 0; j < out.ns_max; ++j)
      NSA_FUZZ_EXPECT(
          j < n_cand ? std::isfinite(score[j]) : (std::isinf(score[j]) && score[j] < 0),
          at(vc, r, "selection score finite/-inf rule broken at block " + std::to_string(j)));
    auto forced = [&](int64_t j) { return j < c.n_init || j > cur - c.n_local; };
    const bool always = c.forced_mode == ForcedMode::always;
    if (always)
      for (int64_t j = 0; j < n_cand; ++j)
        NSA_FUZZ_EXPECT(!forced(j) || chosen[static_cast<std::size_t>(j)],
                        at(vc, r, "forced block " + std::to_string(j) + " not selected"));
    // Top-n optimality: no unchosen free candidate beats a chosen free one.
    const bool lower_first = c.tie_break == TieBreak::lower_index_first;
    for (int64_t a = 0; a < n_cand; ++a) {
      if (!chosen[static_cast<std::size_t>(a)] || (always && forced(a))) continue;
      for (int64_t b = 0; b < n_cand; ++b) {
        if (chosen[static_cast<std::size_t>(b)] || (always && forced(b))) continue;
        const bool a_wins =
            score[a] > score[b] || (score[a] == score[b] && (lower_first ? a < b : a > b));
        NSA_FUZZ_EXPECT(a_wins, at(vc, r,
                                   "block " + std::to_string(b) + " outranks selected block " +
                                       std::to_string(a)));
      }
    }
  }
}

// Replaces K/V of sequence s at key positions >= cut (every branch) by other representable values.
void perturb_after(const ValidConfig& vc, Inputs& in, int64_t s, int64_t cut) {
  const auto& c = vc.cfg;
  const auto& seq = vc.seqs[static_cast<std::size_t>(s)];
  auto change = [&](std::vector<double>& x, int64_t dim) {
    if (x.empty()) return;
    for (int64_t u = cut; u < seq.t_k; ++u)
      for (int64_t e = 0; e < c.h_kv * dim; ++e) {
        double& v = x[static_cast<std::size_t>((seq.k_begin + u) * c.h_kv * dim + e)];
        v = round_to(v == 0 ? 0.75 : -v * 0.5 + 0.25, c.dtype);
      }
  };
  for (int b = 0; b < 3; ++b) {
    change(in.k[b], c.d_k);
    change(in.v[b], c.d_v);
  }
}

bool same_row(const ValidConfig& vc, const Outputs& a, const Outputs& b, int64_t r) {
  const auto& c = vc.cfg;
  auto eq = [&](const std::vector<double>& x, const std::vector<double>& y, int64_t width) {
    for (int64_t i = r * width; i < (r + 1) * width; ++i)
      if (!(x[i] == y[i] || (std::isnan(x[i]) && std::isnan(y[i])))) return false;
    return true;
  };
  for (int bi = 0; bi < 3; ++bi)
    if (!eq(a.o_branch[bi], b.o_branch[bi], c.h_q * c.d_v) || !eq(a.lse[bi], b.lse[bi], c.h_q))
      return false;
  if (!eq(a.o, b.o, c.h_q * c.d_v)) return false;
  for (int64_t i = r * c.h_kv * c.top_n; i < (r + 1) * c.h_kv * c.top_n; ++i)
    if (a.indices[i] != b.indices[i]) return false;
  return true;
}

// Whether every enabled branch of row r (position t) attends an empty key set, read off the
// forward's lse (-inf exactly when the key set is empty) for every head.
bool all_empty(const ValidConfig& vc, const Outputs& out, int64_t r) {
  for (Branch b : kAllBranches) {
    if (!vc.cfg.enabled(b)) continue;
    for (int64_t h = 0; h < vc.cfg.h_q; ++h)
      if (std::isfinite(out.lse[static_cast<int>(b)][r * vc.cfg.h_q + h])) return false;
  }
  return true;
}

void check_backward(const ValidConfig& vc, const Inputs& in, const Outputs& out, uint64_t seed) {
  const auto& c = vc.cfg;
  const auto d_o = generate_grad_output(vc, seed);
  GradSelection gsel;
  gsel.threads = 1;
  const Gradients g = backward(vc, in, d_o, Precision::f64, gsel);
  for (const auto& name : grad_tensor_names(vc))
    for (double x : grad_tensor(vc, g, name))
      NSA_FUZZ_EXPECT(std::isfinite(x), "gradient " + name + " not finite (" + describe(c) + ")");
  for (Branch b : kAllBranches) {
    if (c.enabled(b)) continue;
    const int i = static_cast<int>(b);
    for (const auto* t : {&g.dk[i], &g.dv[i], &g.dg[i]})
      for (double x : *t)
        NSA_FUZZ_EXPECT(x == 0.0,
                        "a disabled branch's gradient not exactly 0 (" + describe(c) + ")");
  }
  for (int64_t row = 0; row < vc.total_q; ++row) {
    if (!all_empty(vc, out, row)) continue;
    for (int64_t i = 0; i < c.h_q * c.d_k; ++i)
      NSA_FUZZ_EXPECT(g.dq[row * c.h_q * c.d_k + i] == 0.0,
                      at(vc, row, "dq not exactly 0 for a row with empty key sets"));
    for (int b = 0; b < 3; ++b)
      for (int64_t h = 0; h < c.h_q; ++h)
        NSA_FUZZ_EXPECT(g.dg[b][row * c.h_q + h] == 0.0,
                        at(vc, row, "dg not exactly 0 for a row with empty key sets"));
  }
  // Keys no query of their sequence reaches.
  for (std::size_t s = 0; s < vc.seqs.size(); ++s) {
    const auto& seq = vc.seqs[s];
    int64_t reach = -1;
    for (int64_t i = 0; i < seq.t_q; ++i) {
      const int64_t t = seq.pos(i);
      reach = std::max(reach, c.enable_slc && c.slc_causal == SlcCausal::none
                                  ? std::min((t / c.slc_block + 1) * c.slc_block, seq.t_k) - 1
                                  : t);
    }
    for (int64_t u = reach + 1; u < seq.t_k; ++u)
      for (int b = 0; b < 3; ++b) {
        for (int64_t e = 0; e < c.h_kv * c.d_k; ++e)
          NSA_FUZZ_EXPECT(
              g.dk[b][(seq.k_begin + u) * c.h_kv * c.d_k + e] == 0.0,
              "dK of a key after every query's reach not exactly 0 (" + describe(c) + ")");
        for (int64_t e = 0; e < c.h_kv * c.d_v; ++e)
          NSA_FUZZ_EXPECT(
              g.dv[b][(seq.k_begin + u) * c.h_kv * c.d_v + e] == 0.0,
              "dV of a key after every query's reach not exactly 0 (" + describe(c) + ")");
      }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteReader r(data, size);
  nsa::fuzz::TinyOptions opt;
  opt.given_indices = r.flag();
  Config cfg = nsa::fuzz::decode_tiny_config(r, opt);
  if (cfg.given_indices) cfg.index_policy = IndexPolicy::strict;  // generator gives valid lists
  ValidConfig vc;
  try {
    vc = validate(cfg);
  } catch (const ConfigError& e) {
    nsa::fuzz::finding(std::string("validate() rejected a config that obeys every rule: ") +
                       e.what() + " (" + describe(cfg) + ")");
  }
  const int64_t cut_seq = r.range(0, static_cast<int64_t>(vc.seqs.size()) - 1);
  const int64_t cut = r.range(0, vc.seqs[static_cast<std::size_t>(cut_seq)].t_k);
  const auto grad_seed = static_cast<uint64_t>(r.range(0, 1 << 20));
  Inputs in = nsa::fuzz::decode_inputs(r, vc, 8);

  RowSelection sel;
  sel.threads = 1;
  const Outputs out = forward(vc, in, Precision::f64, sel);
  const auto pos = row_positions(vc);
  for (int64_t row = 0; row < vc.total_q; ++row) {
    const int64_t t = pos[static_cast<std::size_t>(row)].t;
    check_branch_outputs(vc, in, out, row, t);
    check_p_cmp(vc, out, row, t);
    check_indices(vc, out, row, t);
  }
  check_backward(vc, in, out, grad_seed);

  perturb_after(vc, in, cut_seq, cut);
  const Outputs out2 = forward(vc, in, Precision::f64, sel);
  for (int64_t row = 0; row < vc.total_q; ++row) {
    const auto [s, t] = pos[static_cast<std::size_t>(row)];
    const auto& seq = vc.seqs[static_cast<std::size_t>(s)];
    // The last key row t can reach: t itself, or the end of its selection block (slc_causal none).
    int64_t reach = t;
    if (vc.cfg.enable_slc && vc.cfg.slc_causal == SlcCausal::none)
      reach = std::min((t / vc.cfg.slc_block + 1) * vc.cfg.slc_block, seq.t_k) - 1;
    if (s != cut_seq || reach < cut)
      NSA_FUZZ_EXPECT(same_row(vc, out, out2, row),
                      at(vc, row,
                         "output changed when keys after position " + std::to_string(cut) +
                             " of sequence " + std::to_string(cut_seq) + " changed (causality)"));
  }
  return 0;
}
