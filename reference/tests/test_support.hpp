// Shared helpers of the reference's unit tests: small configs, a seeded config sampler that
// reaches every knob value, and element-wise comparisons.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "nsa/ref/config.hpp"
#include "nsa/ref/forward.hpp"
#include "nsa/ref/generate.hpp"
#include "nsa/ref/knobs.hpp"

namespace nsa::test {

// A deterministic stream of choices built on the project's counter-based generator.
class Chooser {
 public:
  explicit Chooser(uint64_t seed) : seed_(seed) {}
  uint64_t bits() { return ref::random_bits(seed_, 4242, counter_++); }
  int64_t in(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(bits() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool coin(int num = 1, int den = 2) { return in(1, den) <= num; }
  template <class E>
  E any() {
    return static_cast<E>(bits() % ref::EnumNames<E>::names.size());
  }

 private:
  uint64_t seed_, counter_ = 0;
};

// A tiny custom-profile config (knobs mixable): one sequence of t_k keys, 1 KV head.
inline ref::Config tiny(int64_t t_k) {
  ref::Config c;
  c.profile = "custom";
  c.t_k = t_k;
  c.h_q = 1;
  c.h_kv = 1;
  c.d_k = 1;
  c.d_v = 1;
  c.cmp_block = 2;
  c.cmp_stride = 1;
  c.slc_block = 2;
  c.top_n = 3;
  c.window = 4;
  c.dtype = ref::Dtype::f64;
  return c;
}

// A small config drawn from `seed`, with every knob, phi, activation, dtype, layout and index
// source chosen at random. Sizes stay small enough for the dense oracle in a Debug build.
ref::Config random_config(uint64_t seed);

// One padded sequence of 60 .. 260 keys, knobs from random_config(seed + 10000), block sizes
// and n drawn so that n stays below the number of candidates (the ranking, not the forced blocks,
// decides the selection).
ref::Config long_config(uint64_t seed);
// One fixed sequence of 160 tokens, long enough that its key count dominates the precision bounds.
ref::Config precision_config();

// A named profile on a small shape: h_q = 4, h_kv = 2, d_k = 6, d_v = 5, T_k = 300 with a query
// suffix of 70 (small dense matrices), w = 40, n = 5, l = 8, d = 4, l' = 16 (fla fixes
// l = d = l' = 64).
ref::Config small_profile(const std::string& name);

// Inputs for a config; for given indices under a lenient policy, half the time an adversarial
// list (duplicates, -1 anywhere, negative, future and out-of-range ids).
ref::Inputs random_inputs(const ref::ValidConfig& vc, uint64_t seed);

inline ref::RowSelection single_thread() {
  ref::RowSelection s;
  s.threads = 1;
  return s;
}

inline double max_abs(const std::vector<double>& x) {
  double m = 0;
  for (double v : x)
    if (std::isfinite(v)) m = std::max(m, std::abs(v));
  return m;
}

// max |a - b| over elements where both are finite; +inf if sizes differ or finiteness differs.
inline double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isfinite(a[i]) != std::isfinite(b[i])) return INFINITY;
    if (!std::isfinite(a[i])) {
      if (a[i] != b[i]) return INFINITY;
      continue;
    }
    m = std::max(m, std::abs(a[i] - b[i]));
  }
  return m;
}

// Whether two forwards differ anywhere in their outputs.
inline bool outputs_differ(const ref::Outputs& a, const ref::Outputs& b) {
  for (int i = 0; i < 3; ++i)
    if (max_diff(a.o_branch[i], b.o_branch[i]) > 0 || max_diff(a.lse[i], b.lse[i]) > 0) return true;
  return max_diff(a.o, b.o) > 0 || max_diff(a.p_cmp, b.p_cmp) > 0 ||
         max_diff(a.scores, b.scores) > 0 || a.indices != b.indices;
}

}  // namespace nsa::test
