// The profile table. A profile fixes every convention knob; "custom" fixes none.
#include "nsa/ref/profiles.hpp"

#include <cmath>
#include <functional>

namespace nsa::ref {
namespace {

struct Profile {
  const char* name;
  // Sets the knobs (and, where the profile fixes them, phi and block sizes) on a config.
  std::function<void(Config&)> apply;
  // Extra constraints beyond knob equality; throws ConfigError.
  std::function<void(const Config&)> check;
};

bool power_of_two(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

// Neither peer passes a softmax scale to its window call (FlashAttention then uses 1/sqrt(d)),
// so a profile that reproduces one accepts only the default scale.
void require_default_scale(const Config& c) {
  if (!c.scale || c.d_k < 1) return;
  const double want = 1.0 / std::sqrt(static_cast<double>(c.d_k));
  if (*c.scale != want)
    throw ConfigError("scale", std::to_string(*c.scale),
                      "profile " + c.profile +
                          " requires the default 1/sqrt(d_k) = " + std::to_string(want) +
                          " (its window branch calls FlashAttention without a scale)");
}

void set_canonical_knobs(Config& c) {
  c.cmp_visibility = CmpVisibility::inclusive;
  c.score_mapping = ScoreMapping::overlap;
  c.group_reduce = GroupReduce::sum;
  c.forced_mode = ForcedMode::always;
  c.tie_break = TieBreak::lower_index_first;
  c.slc_causal = SlcCausal::token;
  c.index_policy = IndexPolicy::strict;
  c.window_keys = WindowKeys::w;
  // topn_rounding is left alone: fla's two entry points differ only there (see validate_profile).
}

const std::vector<Profile>& profiles() {
  static const std::vector<Profile> table = {
      {"canonical",
       [](Config& c) {
         set_canonical_knobs(c);
         c.n_init = 1;
         c.n_local = 2;
       },
       [](const Config&) {}},
      {"fla",
       [](Config& c) {
         set_canonical_knobs(c);
         c.score_mapping = ScoreMapping::identity;
         c.forced_mode = ForcedMode::score_one;
         c.group_reduce = GroupReduce::mean;
         c.index_policy = IndexPolicy::multiset;
         c.phi = Phi::mean;
         c.phi_hidden = 0;
         c.cmp_block = c.cmp_stride = c.slc_block = 64;
         c.h_q = 16 * c.h_kv;  // fla's smallest group size (keys of a config file override it)
         c.n_init = 1;
         c.n_local = 2;
       },
       [](const Config& c) {
         if (c.phi != Phi::mean)
           throw ConfigError("phi", std::string(to_string(c.phi)), "profile fla requires mean");
         // fla/ops/nsa/parallel.py (parallel_nsa, naive_nsa): the group size is a Triton tile
         // dimension, a power of two >= 16.
         if (c.h_kv >= 1 && c.h_q % c.h_kv == 0) {
           const int64_t g = c.h_q / c.h_kv;
           if (g < 16 || !power_of_two(g))
             throw ConfigError("h_q", std::to_string(c.h_q),
                               "profile fla requires G = h_q / h_kv a power of two >= 16 (G = " +
                                   std::to_string(g) + ")");
         }
         // block_size is a Triton block shape (a power of two >= 16) and the top-k kernel needs
         // block_size >= 2 * next_power_of_2(n) (parallel_nsa_topk's assert).
         if (!power_of_two(c.slc_block) || c.slc_block < 16)
           throw ConfigError("slc_block", std::to_string(c.slc_block),
                             "profile fla requires l = d = l' a power of two >= 16");
         int64_t n_pow2 = 1;
         while (n_pow2 < c.top_n && n_pow2 < (int64_t{1} << 40)) n_pow2 *= 2;
         if (c.slc_block < 2 * n_pow2)
           throw ConfigError(
               "top_n", std::to_string(c.top_n),
               "profile fla requires l' >= 2 * next_power_of_2(n) = " + std::to_string(2 * n_pow2) +
                   " (l' = " + std::to_string(c.slc_block) + ")");
         require_default_scale(c);
       }},
      {"nsa_triton",
       [](Config& c) {
         set_canonical_knobs(c);
         c.window_keys = WindowKeys::w_plus_one;
         c.index_policy = IndexPolicy::negative_to_zero;
         if (c.phi == Phi::mlp) {
           c.phi = Phi::mean;
           c.phi_hidden = 0;
         }
         c.n_init = 1;
         c.n_local = 2;
       },
       [](const Config& c) {
         if (c.phi == Phi::mlp)
           throw ConfigError("phi", "mlp", "profile nsa_triton allows mean|linear");
         // ops/triton/*compress*.py: kernel_size in {16, 32, 64, 128}; the selection block is
         // a whole number of compression kernels.
         if (c.cmp_block != 16 && c.cmp_block != 32 && c.cmp_block != 64 && c.cmp_block != 128)
           throw ConfigError("cmp_block", std::to_string(c.cmp_block),
                             "profile nsa_triton requires l in {16, 32, 64, 128}");
         if (c.cmp_block >= 1 && c.slc_block % c.cmp_block != 0)
           throw ConfigError(
               "slc_block", std::to_string(c.slc_block),
               "profile nsa_triton requires l' % l == 0 (l = " + std::to_string(c.cmp_block) + ")");
         require_default_scale(c);
       }},
  };
  return table;
}

const Profile* find_profile(const std::string& name) {
  for (const auto& p : profiles())
    if (name == p.name) return &p;
  return nullptr;
}

template <class E>
void require_knob(const char* field, E have, E want, const std::string& profile) {
  if (have != want)
    throw ConfigError(field, std::string(to_string(have)),
                      "profile " + profile + " requires " + std::string(to_string(want)) +
                          " (set profile to custom to mix knobs)");
}

}  // namespace

std::vector<std::string> profile_names() {
  std::vector<std::string> names;
  for (const auto& p : profiles()) names.emplace_back(p.name);
  names.emplace_back("custom");
  return names;
}

void apply_profile(Config& cfg, const std::string& name) {
  cfg.profile = name;
  if (name == "custom") return;
  const Profile* p = find_profile(name);
  if (!p)
    throw ConfigError("profile", name, "unknown profile (one of canonical|fla|nsa_triton|custom)");
  p->apply(cfg);
}

Config profile_config(const std::string& name) {
  Config cfg;
  apply_profile(cfg, name);
  return cfg;
}

void validate_profile(const Config& cfg) {
  if (cfg.profile == "custom") return;
  const Profile* p = find_profile(cfg.profile);
  if (!p)
    throw ConfigError("profile", cfg.profile,
                      "unknown profile (one of canonical|fla|nsa_triton|custom)");
  Config want = cfg;
  p->apply(want);
  const auto& n = cfg.profile;
  require_knob("cmp_visibility", cfg.cmp_visibility, want.cmp_visibility, n);
  require_knob("score_mapping", cfg.score_mapping, want.score_mapping, n);
  require_knob("group_reduce", cfg.group_reduce, want.group_reduce, n);
  require_knob("forced_mode", cfg.forced_mode, want.forced_mode, n);
  require_knob("tie_break", cfg.tie_break, want.tie_break, n);
  require_knob("slc_causal", cfg.slc_causal, want.slc_causal, n);
  require_knob("index_policy", cfg.index_policy, want.index_policy, n);
  require_knob("window_keys", cfg.window_keys, want.window_keys, n);
  // fla's naive_nsa (and parallel_nsa given a tensor of block counts) keeps exactly n blocks;
  // parallel_nsa given an integer keeps next_power_of_2(n): its profile admits both. The other
  // profiles' code keeps exactly n.
  if (n != "fla") require_knob("topn_rounding", cfg.topn_rounding, TopnRounding::none, n);
  p->check(cfg);
}

}  // namespace nsa::ref
