// Every rule of validate() (config.cpp, profiles.cpp) as one table row: a mutation of a valid
// config, the field ConfigError must name, the offending value, and a phrase of the rule.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>

#include "nsa/ref/config.hpp"
#include "nsa/ref/profiles.hpp"

using namespace nsa::ref;

namespace {

// One rule of validate(): `outside` breaks exactly that rule by the smallest step, `inside` is
// the nearest config that keeps it (and must validate).
struct Rule {
  const char* what;
  std::function<void(Config&)> outside, inside;
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

void blocks(Config& c, int64_t l, int64_t d, int64_t l_sel) {
  c.cmp_block = l;
  c.cmp_stride = d;
  c.slc_block = l_sel;
}

void identity(Config& c, int64_t l, int64_t d, int64_t l_sel) {
  c.profile = "custom";
  c.score_mapping = ScoreMapping::identity;
  blocks(c, l, d, l_sel);
}

using C = Config&;
constexpr int64_t kBig = int64_t{1} << 31;  // kMaxTokens

const std::vector<Rule>& rules() {
  static const std::vector<Rule> table = {
      // --- profiles --------------------------------------------------------------------------
      {"unknown profile", [](C c) { c.profile = "flash"; }, [](C c) { c.profile = "custom"; },
       "profile", "flash", "unknown profile"},
      {"canonical fixes cmp_visibility", [](C c) { c.cmp_visibility = CmpVisibility::strict; },
       [](C c) {
         c.profile = "custom";
         c.cmp_visibility = CmpVisibility::strict;
       },
       "cmp_visibility", "strict", "profile canonical requires inclusive"},
      {"canonical fixes score_mapping", [](C c) { c.score_mapping = ScoreMapping::paper_eq9; },
       [](C c) {
         c.profile = "custom";
         c.score_mapping = ScoreMapping::paper_eq9;
       },
       "score_mapping", "paper_eq9", "profile canonical requires overlap"},
      {"canonical fixes group_reduce", [](C c) { c.group_reduce = GroupReduce::mean; },
       [](C c) {
         c.profile = "custom";
         c.group_reduce = GroupReduce::mean;
       },
       "group_reduce", "mean", "profile canonical requires sum"},
      {"canonical fixes forced_mode", [](C c) { c.forced_mode = ForcedMode::score_one; },
       [](C c) {
         c.profile = "custom";
         c.forced_mode = ForcedMode::score_one;
       },
       "forced_mode", "score_one", "profile canonical requires always"},
      {"canonical fixes tie_break", [](C c) { c.tie_break = TieBreak::higher_index_first; },
       [](C c) {
         c.profile = "custom";
         c.tie_break = TieBreak::higher_index_first;
       },
       "tie_break", "higher_index_first", "profile canonical requires lower_index_first"},
      {"canonical fixes slc_causal", [](C c) { c.slc_causal = SlcCausal::none; },
       [](C c) {
         c.profile = "custom";
         c.slc_causal = SlcCausal::none;
       },
       "slc_causal", "none", "profile canonical requires token"},
      {"canonical fixes index_policy", [](C c) { c.index_policy = IndexPolicy::multiset; },
       [](C c) {
         c.profile = "custom";
         c.index_policy = IndexPolicy::multiset;
       },
       "index_policy", "multiset", "profile canonical requires strict"},
      {"canonical fixes window_keys", [](C c) { c.window_keys = WindowKeys::w_plus_one; },
       [](C c) {
         c.profile = "custom";
         c.window_keys = WindowKeys::w_plus_one;
       },
       "window_keys", "w_plus_one", "profile canonical requires w"},
      {"fla knob",
       [](C c) {
         apply_profile(c, "fla");
         c.window_keys = WindowKeys::w_plus_one;
       },
       [](C c) { apply_profile(c, "fla"); }, "window_keys", "w_plus_one", "profile fla requires w"},
      {"fla needs mean phi",
       [](C c) {
         apply_profile(c, "fla");
         c.phi = Phi::linear;
       },
       [](C c) {
         apply_profile(c, "fla");
         c.phi = Phi::mean;
       },
       "phi", "linear", "profile fla requires mean"},
      {"nsa_triton knob",
       [](C c) {
         apply_profile(c, "nsa_triton");
         c.index_policy = IndexPolicy::strict;
       },
       [](C c) {
         apply_profile(c, "nsa_triton");
         c.index_policy = IndexPolicy::negative_to_zero;
       },
       "index_policy", "strict", "profile nsa_triton requires negative_to_zero"},
      {"fla group size below 16",
       [](C c) {
         apply_profile(c, "fla");
         c.h_q = 8;
       },
       [](C c) {
         apply_profile(c, "fla");
         c.h_q = 16;
       },
       "h_q", "8", "G = h_q / h_kv a power of two >= 16 (G = 8)"},
      {"fla group size not a power of two",
       [](C c) {
         apply_profile(c, "fla");
         c.h_q = 24;
       },
       [](C c) {
         apply_profile(c, "fla");
         c.h_q = 32;
       },
       "h_q", "24", "(G = 24)"},
      {"fla block not a power of two",
       [](C c) {
         apply_profile(c, "fla");
         c.h_q = 16;
         c.cmp_block = c.cmp_stride = c.slc_block = 48;
       },
       [](C c) {
         apply_profile(c, "fla");
         c.h_q = 16;
         c.cmp_block = c.cmp_stride = c.slc_block = 64;
       },
       "slc_block", "48", "a power of two >= 16"},
      {"fla block below 16",
       [](C c) {
         apply_profile(c, "fla");
         c.h_q = 16;
         c.cmp_block = c.cmp_stride = c.slc_block = 8;
         c.top_n = 3;
       },
       [](C c) {
         apply_profile(c, "fla");
         c.h_q = 16;
         c.cmp_block = c.cmp_stride = c.slc_block = 16;
         c.top_n = 3;
       },
       "slc_block", "8", "a power of two >= 16"},
      {"fla top_n beyond the top-k tile",
       [](C c) {
         apply_profile(c, "fla");
         c.h_q = 16;
         c.cmp_block = c.cmp_stride = c.slc_block = 16;
         c.top_n = 9;  // next power of two 16, 2 * 16 > 16
       },
       [](C c) {
         apply_profile(c, "fla");
         c.h_q = 16;
         c.cmp_block = c.cmp_stride = c.slc_block = 16;
         c.top_n = 8;  // 2 * 8 = 16 fits
       },
       "top_n", "9", "l' >= 2 * next_power_of_2(n) = 32"},
      {"fla non-default scale",
       [](C c) {
         apply_profile(c, "fla");
         c.h_q = 16;
         c.scale = 0.5;
       },
       [](C c) {
         apply_profile(c, "fla");
         c.h_q = 16;
       },
       "scale", "0.500000", "requires the default 1/sqrt(d_k)"},
      {"nsa_triton kernel size",
       [](C c) {
         apply_profile(c, "nsa_triton");
         c.cmp_block = 8;
         c.cmp_stride = 4;
         c.slc_block = 16;
       },
       [](C c) {
         apply_profile(c, "nsa_triton");
         c.cmp_block = 16;
         c.cmp_stride = 4;
         c.slc_block = 16;
       },
       "cmp_block", "8", "l in {16, 32, 64, 128}"},
      {"nsa_triton selection block not a multiple of l",
       [](C c) {
         apply_profile(c, "nsa_triton");
         c.cmp_block = 32;
         c.cmp_stride = 16;
         c.slc_block = 48;
       },
       [](C c) {
         apply_profile(c, "nsa_triton");
         c.cmp_block = 32;
         c.cmp_stride = 16;
         c.slc_block = 64;
       },
       "slc_block", "48", "l' % l == 0 (l = 32)"},
      {"nsa_triton non-default scale",
       [](C c) {
         apply_profile(c, "nsa_triton");
         c.scale = 0.5;  // d_k = 16: the default is 0.25
       },
       [](C c) { apply_profile(c, "nsa_triton"); }, "scale", "0.500000",
       "requires the default 1/sqrt(d_k)"},
      {"nsa_triton forbids mlp",
       [](C c) {
         apply_profile(c, "nsa_triton");
         c.phi = Phi::mlp;
         c.phi_hidden = 4;
       },
       [](C c) {
         apply_profile(c, "nsa_triton");
         c.phi = Phi::linear;
       },
       "phi", "mlp", "allows mean|linear"},
      // --- heads and scale -------------------------------------------------------------------
      {"h_q below range", [](C c) { c.h_q = 0; }, [](C c) { c.h_q = 1; }, "h_q", "0",
       "must be in [1, 4096]"},
      {"h_q above range", [](C c) { c.h_q = 4097; }, [](C c) { c.h_q = 4096; }, "h_q", "4097",
       "must be in [1, 4096]"},
      {"h_kv below range", [](C c) { c.h_kv = 0; }, [](C c) { c.h_kv = 1; }, "h_kv", "0",
       "must be in [1, 4096]"},
      {"h_kv above range",
       [](C c) {
         c.h_q = 4096;
         c.h_kv = 4097;
       },
       [](C c) {
         c.h_q = 4096;
         c.h_kv = 4096;
       },
       "h_kv", "4097", "must be in [1, 4096]"},
      {"h_q not a multiple of h_kv",
       [](C c) {
         c.h_q = 6;
         c.h_kv = 4;
       },
       [](C c) {
         c.h_q = 8;
         c.h_kv = 4;
       },
       "h_q", "6", "must be a multiple of h_kv = 4"},
      {"d_k below range", [](C c) { c.d_k = 0; }, [](C c) { c.d_k = 1; }, "d_k", "0",
       "must be in [1, 1024]"},
      {"d_k above range", [](C c) { c.d_k = 1025; }, [](C c) { c.d_k = 1024; }, "d_k", "1025",
       "must be in [1, 1024]"},
      {"d_v below range", [](C c) { c.d_v = 0; }, [](C c) { c.d_v = 1; }, "d_v", "0",
       "must be in [1, 1024]"},
      {"d_v above range", [](C c) { c.d_v = 1025; }, [](C c) { c.d_v = 1024; }, "d_v", "1025",
       "must be in [1, 1024]"},
      {"scale negative", [](C c) { c.scale = -std::numeric_limits<double>::denorm_min(); },
       [](C c) { c.scale = std::numeric_limits<double>::denorm_min(); }, "scale",
       std::to_string(-std::numeric_limits<double>::denorm_min()), "must be finite and > 0"},
      {"scale zero", [](C c) { c.scale = 0.0; },
       [](C c) { c.scale = std::numeric_limits<double>::denorm_min(); }, "scale",
       std::to_string(0.0), "must be finite and > 0"},
      {"scale +inf", [](C c) { c.scale = std::numeric_limits<double>::infinity(); },
       [](C c) { c.scale = std::numeric_limits<double>::max(); }, "scale",
       std::to_string(std::numeric_limits<double>::infinity()), "must be finite and > 0"},
      {"scale NaN", [](C c) { c.scale = std::nan(""); }, [](C c) { c.scale = 1.0; }, "scale",
       std::to_string(std::nan("")), "must be finite and > 0"},
      // --- blocks ----------------------------------------------------------------------------
      {"cmp_stride below range", [](C c) { blocks(c, 32, 0, 64); },
       [](C c) { blocks(c, 32, 1, 64); }, "cmp_stride", "0", "must be in [1, 65536]"},
      {"cmp_stride above range", [](C c) { blocks(c, 65537, 65537, 65537); },
       [](C c) { blocks(c, 65536, 65536, 65536); }, "cmp_stride", "65537", "must be in [1, 65536]"},
      {"cmp_block below range", [](C c) { blocks(c, 0, 16, 64); },
       [](C c) { blocks(c, 16, 16, 64); }, "cmp_block", "0", "must be in [1, 65536]"},
      {"cmp_block above range", [](C c) { blocks(c, 65552, 16, 64); },
       [](C c) { blocks(c, 65536, 16, 64); }, "cmp_block", "65552", "must be in [1, 65536]"},
      {"cmp_block < cmp_stride", [](C c) { blocks(c, 8, 16, 64); },
       [](C c) { blocks(c, 16, 16, 64); }, "cmp_block", "8", "must be >= cmp_stride = 16"},
      {"cmp_block not a multiple of d", [](C c) { blocks(c, 40, 16, 64); },
       [](C c) { blocks(c, 48, 16, 64); }, "cmp_block", "40",
       "must be a multiple of cmp_stride = 16"},
      {"slc_block below range", [](C c) { blocks(c, 32, 16, 0); },
       [](C c) { blocks(c, 32, 16, 16); }, "slc_block", "0", "must be in [1, 65536]"},
      {"slc_block above range", [](C c) { blocks(c, 32, 16, 65552); },
       [](C c) { blocks(c, 32, 16, 65536); }, "slc_block", "65552", "must be in [1, 65536]"},
      {"slc_block not a multiple of d", [](C c) { blocks(c, 32, 16, 72); },
       [](C c) { blocks(c, 32, 16, 80); }, "slc_block", "72",
       "must be a multiple of cmp_stride = 16"},
      {"top_n below range",
       [](C c) {
         c.top_n = 0;
         c.n_init = c.n_local = 0;
       },
       [](C c) {
         c.top_n = 1;
         c.n_init = c.n_local = 0;
       },
       "top_n", "0", "must be in [1, "},
      {"top_n above range", [](C c) { c.top_n = kBig + 1; }, [](C c) { c.top_n = kBig; }, "top_n",
       std::to_string(kBig + 1), "must be in [1, "},
      {"n_init negative", [](C c) { c.n_init = -1; }, [](C c) { c.n_init = 0; }, "n_init", "-1",
       "must be in [0, "},
      {"n_init above range",
       [](C c) {
         c.top_n = kBig;
         c.n_init = kBig + 1;
         c.n_local = 0;
       },
       [](C c) {
         c.n_init = c.top_n = kBig;
         c.n_local = 0;
       },
       "n_init", std::to_string(kBig + 1), "must be in [0, "},
      {"n_local negative", [](C c) { c.n_local = -1; }, [](C c) { c.n_local = 0; }, "n_local", "-1",
       "must be in [0, "},
      {"n_local above range",
       [](C c) {
         c.top_n = kBig;
         c.n_local = kBig + 1;
         c.n_init = 0;
       },
       [](C c) {
         c.n_local = c.top_n = kBig;
         c.n_init = 0;
       },
       "n_local", std::to_string(kBig + 1), "must be in [0, "},
      {"top_n < forced", [](C c) { c.top_n = 2; }, [](C c) { c.top_n = 3; }, "top_n", "2",
       "must be >= n_init + n_local = 3"},
      {"window below range", [](C c) { c.window = 0; }, [](C c) { c.window = 1; }, "window", "0",
       "must be in [1, "},
      {"window above range", [](C c) { c.window = kBig + 1; }, [](C c) { c.window = kBig; },
       "window", std::to_string(kBig + 1), "must be in [1, "},
      // identity needs l = d = l': each equality broken on its own, and l = l' != d.
      {"identity: l != d (d = l')", [](C c) { identity(c, 32, 16, 16); },
       [](C c) { identity(c, 16, 16, 16); }, "score_mapping", "32",
       "identity needs cmp_block == cmp_stride == slc_block (got l=32, d=16, l'=16)"},
      {"identity: d != l' (l = d)", [](C c) { identity(c, 16, 16, 32); },
       [](C c) { identity(c, 32, 32, 32); }, "score_mapping", "16",
       "identity needs cmp_block == cmp_stride == slc_block (got l=16, d=16, l'=32)"},
      {"identity: l = l' != d", [](C c) { identity(c, 32, 16, 32); },
       [](C c) { identity(c, 16, 16, 16); }, "score_mapping", "32",
       "identity needs cmp_block == cmp_stride == slc_block (got l=32, d=16, l'=32)"},
      // --- branches and phi ------------------------------------------------------------------
      {"no branch enabled", [](C c) { c.enable_cmp = c.enable_slc = c.enable_win = false; },
       [](C c) { c.enable_cmp = c.enable_slc = false; }, "enable_cmp/enable_slc/enable_win",
       "false/false/false", "at least one branch"},
      {"mlp without hidden size", [](C c) { c.phi = Phi::mlp; },
       [](C c) {
         c.phi = Phi::mlp;
         c.phi_hidden = 1;
       },
       "phi_hidden", "0", "must be in [1, 65536]"},
      {"mlp hidden size above range",
       [](C c) {
         c.phi = Phi::mlp;
         c.phi_hidden = 65537;
       },
       [](C c) {
         c.phi = Phi::mlp;
         c.phi_hidden = 65536;
       },
       "phi_hidden", "65537", "must be in [1, 65536]"},
      {"hidden size without mlp", [](C c) { c.phi_hidden = 1; }, [](C c) { c.phi_hidden = 0; },
       "phi_hidden", "1", "must be 0 unless phi is mlp"},
      // --- padded layout ---------------------------------------------------------------------
      {"padded with other cu_seqlens_k",
       [](C c) {
         c.cu_seqlens_k = {0, 99};
       },
       [](C c) {
         c.cu_seqlens_k = {0, 100};
       },
       "cu_seqlens_k", "2", "must be empty for layout padded"},
      {"padded with other cu_seqlens_q",
       [](C c) {
         c.cu_seqlens_q = {0, 99};
       },
       [](C c) {
         c.cu_seqlens_q = {0, 100};
       },
       "cu_seqlens_q", "2", "must be empty for layout padded"},
      {"batch below range", [](C c) { c.batch = 0; }, [](C c) { c.batch = 1; }, "batch", "0",
       "must be in [1, "},
      {"batch above range",
       [](C c) {
         c.batch = kMaxBatch + 1;
         c.t_k = 1;
       },
       [](C c) {
         c.batch = kMaxBatch;
         c.t_k = 1;
       },
       "batch", std::to_string(kMaxBatch + 1), "must be in [1, "},
      {"t_k negative", [](C c) { c.t_k = -1; }, [](C c) { c.t_k = 0; }, "t_k", "-1",
       "must be in [0, "},
      {"t_k above range", [](C c) { c.t_k = kBig + 1; }, [](C c) { c.t_k = kBig; }, "t_k",
       std::to_string(kBig + 1), "must be in [0, "},
      {"t_q > t_k", [](C c) { c.t_q = 101; }, [](C c) { c.t_q = 100; }, "t_q", "101",
       "must be <= t_k = 100"},
      {"t_q below -1", [](C c) { c.t_q = -2; }, [](C c) { c.t_q = -1; }, "t_q", "-2", "must be -1"},
      {"batch * t_k too large",
       [](C c) {
         c.batch = 2;
         c.t_k = (kBig / 2) + 1;
       },
       [](C c) {
         c.batch = 2;
         c.t_k = kBig / 2;
       },
       "batch", "2", "batch * t_k must be <= 2147483648"},
      // --- varlen layout ---------------------------------------------------------------------
      {"varlen with t_k",
       [](C c) {
         varlen(c, {0, 5});
         c.t_k = 5;
       },
       [](C c) {
         varlen(c, {0, 5});
       },
       "t_k", "5", "must be left unset for layout varlen"},
      {"varlen with t_q",
       [](C c) {
         varlen(c, {0, 5});
         c.t_q = 0;
       },
       [](C c) {
         varlen(c, {0, 5});
         c.t_q = -1;
       },
       "t_k", "0", "t_q/t_k must be left unset for layout varlen"},
      {"varlen with one offset", [](C c) { varlen(c, {0}); },
       [](C c) {
         varlen(c, {0, 0});
       },
       "cu_seqlens_k", "<1 entries>", "needs at least 2 entries"},
      {"varlen first offset",
       [](C c) {
         varlen(c, {1, 5});
       },
       [](C c) {
         varlen(c, {0, 5});
       },
       "cu_seqlens_k[0]", "1", "must be 0"},
      {"varlen decreasing offsets",
       [](C c) {
         varlen(c, {0, 5, 4});
       },
       [](C c) {
         varlen(c, {0, 5, 5});
       },
       "cu_seqlens_k[2]", "4", "non-decreasing"},
      {"varlen offset beyond int32",
       [](C c) {
         varlen(c, {0, kBig + 1});
       },
       [](C c) {
         varlen(c, {0, kBig});
       },
       "cu_seqlens_k[1]", std::to_string(kBig + 1), "must be <= 2147483648"},
      {"varlen query offsets count",
       [](C c) {
         varlen(c, {0, 5, 6}, {0, 5});
       },
       [](C c) {
         varlen(c, {0, 5, 6}, {0, 5, 6});
       },
       "cu_seqlens_q", "2", "as many entries as cu_seqlens_k (3)"},
      {"varlen query first offset",
       [](C c) {
         varlen(c, {0, 5}, {1, 5});
       },
       [](C c) {
         varlen(c, {0, 5}, {0, 5});
       },
       "cu_seqlens_q[0]", "1", "must be 0"},
      {"varlen decreasing query offsets",
       [](C c) {
         varlen(c, {0, 5, 9}, {0, 5, 4});
       },
       [](C c) {
         varlen(c, {0, 5, 9}, {0, 5, 5});
       },
       "cu_seqlens_q[2]", "4", "non-decreasing"},
      {"varlen more queries than keys",
       [](C c) {
         varlen(c, {0, 5, 9}, {0, 5, 10});
       },
       [](C c) {
         varlen(c, {0, 5, 9}, {0, 5, 9});
       },
       "cu_seqlens_q", "sequence 1 has 5 queries", "must be <= its 4 keys"},
      // --- overall size: exactly 2^52 elements is allowed ------------------------------------
      {"too many elements",
       [](C c) {
         c.h_q = 4096;
         c.d_k = 1024;
         c.t_k = (int64_t{1} << 30) + 1;
       },
       [](C c) {
         c.h_q = 4096;
         c.d_k = 1024;
         c.t_k = int64_t{1} << 30;
       },
       "total tokens * h_q * head dim", "", "must be <= 2^52 elements"},
  };
  return table;
}

}  // namespace

namespace {
// A profile's own config with a sequence, as a user starts from it.
Config valid_profile_config(const std::string& name) {
  Config c = profile_config(name);
  c.t_k = 100;
  return c;
}
}  // namespace

TEST_CASE("validation: the base config and every profile's own config are valid") {
  CHECK_NOTHROW(validate(base()));
  for (const auto& name : profile_names()) {
    INFO(name);
    CHECK_NOTHROW(validate(valid_profile_config(name)));
  }
  // custom accepts any mix of knobs.
  Config c = base();
  c.profile = "custom";
  c.cmp_visibility = CmpVisibility::strict;
  c.window_keys = WindowKeys::w_plus_one;
  c.index_policy = IndexPolicy::multiset;
  CHECK_NOTHROW(validate(c));
}

TEST_CASE(
    "validation: each rule names its field, value and rule; the nearest valid config passes") {
  for (const auto& r : rules()) {
    Config c = base();
    r.outside(c);
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
    Config ok = base();
    r.inside(ok);
    try {
      validate(ok);
    } catch (const ConfigError& e) {
      FAIL_CHECK("the config just inside was rejected: " << e.what() << "\n" << describe(ok));
    }
  }
  CHECK(rules().size() == 71);
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

// Every named profile fixes every convention knob: each other value of one knob is refused,
// naming the knob, its value and the profile's value; the profile's own value validates.
template <class E>
int check_knob(const char* field, E Config::*member) {
  int rows = 0, expected = 0;
  for (const auto& name : profile_names()) {
    if (name == "custom") continue;
    const Config want = valid_profile_config(name);
    expected += static_cast<int>(EnumNames<E>::names.size()) - 1;
    for (std::size_t i = 0; i < EnumNames<E>::names.size(); ++i) {
      const E v = static_cast<E>(i);
      Config c = want;
      c.*member = v;
      INFO(name << ": " << field << " = " << to_string(v));
      if (v == want.*member) {
        CHECK_NOTHROW(validate(c));
        continue;
      }
      try {
        validate(c);
        FAIL_CHECK("accepted");
      } catch (const ConfigError& e) {
        CHECK(e.field() == field);
        CHECK(e.value() == std::string(to_string(v)));
        CHECK_THAT(e.rule(), Catch::Matchers::Contains("profile " + name + " requires " +
                                                       std::string(to_string(want.*member))));
      }
      ++rows;
    }
  }
  CHECK(rows == expected);
  return rows;
}

TEST_CASE("validation: every named profile fixes every knob, from both sides") {
  int rows = 0;
  rows += check_knob("cmp_visibility", &Config::cmp_visibility);
  rows += check_knob("score_mapping", &Config::score_mapping);
  rows += check_knob("group_reduce", &Config::group_reduce);
  rows += check_knob("forced_mode", &Config::forced_mode);
  rows += check_knob("tie_break", &Config::tie_break);
  rows += check_knob("slc_causal", &Config::slc_causal);
  rows += check_knob("index_policy", &Config::index_policy);
  rows += check_knob("window_keys", &Config::window_keys);
  CHECK(rows >= 3 * 8);
}

TEST_CASE("validation: topn_rounding rounds n up to a power of two; only fla leaves it free") {
  for (const auto& [n, want] :
       std::vector<std::pair<int64_t, int64_t>>{{1, 1},
                                                {2, 2},
                                                {3, 4},
                                                {5, 8},
                                                {8, 8},
                                                {9, 16},
                                                {(int64_t{1} << 30) + 1, int64_t{1} << 31},
                                                {int64_t{1} << 31, int64_t{1} << 31}}) {
    Config c = base();
    c.profile = "custom";
    c.n_init = c.n_local = 0;
    c.top_n = n;
    INFO("n = " << n);
    CHECK(validate(c).cfg.top_n == n);  // none keeps n
    c.topn_rounding = TopnRounding::next_power_of_two;
    const auto once = validate(c);
    CHECK(once.cfg.top_n == want);
    CHECK(validate(once.cfg).cfg.top_n == want);  // validating again changes nothing
    CHECK(describe(validate(once.cfg).cfg) == describe(once.cfg));
  }
  // fla: both values (naive_nsa and parallel_nsa with an integer block_counts).
  Config fla = valid_profile_config("fla");
  fla.top_n = 5;
  CHECK(validate(fla).cfg.top_n == 5);
  fla.topn_rounding = TopnRounding::next_power_of_two;
  CHECK(validate(fla).cfg.top_n == 8);
  // The other named profiles keep exactly n: the rounding is refused, naming the knob.
  for (const char* name : {"canonical", "nsa_triton"}) {
    Config c = valid_profile_config(name);
    c.topn_rounding = TopnRounding::next_power_of_two;
    INFO(name);
    try {
      validate(c);
      FAIL_CHECK("accepted");
    } catch (const ConfigError& e) {
      CHECK(e.field() == "topn_rounding");
      CHECK(e.value() == "next_power_of_two");
      CHECK_THAT(e.rule(),
                 Catch::Matchers::Contains("profile " + std::string(name) + " requires none"));
    }
    CHECK(profile_config(name).topn_rounding == TopnRounding::none);
  }
  CHECK(profile_config("fla").topn_rounding == TopnRounding::none);
}
