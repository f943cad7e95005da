// Arbitrary index lists against a small config (docs/fuzzing.md, target "indices"):
//  - strict: check_indices_strict() throws exactly when an independent oracle finds a bad entry,
//    and its message names the oracle's first bad (sequence, t, kv head, slot, value); the
//    forward rejects the same lists;
//  - every policy: the forward never reads out of bounds (ASan), echoes the list, and its
//    selection output equals a naive long-double attention over the key multiset that the
//    policy defines (skip_invalid: valid entries once; multiset: once per listing);
//  - permutation invariance: the canonicalised list (valid entries sorted, -1 padded) gives
//    the same selection output as the original.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "finding.hpp"
#include "nsa/ref/forward.hpp"
#include "tiny_case.hpp"

namespace {

using namespace nsa::ref;
using nsa::fuzz::ByteReader;

int32_t decode_entry(ByteReader& r) {
  const uint8_t code = r.u8();
  switch (code % 8) {
    case 0:
      return -1;
    case 1:
      return code >> 3;  // 0..31
    case 2:
      return INT32_MIN;
    case 3:
      return INT32_MAX;
    case 4:
      return -2 - (code >> 3);
    default:
      return code % 4;  // small blocks: many duplicates
  }
}

struct Bad {
  int64_t seq = -1, t = 0, g = 0, slot = 0, value = 0;
};

// First entry that breaks the strict rule, in (sequence, query, kv head, slot) order.
Bad first_strict_violation(const ValidConfig& vc, const std::vector<int32_t>& idx) {
  const auto& c = vc.cfg;
  for (std::size_t s = 0; s < vc.seqs.size(); ++s) {
    const auto& seq = vc.seqs[s];
    for (int64_t i = 0; i < seq.t_q; ++i) {
      const int64_t t = seq.pos(i);
      for (int64_t g = 0; g < c.h_kv; ++g) {
        const int32_t* row = idx.data() + ((seq.q_begin + i) * c.h_kv + g) * c.top_n;
        for (int64_t k = 0; k < c.top_n; ++k) {
          const int64_t v = row[k];
          if (v == -1) continue;
          bool bad = v < 0 || v > t / c.slc_block;
          for (int64_t j = 0; j < k && !bad; ++j) bad = row[j] == v;
          if (bad) return {static_cast<int64_t>(s), t, g, k, v};
        }
      }
    }
  }
  return {};
}

// The blocks a list selects for query t under the policy, ascending (duplicates kept for
// multiset).
std::vector<int64_t> selected_blocks(const ValidConfig& vc, const int32_t* row, int64_t t) {
  std::vector<int64_t> out;
  const bool negative_is_first = vc.cfg.index_policy == IndexPolicy::negative_to_zero;
  for (int64_t k = 0; k < vc.cfg.top_n; ++k) {
    const int64_t j = row[k] < 0 && negative_is_first ? 0 : row[k];
    if (j >= 0 && j <= t / vc.cfg.slc_block) out.push_back(j);
  }
  std::sort(out.begin(), out.end());
  if (vc.cfg.index_policy != IndexPolicy::multiset)
    out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

struct Naive {
  std::vector<long double> o;
  long double lse;
};

// Softmax attention of query (row, head h) over the selected blocks' tokens, in long double.
Naive naive_slc(const ValidConfig& vc, const Inputs& in, const Sequence& seq, int64_t row,
                int64_t t, int64_t h, const std::vector<int64_t>& blocks) {
  const auto& c = vc.cfg;
  const int64_t g = h / vc.group;
  const int64_t cap = c.slc_causal == SlcCausal::token ? t + 1 : seq.t_k;
  std::vector<int64_t> keys;
  for (int64_t j : blocks)
    for (int64_t u = j * c.slc_block; u < std::min((j + 1) * c.slc_block, cap); ++u)
      keys.push_back(u);
  Naive r{std::vector<long double>(static_cast<std::size_t>(c.d_v), 0.0L),
          -std::numeric_limits<long double>::infinity()};
  if (keys.empty()) return r;
  const auto& K = in.k[1];
  const auto& V = in.v[1];
  std::vector<long double> z;
  for (int64_t u : keys) {
    long double dot = 0;
    for (int64_t e = 0; e < c.d_k; ++e)
      dot += static_cast<long double>(in.q[(row * c.h_q + h) * c.d_k + e]) *
             static_cast<long double>(K[((seq.k_begin + u) * c.h_kv + g) * c.d_k + e]);
    z.push_back(dot * static_cast<long double>(vc.scale));
  }
  const long double m = *std::max_element(z.begin(), z.end());
  long double sum = 0;
  for (std::size_t k = 0; k < keys.size(); ++k) {
    const long double w = std::exp(z[k] - m);
    sum += w;
    for (int64_t e = 0; e < c.d_v; ++e)
      r.o[static_cast<std::size_t>(e)] +=
          w * static_cast<long double>(V[((seq.k_begin + keys[k]) * c.h_kv + g) * c.d_v + e]);
  }
  for (auto& x : r.o) x /= sum;
  r.lse = m + std::log(sum);
  return r;
}

std::string where(const ValidConfig& vc, int64_t row, int64_t h) {
  return " (row " + std::to_string(row) + ", head " + std::to_string(h) + ", policy " +
         std::string(to_string(vc.cfg.index_policy)) + "; " + describe(vc.cfg) + ")";
}

void check_against_naive(const ValidConfig& vc, const Inputs& in, const Outputs& out) {
  const auto& c = vc.cfg;
  for (const auto& seq : vc.seqs) {
    for (int64_t i = 0; i < seq.t_q; ++i) {
      const int64_t row = seq.q_begin + i, t = seq.pos(i);
      for (int64_t h = 0; h < c.h_q; ++h) {
        const int32_t* list = in.indices.data() + (row * c.h_kv + h / vc.group) * c.top_n;
        const Naive want = naive_slc(vc, in, seq, row, t, h, selected_blocks(vc, list, t));
        const double lse = out.lse[1][row * c.h_q + h];
        if (std::isinf(want.lse)) {
          NSA_FUZZ_EXPECT(std::isinf(lse) && lse < 0,
                          "lse_slc not -inf for an empty key set" + where(vc, row, h));
        } else {
          NSA_FUZZ_EXPECT(
              std::fabs(lse - static_cast<double>(want.lse)) <= 1e-12 * (1.0 + std::fabs(lse)),
              "lse_slc " + std::to_string(lse) + " differs from the oracle's " +
                  std::to_string(static_cast<double>(want.lse)) + where(vc, row, h));
        }
        double vmax = 1.0;
        for (double v : in.v[1]) vmax = std::max(vmax, std::fabs(v));
        for (int64_t e = 0; e < c.d_v; ++e) {
          const double got = out.o_branch[1][(row * c.h_q + h) * c.d_v + e];
          NSA_FUZZ_EXPECT(
              std::fabs(got - static_cast<double>(want.o[static_cast<std::size_t>(e)])) <=
                  1e-12 * vmax,
              "o_slc element " + std::to_string(e) + " = " + std::to_string(got) +
                  " differs from the oracle's " +
                  std::to_string(static_cast<double>(want.o[static_cast<std::size_t>(e)])) +
                  where(vc, row, h));
        }
      }
    }
  }
}

// Valid entries first in ascending order (duplicates kept for multiset), then padding: -1, or
// under negative_to_zero (where -1 reads as block 0) the first block after the candidates,
// which every policy but strict skips.
std::vector<int32_t> canonicalise(const ValidConfig& vc, const std::vector<int32_t>& idx) {
  std::vector<int32_t> out(idx.size(), -1);
  const int64_t n = vc.cfg.top_n;
  for (const auto& seq : vc.seqs)
    for (int64_t i = 0; i < seq.t_q; ++i)
      for (int64_t g = 0; g < vc.cfg.h_kv; ++g) {
        const int64_t base = ((seq.q_begin + i) * vc.cfg.h_kv + g) * n;
        if (vc.cfg.index_policy == IndexPolicy::negative_to_zero)
          std::fill_n(out.begin() + base, n,
                      static_cast<int32_t>(seq.pos(i) / vc.cfg.slc_block + 1));
        const auto blocks = selected_blocks(vc, idx.data() + base, seq.pos(i));
        for (std::size_t k = 0; k < blocks.size(); ++k)
          out[static_cast<std::size_t>(base) + k] = static_cast<int32_t>(blocks[k]);
      }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteReader r(data, size);
  nsa::fuzz::TinyOptions opt;
  opt.given_indices = true;
  opt.force_slc = true;
  const Config cfg = nsa::fuzz::decode_tiny_config(r, opt);
  ValidConfig vc;
  try {
    vc = validate(cfg);
  } catch (const ConfigError& e) {
    nsa::fuzz::finding(std::string("validate() rejected a config that obeys every rule: ") +
                       e.what() + " (" + describe(cfg) + ")");
  }
  const auto regime = static_cast<Regime>(r.range(0, 3));
  Inputs in = generate_inputs(vc, r.u32(), regime);
  for (auto& x : in.indices) x = decode_entry(r);

  // The strict checker against the oracle, whatever the config's own policy.
  const Bad bad = first_strict_violation(vc, in.indices);
  std::string error;
  try {
    check_indices_strict(vc, in.indices);
  } catch (const std::invalid_argument& e) {
    error = e.what();
  }
  if (bad.seq < 0) {
    NSA_FUZZ_EXPECT(error.empty(), "check_indices_strict rejected a valid list: " + error);
  } else {
    const std::string want = "sequence " + std::to_string(bad.seq) + ", t " +
                             std::to_string(bad.t) + ", kv head " + std::to_string(bad.g) +
                             ", slot " + std::to_string(bad.slot) + ": value " +
                             std::to_string(bad.value);
    NSA_FUZZ_EXPECT(!error.empty(), "check_indices_strict accepted a list with a bad entry at " +
                                        want + " (" + describe(vc.cfg) + ")");
    NSA_FUZZ_EXPECT(error.find(want) != std::string::npos,
                    "check_indices_strict message '" + error + "' does not name the first bad " +
                        "entry '" + want + "'");
  }

  RowSelection sel;
  sel.threads = 1;
  if (vc.cfg.index_policy == IndexPolicy::strict && bad.seq >= 0) {
    bool threw = false;
    try {
      (void)forward(vc, in, Precision::f64, sel);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    NSA_FUZZ_EXPECT(threw,
                    "forward accepted an invalid strict index list (" + describe(vc.cfg) + ")");
    return 0;
  }

  const Outputs out = forward(vc, in, Precision::f64, sel);
  NSA_FUZZ_EXPECT(out.indices == in.indices, "forward did not echo the given index list");
  check_against_naive(vc, in, out);

  Inputs canon = in;
  canon.indices = canonicalise(vc, in.indices);
  const Outputs out_c = forward(vc, canon, Precision::f64, sel);
  double vmax = 1.0;
  for (double v : in.v[1]) vmax = std::max(vmax, std::fabs(v));
  for (std::size_t i = 0; i < out.o_branch[1].size(); ++i)
    NSA_FUZZ_EXPECT(std::fabs(out.o_branch[1][i] - out_c.o_branch[1][i]) <= 1e-12 * vmax,
                    "o_slc changed when the index list was canonicalised (element " +
                        std::to_string(i) + "; " + describe(vc.cfg) + ")");
  return 0;
}
