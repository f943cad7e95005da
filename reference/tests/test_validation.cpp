// Every rule of validate() (config.cpp, profiles.cpp) as one table row: a mutation of a valid
// config, the field ConfigError must name, the offending value, and a phrase of the rule.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>

#include "nsa/ref/config.hpp"
#include "nsa/ref/profiles.hpp"

using namespace nsa::ref;

namespace {

struct Rule {
  const char* what;
  std::function<void(Config&)> mutate;
  std::string field, value, rule;
};

Config base() {
  Config c;
  c.t_k = 100;
  return c;
}

void varlen(Config& c, std::vector<int64_t> k, std::vector<int64_t> q = {}) {
  c.layout = Layout::varlen;
  c.t_k = 0;
  c.t_q = -1;
  c.cu_seqlens_k = std::move(k);
  c.cu_seqlens_q = std::move(q);
}

const std::vector<Rule>& rules() {
  static const std::vector<Rule> table = {
      // --- profiles --------------------------------------------------------------------------
      {"unknown profile", [](Config& c) { c.profile = "flash"; }, "profile", "flash",
       "unknown profile"},
      {"canonical fixes cmp_visibility",
       [](Config& c) { c.cmp_visibility = CmpVisibility::strict; }, "cmp_visibility", "strict",
       "profile canonical requires inclusive"},
      {"canonical fixes score_mapping",
       [](Config& c) { c.score_mapping = ScoreMapping::paper_eq9; }, "score_mapping", "paper_eq9",
       "profile canonical requires overlap"},
      {"canonical fixes group_reduce", [](Config& c) { c.group_reduce = GroupReduce::mean; },
       "group_reduce", "mean", "profile canonical requires sum"},
      {"canonical fixes forced_mode", [](Config& c) { c.forced_mode = ForcedMode::score_one; },
       "forced_mode", "score_one", "profile canonical requires always"},
      {"canonical fixes tie_break", [](Config& c) { c.tie_break = TieBreak::higher_index_first; },
       "tie_break", "higher_index_first", "profile canonical requires lower_index_first"},
      {"canonical fixes slc_causal", [](Config& c) { c.slc_causal = SlcCausal::none; },
       "slc_causal", "none", "profile canonical requires token"},
      {"canonical fixes index_policy", [](Config& c) { c.index_policy = IndexPolicy::multiset; },
       "index_policy", "multiset", "profile canonical requires strict"},
      {"canonical fixes window_keys", [](Config& c) { c.window_keys = WindowKeys::w_plus_one; },
       "window_keys", "w_plus_one", "profile canonical requires w"},
      {"fla knob",
       [](Config& c) {
         apply_profile(c, "fla");
         c.window_keys = WindowKeys::w_plus_one;
       },
       "window_keys", "w_plus_one", "profile fla requires w"},
      {"fla needs mean phi",
       [](Config& c) {
         apply_profile(c, "fla");
         c.phi = Phi::linear;
       },
       "phi", "linear", "profile fla requires mean"},
      {"nsa_triton knob",
       [](Config& c) {
         apply_profile(c, "nsa_triton");
         c.index_policy = IndexPolicy::strict;
       },
       "index_policy", "strict", "profile nsa_triton requires negative_to_zero"},
      {"fla group size below 16",
       [](Config& c) {
         apply_profile(c, "fla");
         c.h_q = 8;
       },
       "h_q", "8", "G = h_q / h_kv a power of two >= 16 (G = 8)"},
      {"fla group size not a power of two",
       [](Config& c) {
         apply_profile(c, "fla");
         c.h_q = 24;
       },
       "h_q", "24", "(G = 24)"},
      {"fla block not a power of two",
       [](Config& c) {
         apply_profile(c, "fla");
         c.h_q = 16;
         c.cmp_block = c.cmp_stride = c.slc_block = 48;
       },
       "slc_block", "48", "a power of two >= 16"},
      {"fla block below 16",
       [](Config& c) {
         apply_profile(c, "fla");
         c.h_q = 16;
         c.cmp_block = c.cmp_stride = c.slc_block = 8;
         c.top_n = 3;
       },
       "slc_block", "8", "a power of two >= 16"},
      {"fla top_n beyond the top-k tile",
       [](Config& c) {
         apply_profile(c, "fla");
         c.h_q = 16;
         c.cmp_block = c.cmp_stride = c.slc_block = 16;
         c.top_n = 9;  // next power of two 16, 2 * 16 > 16
       },
       "top_n", "9", "l' >= 2 * next_power_of_2(n) = 32"},
      {"fla non-default scale",
       [](Config& c) {
         apply_profile(c, "fla");
         c.h_q = 16;
         c.scale = 0.5;
       },
       "scale", "0.500000", "requires the default 1/sqrt(d_k)"},
      {"nsa_triton kernel size",
       [](Config& c) {
         apply_profile(c, "nsa_triton");
         c.cmp_block = 8;
         c.cmp_stride = 4;
         c.slc_block = 16;
       },
       "cmp_block", "8", "l in {16, 32, 64, 128}"},
      {"nsa_triton selection block not a multiple of l",
       [](Config& c) {
         apply_profile(c, "nsa_triton");
         c.cmp_block = 32;
         c.cmp_stride = 16;
         c.slc_block = 48;
       },
       "slc_block", "48", "l' % l == 0 (l = 32)"},
      {"nsa_triton non-default scale",
       [](Config& c) {
         apply_profile(c, "nsa_triton");
         c.scale = 0.5;  // d_k = 16: the default is 0.25
       },
       "scale", "0.500000", "requires the default 1/sqrt(d_k)"},
      {"nsa_triton forbids mlp",
       [](Config& c) {
         apply_profile(c, "nsa_triton");
         c.phi = Phi::mlp;
         c.phi_hidden = 4;
       },
       "phi", "mlp", "allows mean|linear"},
      // --- heads and scale -------------------------------------------------------------------
      {"h_q below range", [](Config& c) { c.h_q = 0; }, "h_q", "0", "must be in [1, 4096]"},
      {"h_q above range", [](Config& c) { c.h_q = 4097; }, "h_q", "4097", "must be in [1, 4096]"},
      {"h_kv below range", [](Config& c) { c.h_kv = 0; }, "h_kv", "0", "must be in [1, 4096]"},
      {"h_q not a multiple of h_kv",
       [](Config& c) {
         c.h_q = 6;
         c.h_kv = 4;
       },
       "h_q", "6", "must be a multiple of h_kv = 4"},
      {"d_k below range", [](Config& c) { c.d_k = 0; }, "d_k", "0", "must be in [1, 1024]"},
      {"d_k above range", [](Config& c) { c.d_k = 1025; }, "d_k", "1025", "must be in [1, 1024]"},
      {"d_v below range", [](Config& c) { c.d_v = 0; }, "d_v", "0", "must be in [1, 1024]"},
      {"scale negative", [](Config& c) { c.scale = -1.0; }, "scale", std::to_string(-1.0),
       "must be finite and > 0"},
      {"scale zero", [](Config& c) { c.scale = 0.0; }, "scale", std::to_string(0.0),
       "must be finite and > 0"},
      {"scale NaN", [](Config& c) { c.scale = std::nan(""); }, "scale",
       std::to_string(std::nan("")), "must be finite and > 0"},
      // --- blocks ----------------------------------------------------------------------------
      {"cmp_stride below range", [](Config& c) { c.cmp_stride = 0; }, "cmp_stride", "0",
       "must be in [1, 65536]"},
      {"cmp_block below range", [](Config& c) { c.cmp_block = 0; }, "cmp_block", "0",
       "must be in [1, 65536]"},
      {"cmp_block < cmp_stride", [](Config& c) { c.cmp_block = 8; }, "cmp_block", "8",
       "must be >= cmp_stride = 16"},
      {"cmp_block not a multiple of d", [](Config& c) { c.cmp_block = 40; }, "cmp_block", "40",
       "must be a multiple of cmp_stride = 16"},
      {"slc_block below range", [](Config& c) { c.slc_block = 0; }, "slc_block", "0",
       "must be in [1, 65536]"},
      {"slc_block not a multiple of d", [](Config& c) { c.slc_block = 72; }, "slc_block", "72",
       "must be a multiple of cmp_stride = 16"},
      {"top_n below range", [](Config& c) { c.top_n = 0; }, "top_n", "0", "must be in [1, "},
      {"n_init negative", [](Config& c) { c.n_init = -1; }, "n_init", "-1", "must be in [0, "},
      {"n_local negative", [](Config& c) { c.n_local = -1; }, "n_local", "-1", "must be in [0, "},
      {"top_n < forced", [](Config& c) { c.top_n = 2; }, "top_n", "2",
       "must be >= n_init + n_local = 3"},
      {"window below range", [](Config& c) { c.window = 0; }, "window", "0", "must be in [1, "},
      {"identity needs l = d = l'",
       [](Config& c) {
         c.profile = "custom";
         c.score_mapping = ScoreMapping::identity;
       },
       "score_mapping", "32", "identity needs cmp_block == cmp_stride == slc_block"},
      // --- branches and phi ------------------------------------------------------------------
      {"no branch enabled", [](Config& c) { c.enable_cmp = c.enable_slc = c.enable_win = false; },
       "enable_cmp/enable_slc/enable_win", "false/false/false", "at least one branch"},
      {"mlp without hidden size", [](Config& c) { c.phi = Phi::mlp; }, "phi_hidden", "0",
       "must be in [1, 65536]"},
      {"hidden size without mlp", [](Config& c) { c.phi_hidden = 3; }, "phi_hidden", "3",
       "must be 0 unless phi is mlp"},
      // --- padded layout ---------------------------------------------------------------------
      {"padded with cu_seqlens_k",
       [](Config& c) {
         c.cu_seqlens_k = {0, 5};
       },
       "cu_seqlens_k", "2", "must be empty for layout padded"},
      {"padded with cu_seqlens_q",
       [](Config& c) {
         c.cu_seqlens_q = {0, 5};
       },
       "cu_seqlens_q", "2", "must be empty for layout padded"},
      {"batch below range", [](Config& c) { c.batch = 0; }, "batch", "0", "must be in [1, "},
      {"t_k negative", [](Config& c) { c.t_k = -1; }, "t_k", "-1", "must be in [0, "},
      {"t_q > t_k", [](Config& c) { c.t_q = 101; }, "t_q", "101", "must be <= t_k = 100"},
      {"t_q below -1", [](Config& c) { c.t_q = -2; }, "t_q", "-2", "must be -1"},
      {"batch * t_k too large",
       [](Config& c) {
         c.batch = 3;
         c.t_k = int64_t{1} << 30;
       },
       "batch", "3", "batch * t_k must be <= 2147483648"},
      // --- varlen layout ---------------------------------------------------------------------
      {"varlen with t_k",
       [](Config& c) {
         varlen(c, {0, 5});
         c.t_k = 5;
       },
       "t_k", "5", "must be left unset for layout varlen"},
      {"varlen with one offset", [](Config& c) { varlen(c, {0}); }, "cu_seqlens_k", "<1 entries>",
       "needs at least 2 entries"},
      {"varlen first offset",
       [](Config& c) {
         varlen(c, {1, 5});
       },
       "cu_seqlens_k[0]", "1", "must be 0"},
      {"varlen decreasing offsets",
       [](Config& c) {
         varlen(c, {0, 5, 3});
       },
       "cu_seqlens_k[2]", "3", "non-decreasing"},
      {"varlen offset beyond int32",
       [](Config& c) {
         varlen(c, {0, (int64_t{1} << 31) + 1});
       },
       "cu_seqlens_k[1]", std::to_string((int64_t{1} << 31) + 1), "must be <= 2147483648"},
      {"varlen query offsets count",
       [](Config& c) {
         varlen(c, {0, 5, 6}, {0, 5});
       },
       "cu_seqlens_q", "2", "as many entries as cu_seqlens_k (3)"},
      {"varlen query first offset",
       [](Config& c) {
         varlen(c, {0, 5}, {2, 5});
       },
       "cu_seqlens_q[0]", "2", "must be 0"},
      {"varlen more queries than keys",
       [](Config& c) {
         varlen(c, {0, 5, 9}, {0, 5, 10});
       },
       "cu_seqlens_q", "sequence 1 has 5 queries", "must be <= its 4 keys"},
      // --- overall size ----------------------------------------------------------------------
      {"too many elements",
       [](Config& c) {
         c.h_q = 4096;
         c.d_k = 1024;
         c.t_k = int64_t{1} << 31;
       },
       "total tokens * h_q * head dim", "", "must be <= 2^52 elements"},
  };
  return table;
}

}  // namespace

TEST_CASE("validation: the base config and every profile's own config are valid") {
  CHECK_NOTHROW(validate(base()));
  for (const auto& name : profile_names()) {
    Config c = profile_config(name);
    c.t_k = 100;
    INFO(name);
    CHECK_NOTHROW(validate(c));
  }
  // custom accepts any mix of knobs.
  Config c = base();
  c.profile = "custom";
  c.cmp_visibility = CmpVisibility::strict;
  c.window_keys = WindowKeys::w_plus_one;
  c.index_policy = IndexPolicy::multiset;
  CHECK_NOTHROW(validate(c));
}

TEST_CASE("validation: each rule names its field, value and rule") {
  for (const auto& r : rules()) {
    Config c = base();
    r.mutate(c);
    INFO("row: " << r.what);
    try {
      validate(c);
      FAIL_CHECK("validate accepted the config: " << describe(c));
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      CHECK(e.field() == r.field);
      if (!r.value.empty()) CHECK(e.value() == r.value);
      CHECK_THAT(e.rule(), Catch::Matchers::Contains(r.rule));
      // what() carries all three, so a bare message is enough to act on.
      CHECK_THAT(what, Catch::Matchers::Contains("'" + e.field() + "'") &&
                           Catch::Matchers::Contains(e.value()) &&
                           Catch::Matchers::Contains(e.rule()));
    }
  }
}

TEST_CASE("validation: apply_profile rejects an unknown name") {
  Config c;
  try {
    apply_profile(c, "nope");
    FAIL("accepted");
  } catch (const ConfigError& e) {
    CHECK(e.field() == "profile");
    CHECK(e.value() == "nope");
  }
}

TEST_CASE("validation: a validated config validates again to the same config") {
  Config c = base();
  c.t_q = 10;
  const auto once = validate(c);
  const auto twice = validate(once.cfg);
  CHECK(describe(once.cfg) == describe(twice.cfg));
  Config v;
  varlen(v, {0, 3, 3, 9}, {0, 1, 1, 4});
  const auto a = validate(v);
  CHECK(describe(validate(a.cfg).cfg) == describe(a.cfg));
  CHECK(a.total_q == 4);
  CHECK(a.total_k == 9);
}

TEST_CASE("validation: profile knob values match the table of docs/semantics.md section 9") {
  struct Row {
    const char* profile;
    CmpVisibility vis;
    ScoreMapping mapping;
    GroupReduce reduce;
    ForcedMode forced;
    TieBreak tie;
    SlcCausal causal;
    IndexPolicy policy;
    WindowKeys window;
  };
  using CV = CmpVisibility;
  using SM = ScoreMapping;
  using GR = GroupReduce;
  using FM = ForcedMode;
  using TB = TieBreak;
  using SC = SlcCausal;
  using IP = IndexPolicy;
  using WK = WindowKeys;
  for (const auto& r :
       std::vector<Row>{{"canonical", CV::inclusive, SM::overlap, GR::sum, FM::always,
                         TB::lower_index_first, SC::token, IP::strict, WK::w},
                        {"fla", CV::inclusive, SM::identity, GR::mean, FM::score_one,
                         TB::lower_index_first, SC::token, IP::multiset, WK::w},
                        {"nsa_triton", CV::inclusive, SM::overlap, GR::sum, FM::always,
                         TB::lower_index_first, SC::token, IP::negative_to_zero, WK::w_plus_one}}) {
    Config c = profile_config(r.profile);
    INFO(r.profile);
    CHECK(c.cmp_visibility == r.vis);
    CHECK(c.score_mapping == r.mapping);
    CHECK(c.group_reduce == r.reduce);
    CHECK(c.forced_mode == r.forced);
    CHECK(c.tie_break == r.tie);
    CHECK(c.slc_causal == r.causal);
    CHECK(c.index_policy == r.policy);
    CHECK(c.window_keys == r.window);
    CHECK(c.n_init == 1);
    CHECK(c.n_local == 2);
  }
  // fla fixes mean phi and l = d = l' = 64; nsa_triton turns an mlp phi into mean.
  const Config fla = profile_config("fla");
  CHECK(fla.phi == Phi::mean);
  CHECK((fla.cmp_block == 64 && fla.cmp_stride == 64 && fla.slc_block == 64));
  Config t;
  t.phi = Phi::mlp;
  t.phi_hidden = 8;
  apply_profile(t, "nsa_triton");
  CHECK(t.phi == Phi::mean);
  CHECK(t.phi_hidden == 0);
}
