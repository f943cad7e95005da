// RapidCheck generators of valid NSA problems. Every generator builds a configuration that
// passes nsa::ref::validate() by construction (no suchThat filtering), so shrinking only ever
// visits valid cases and ends at a small readable one.
#pragma once

#include <rapidcheck.h>

#include <cstdint>
#include <iosfwd>

#include "nsa/ref/config.hpp"
#include "nsa/ref/generate.hpp"

namespace nsa::props {

// One generated case: a valid config, the input seed of nsa::ref::generate_inputs and its value
// regime. A property is a pure function of a Case (its own extra choices come from the seed), so
// config + seed + regime reproduce a failure exactly.
struct Case {
  nsa::ref::Config cfg;
  uint64_t seed = 0;
  nsa::ref::Regime regime = nsa::ref::Regime::typical;
};

void showValue(const Case& c, std::ostream& os);

// Limits of the general generator; keep them small so that a case costs milliseconds on a CPU.
struct GenOptions {
  int64_t max_tokens = 128;          // keys per sequence (fewer for large head counts)
  int64_t max_group = 64;            // G = h_q / h_kv is drawn from {1, 2, 3, 4, 8, .., max_group}
  bool allow_given_indices = false;  // the selection branch may read a given index list
  bool allow_profiles = true;        // canonical/fla/nsa_triton besides custom
  bool allow_scale = true;           // an explicit softmax scale now and then
};

// The general generator: layout (padded with a query suffix, or varlen with empty sequences),
// lengths weighted toward block boundaries and T < l, heads and G, head dims, block sizes with
// l % d == 0 and l' % d == 0 (identity mapping only with l = d = l'), n from n_init + n_local to
// beyond the block count, w, dtype, phi (mean/linear/mlp + activation), branch subsets, shared
// K/V, and every knob: profile "custom" mixes knobs freely, the named profiles go through
// nsa::ref::apply_profile.
rc::Gen<Case> gen_case(GenOptions opt = {});

// Draws that do not depend on earlier choices: a shrinking step changes one draw and leaves
// the others' values in place (a generator whose range depended on, say, l would draw another
// value once l shrinks, and most shrinks would then lose the failure).
struct LengthDraw {
  int kind = 0;       // selection boundary, compression boundary, < l, uniform, empty
  int64_t delta = 0;  // -1, 0, +1 around a boundary
  double f = 0;       // position in the range, in [0, 1)
};
double draw_fraction();
LengthDraw draw_length();
// The length a draw means for blocks (l, d, l') and a cap: weighted toward block boundaries
// (k*l' - 1, k*l', k*l' + 1, l - 1 + k*d, ...) and lengths shorter than l.
int64_t length_of(const LengthDraw& d, int64_t l, int64_t stride, int64_t l_sel, int64_t cap);
// lo + floor(f * (hi - lo + 1)), clipped to [lo, hi].
int64_t scale_to(double f, int64_t lo, int64_t hi);

// Turns the case into profile "custom" (keeping its knobs) so that a property may change knobs.
void make_custom(nsa::ref::Config& cfg);

}  // namespace nsa::props
