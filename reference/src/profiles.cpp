// The profile table. A profile fixes every convention knob; "custom" fixes none.
#include "nsa/ref/profiles.hpp"

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

void set_canonical_knobs(Config& c) {
  c.cmp_visibility = CmpVisibility::inclusive;
  c.score_mapping = ScoreMapping::overlap;
  c.group_reduce = GroupReduce::sum;
  c.forced_mode = ForcedMode::always;
  c.tie_break = TieBreak::lower_index_first;
  c.slc_causal = SlcCausal::token;
  c.index_policy = IndexPolicy::strict;
  c.window_keys = WindowKeys::w;
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
         c.n_init = 1;
         c.n_local = 2;
       },
       [](const Config& c) {
         if (c.phi != Phi::mean)
           throw ConfigError("phi", std::string(to_string(c.phi)), "profile fla requires mean");
       }},
      {"nsa_triton",
       [](Config& c) {
         set_canonical_knobs(c);
         c.window_keys = WindowKeys::w_plus_one;
         c.index_policy = IndexPolicy::skip_invalid;
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
       }},
  };
  return table;
}

const Profile* find_profile(const std::string& name) {
  for (const auto& p : profiles())
    if (name == p.name) return &p;
  return nullptr;
}

template <class E> void require_knob(const char* field, E have, E want, const std::string& profile) {
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
  p->check(cfg);
}

}  // namespace nsa::ref
