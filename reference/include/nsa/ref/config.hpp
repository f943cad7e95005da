// The NSA problem description: shapes, block sizes and every convention knob (docs/semantics.md).
// A Config is what a user writes; validate() checks every rule and returns a ValidConfig, the only
// form the reference, the kernels and the golden writer accept.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "nsa/ref/knobs.hpp"

namespace nsa::ref {

struct Config {
  // --- batch layout -------------------------------------------------------------------------
  Layout layout = Layout::padded;
  int64_t batch = 1;  // padded: number of sequences
  int64_t t_k = 0;    // padded: keys per sequence
  int64_t t_q = -1;   // padded: queries per sequence (the last t_q positions); -1 means t_k
  std::vector<int64_t> cu_seqlens_k;  // varlen: B+1 offsets of the packed keys
  std::vector<int64_t> cu_seqlens_q;  // varlen: B+1 offsets of the packed queries; empty = keys

  // --- heads --------------------------------------------------------------------------------
  int64_t h_q = 1;
  int64_t h_kv = 1;
  int64_t d_k = 16;
  int64_t d_v = 16;
  std::optional<double> scale;  // softmax scale; default 1/sqrt(d_k)

  // --- blocks -------------------------------------------------------------------------------
  int64_t cmp_block = 32;   // l
  int64_t cmp_stride = 16;  // d
  int64_t slc_block = 64;   // l'
  int64_t top_n = 16;       // n
  int64_t n_init = 1;
  int64_t n_local = 2;
  int64_t window = 512;  // w

  // --- branches and compression function --------------------------------------------------
  bool enable_cmp = true;
  bool enable_slc = true;
  bool enable_win = true;
  Phi phi = Phi::mean;
  int64_t phi_hidden = 0;  // mlp hidden size m; must be 0 unless phi == mlp
  Activation phi_act = Activation::relu;
  Dtype dtype = Dtype::f32;    // dtype of q, k, v, gates and phi parameters
  bool shared_kv = false;      // the three branches read the same K/V tensors
  bool given_indices = false;  // the selection branch reads indices from the inputs
  // The compressed keys/values k~, v~ are inputs (a model's compressed KV cache) instead of phi's
  // output over K_cmp/V_cmp: phi is not run and its parameters and K_cmp/V_cmp are not read.
  bool cmp_given = false;

  // --- conventions --------------------------------------------------------------------------
  CmpVisibility cmp_visibility = CmpVisibility::inclusive;
  ScoreMapping score_mapping = ScoreMapping::overlap;
  GroupReduce group_reduce = GroupReduce::sum;
  ForcedMode forced_mode = ForcedMode::always;
  TieBreak tie_break = TieBreak::lower_index_first;
  SlcCausal slc_causal = SlcCausal::token;
  IndexPolicy index_policy = IndexPolicy::strict;
  WindowKeys window_keys = WindowKeys::w;
  // next_power_of_two: validate() replaces top_n by the next power of two >= top_n, so that
  // everything downstream (top-n, index lists, kernels) sees the count the selection keeps.
  TopnRounding topn_rounding = TopnRounding::none;

  std::string profile = "canonical";

  bool enabled(Branch b) const {
    return b == Branch::cmp ? enable_cmp : b == Branch::slc ? enable_slc : enable_win;
  }
};

// One sequence of a validated batch: where its queries and keys start in the packed tensors.
struct Sequence {
  int64_t q_begin = 0;  // first packed query row
  int64_t k_begin = 0;  // first packed key row
  int64_t c_begin = 0;  // first packed compressed block (row of the given k~/v~, cmp_given)
  int64_t t_q = 0;
  int64_t t_k = 0;
  // Position of local query i inside the key sequence (query suffix).
  int64_t pos(int64_t i) const { return t_k - t_q + i; }
};

// A config that passed validate(): normalized fields plus derived layout.
struct ValidConfig {
  Config cfg;  // normalized: scale set, t_q set, cu_seqlens filled for both layouts
  std::vector<Sequence> seqs;
  int64_t total_q = 0;
  int64_t total_k = 0;
  int64_t total_cmp = 0;  // compressed blocks over the batch: sum of N_c(t_k) of each sequence
  int64_t group = 1;      // G = h_q / h_kv
  double scale = 1.0;     // effective softmax scale
  int64_t max_t_k = 0;

  // Number of compressed blocks of a length-L key sequence: N_c(L).
  int64_t num_cmp_blocks(int64_t len) const {
    return len < cfg.cmp_block ? 0 : (len - cfg.cmp_block) / cfg.cmp_stride + 1;
  }
  int64_t num_slc_blocks(int64_t len) const { return (len + cfg.slc_block - 1) / cfg.slc_block; }
  // Widest rows over the batch, the size of padded per-row score outputs.
  int64_t max_cmp_blocks() const { return num_cmp_blocks(max_t_k); }
  int64_t max_slc_blocks() const { return num_slc_blocks(max_t_k); }
};

// Thrown for a config that breaks a rule; what() names the field, the value and the rule.
class ConfigError : public std::invalid_argument {
 public:
  ConfigError(std::string field, std::string value, std::string rule);
  const std::string& field() const { return field_; }
  const std::string& value() const { return value_; }
  const std::string& rule() const { return rule_; }

 private:
  std::string field_, value_, rule_;
};

// Upper bounds that keep every derived size far inside int64 (and inside the int32 index output).
inline constexpr int64_t kMaxHeads = 4096;
inline constexpr int64_t kMaxHeadDim = 1024;
inline constexpr int64_t kMaxTokens = int64_t{1} << 31;  // per sequence and in total
// Padded batches: validate() materializes per-sequence offsets, so a short config must not ask
// for billions of them (found by fuzz/targets/fuzz_config.cpp: {"t_k": 0, "batch": 2^31}).
inline constexpr int64_t kMaxBatch = int64_t{1} << 20;
inline constexpr int64_t kMaxBlock = int64_t{1} << 16;
inline constexpr int64_t kMaxPhiHidden = 1 << 16;

ValidConfig validate(const Config& cfg);

// Named profiles (docs/semantics.md, "Profiles"): canonical, fla, nsa_triton.
std::vector<std::string> profile_names();
// Sets the profile's knobs (and, where the profile fixes them, block sizes and phi) on cfg.
// Throws ConfigError(field "profile") for an unknown name.
void apply_profile(Config& cfg, const std::string& name);
Config profile_config(const std::string& name);

// "field=value" lines of every field, for reports and repro commands.
std::string describe(const Config& cfg);

}  // namespace nsa::ref
