// The built-in suites. Sizes are chosen so that the committed ones (smoke, canonical, fla,
// nsa_triton) stay small on disk and their f128 truth takes a few minutes on two cores; the
// canonical suite is a covering sweep: every listed value of every dimension appears in some case,
// mixed with different dtypes and knobs, rather than the full cartesian product.
#include "nsa/golden/suites.hpp"

#include <cstdio>
#include <stdexcept>

namespace nsa::golden {

using nsa::ref::Config;
using nsa::ref::Dtype;
using nsa::ref::Layout;
using nsa::ref::Phi;
using nsa::ref::Regime;

namespace {

class Builder {
 public:
  explicit Builder(uint64_t seed_base) : seed_(seed_base) {}
  // Adds a case; its name gets the position as a prefix so that name order is suite order.
  void add(const std::string& what, Config c, Regime r = Regime::typical,
           bool adversarial_indices = false) {
    char prefix[16];
    std::snprintf(prefix, sizeof prefix, "%03zu_", cases_.size());
    cases_.push_back({prefix + what, std::move(c), seed_ + cases_.size(), r, adversarial_indices});
  }
  // A case without the backward (CaseSpec::backward).
  void add_forward_only(const std::string& what, Config c) {
    add(what, std::move(c));
    cases_.back().backward = false;
  }
  std::vector<CaseSpec> take() { return std::move(cases_); }

 private:
  uint64_t seed_;
  std::vector<CaseSpec> cases_;
};

Config small(int64_t t_k, Dtype dt = Dtype::f32) {
  Config c;
  c.t_k = t_k;
  c.h_q = 2;
  c.h_kv = 1;
  c.d_k = 16;
  c.d_v = 16;
  c.top_n = 4;
  c.window = 32;
  c.dtype = dt;
  return c;
}

Config varlen(std::vector<int64_t> lengths, int64_t queries_per_seq, Dtype dt) {
  Config c = small(0, dt);
  c.layout = Layout::varlen;
  c.cu_seqlens_k = {0};
  c.cu_seqlens_q = {0};
  for (auto n : lengths) {
    c.cu_seqlens_k.push_back(c.cu_seqlens_k.back() + n);
    c.cu_seqlens_q.push_back(c.cu_seqlens_q.back() +
                             (queries_per_seq < 0 ? n : std::min(n, queries_per_seq)));
  }
  return c;
}

std::vector<CaseSpec> smoke() {
  Builder b(1000);
  b.add("padded_fp32_mean", [] {
    auto c = small(130);
    c.h_q = 4;
    c.h_kv = 2;
    c.top_n = 3;
    c.window = 20;
    return c;
  }());
  b.add("varlen_bf16_linear_empty_seq", [] {
    auto c = varlen({0, 37, 100}, -1, Dtype::bf16);
    c.phi = Phi::linear;
    return c;
  }());
  b.add("suffix_fp16_mlp_g4", [] {
    auto c = small(150, Dtype::f16);
    c.t_q = 5;
    c.h_q = 4;
    c.phi = Phi::mlp;
    c.phi_hidden = 8;
    return c;
  }());
  b.add("fla_profile", [] {
    auto c = small(100);
    nsa::ref::apply_profile(c, "fla");
    c.h_q = 16;  // fla's group size: a power of two >= 16
    c.cmp_block = c.cmp_stride = c.slc_block = 16;
    return c;
  }());
  b.add("nsa_triton_profile", [] {
    auto c = small(100, Dtype::bf16);
    nsa::ref::apply_profile(c, "nsa_triton");
    return c;
  }());
  b.add(
      "given_indices_ties",
      [] {
        auto c = small(140);
        c.given_indices = true;
        return c;
      }(),
      Regime::ties);
  return b.take();
}

std::vector<CaseSpec> canonical() {
  Builder b(2000);
  const Dtype dts[] = {Dtype::f32, Dtype::f16, Dtype::bf16};
  // Lengths around block boundaries up to 2100, packed as varlen batches with a short query
  // suffix per sequence (keeps the f128 cost and the file small, and covers T_q < T_k):
  // fp32: around every stride boundary below 70 and every power-of-two boundary up to 2048;
  // bf16: one length at every multiple of 64 up to 2048 (one below, at, one above, in turn).
  {
    std::vector<int64_t> lens = {0, 1, 2};
    for (int64_t k = 16; k <= 64; k += 16)
      for (int64_t d : {-1, 0, 1}) lens.push_back(k + d);
    for (int64_t k : {128, 256, 512, 1024, 2048})
      for (int64_t d : {-1, 0, 1}) lens.push_back(k + d);
    lens.push_back(2100);
    auto c = varlen(lens, 3, Dtype::f32);
    c.top_n = 6;
    c.window = 512;
    c.shared_kv = true;
    b.add_forward_only("lengths_pow2_boundaries_suffix3_fp32", c);
    std::vector<int64_t> every;
    for (int64_t k = 64; k <= 2048; k += 64) every.push_back(k + (k / 64) % 3 - 1);
    every.push_back(2100);
    auto e = varlen(every, 2, Dtype::bf16);
    e.top_n = 5;
    e.shared_kv = true;
    b.add_forward_only("lengths_every_64_boundary_suffix2_bf16", e);
  }
  // Every short length 0..70 with all queries: all block-boundary positions of l, d, l'.
  {
    std::vector<int64_t> lens;
    for (int64_t n = 0; n <= 70; n += 7) lens.push_back(n);
    auto c = varlen(lens, -1, Dtype::f16);
    c.top_n = 3;
    b.add("lengths_0_to_70_all_queries_fp16", c);
  }
  // Group sizes.
  for (int64_t g : {1, 2, 4, 16}) {
    auto c = small(130, dts[g % 3]);
    c.t_q = 64;
    c.h_kv = g == 16 ? 1 : 2;
    c.h_q = g * c.h_kv;
    b.add("group_" + std::to_string(g), c);
  }
  // Head dims.
  const std::pair<int64_t, int64_t> dims[] = {{16, 16}, {64, 64}, {128, 128}, {192, 128}};
  for (int i = 0; i < 4; ++i) {
    auto c = small(100, dts[i % 3]);
    c.t_q = 60;
    c.h_q = 1;
    c.d_k = dims[i].first;
    c.d_v = dims[i].second;
    b.add("dims_" + std::to_string(dims[i].first) + "_" + std::to_string(dims[i].second), c);
  }
  // n from 1 to beyond the block count (t_k = 300: 5 selection blocks).
  for (int64_t n : {1, 2, 3, 4, 5, 8}) {
    auto c = small(300, dts[n % 3]);
    c.t_q = 120;  // positions 180..299: three to five candidate blocks
    c.top_n = n;
    if (n < 3) {
      c.profile = "custom";
      c.n_init = n == 1 ? 0 : 1;
      c.n_local = 1;
    }
    b.add("top_n_" + std::to_string(n), c);
  }
  // Windows, both window_keys conventions.
  for (int64_t w : {1, 32, 512}) {
    auto c = small(600, dts[w % 3]);
    c.t_q = 100;  // positions 500..599, across t = w - 1 for w = 512
    c.window = w;
    c.enable_cmp = false;
    c.enable_slc = false;
    b.add("window_" + std::to_string(w), c);
    c.profile = "custom";
    c.window_keys = nsa::ref::WindowKeys::w_plus_one;
    b.add("window_" + std::to_string(w) + "_plus_one", c);
  }
  // Compression functions.
  for (Phi phi : {Phi::mean, Phi::linear, Phi::mlp}) {
    for (Dtype dt : dts) {
      auto c = small(140, dt);
      c.phi = phi;
      if (phi == Phi::mlp) {
        c.phi_hidden = 12;
        c.phi_act = dt == Dtype::f16 ? nsa::ref::Activation::silu : nsa::ref::Activation::relu;
      }
      b.add(std::string("phi_") + std::string(nsa::ref::to_string(phi)) + "_" +
                std::string(nsa::ref::to_string(dt)),
            c);
    }
  }
  // Padded batches and varlen with empty and short sequences.
  {
    auto c = small(90, Dtype::f16);
    c.batch = 3;
    b.add("padded_batch3_fp16", c);
    auto v = varlen({5, 0, 64, 129, 31}, -1, Dtype::f32);
    b.add("varlen_mixed_fp32", v);
    auto s = small(400, Dtype::bf16);
    s.t_q = 1;
    s.batch = 2;
    b.add("decode_t_q_1_bf16", s);
  }
  // Other knobs (profile custom), branch subsets, separate K/V, regimes, given indices.
  {
    using namespace nsa::ref;
    auto knob = [&](const std::string& what, auto set, Regime r = Regime::typical) {
      auto c = small(160, Dtype::f32);
      c.profile = "custom";
      set(c);
      b.add(what, c, r);
    };
    knob("strict_visibility", [](Config& c) { c.cmp_visibility = CmpVisibility::strict; });
    knob("paper_eq9_mapping", [](Config& c) { c.score_mapping = ScoreMapping::paper_eq9; });
    knob("identity_mapping", [](Config& c) {
      c.score_mapping = ScoreMapping::identity;
      c.cmp_block = c.cmp_stride = c.slc_block = 32;
    });
    knob("group_reduce_mean", [](Config& c) { c.group_reduce = GroupReduce::mean; });
    knob("forced_score_one", [](Config& c) { c.forced_mode = ForcedMode::score_one; });
    knob(
        "ties_lower_first", [](Config&) {}, Regime::ties);
    knob(
        "ties_higher_first", [](Config& c) { c.tie_break = TieBreak::higher_index_first; },
        Regime::ties);
    knob("slc_causal_none", [](Config& c) { c.slc_causal = SlcCausal::none; });
    knob(
        "peaked", [](Config&) {}, Regime::peaked);
    knob(
        "extreme_values", [](Config& c) { c.dtype = Dtype::f16; }, Regime::extreme);
    knob("cmp_only", [](Config& c) {
      c.enable_slc = false;
      c.enable_win = false;
    });
    knob("slc_only", [](Config& c) {
      c.enable_cmp = false;
      c.enable_win = false;
    });
    knob("given_indices_strict", [](Config& c) { c.given_indices = true; });
    knob("given_indices_bf16", [](Config& c) {
      c.given_indices = true;
      c.dtype = Dtype::bf16;
    });
    knob("scale_0_5", [](Config& c) { c.scale = 0.5; });
    knob("blocks_64_32_128", [](Config& c) {
      c.cmp_block = 64;
      c.cmp_stride = 32;
      c.slc_block = 128;
    });
    // Given lists with duplicates, -1 anywhere, negative, future and out-of-range entries under
    // both lenient policies (a strict list would be refused): the skipping and the repeated
    // listing of the same keys are part of the committed truth.
    for (auto policy : {IndexPolicy::skip_invalid, IndexPolicy::multiset}) {
      auto c = small(160, policy == IndexPolicy::multiset ? Dtype::bf16 : Dtype::f32);
      c.profile = "custom";
      c.given_indices = true;
      c.index_policy = policy;
      c.top_n = 8;
      c.shared_kv = true;  // one K/V stored: keeps the file small
      b.add("given_indices_adversarial_" + std::string(to_string(policy)), c, Regime::typical,
            true);
    }
  }
  // The backward over long sequences (the two length sweeps above are forward only): keys far
  // before the queries receive gradients through the compressed blocks alone; separate K/V per
  // branch.
  {
    auto c = varlen({1025, 2049}, 3, Dtype::f32);
    c.top_n = 6;
    c.window = 512;
    b.add("backward_long_suffix3_fp32", c);
  }
  // A given compressed cache (cmp_given): decode rows of a varlen batch reading k~/v~ instead of
  // running phi (an empty sequence, one shorter than l, T_q = 1 and 4); and the selection's scores
  // alone reading the cache (compression branch off) under shared K/V. The gradient of k~/v~ is
  // stored instead of K_cmp's and phi's.
  {
    auto c = varlen({0, 21, 300, 700}, 1, Dtype::bf16);
    c.cu_seqlens_q = {0, 0, 1, 2, 6};
    c.h_q = 4;
    c.h_kv = 2;
    c.cmp_given = true;
    b.add("cmp_given_decode_varlen_bf16", c);
  }
  {
    auto c = small(260, Dtype::f16);
    c.t_q = 40;
    c.cmp_given = true;
    c.enable_cmp = false;
    c.shared_kv = true;
    b.add("cmp_given_scores_only_shared_fp16", c);
  }
  return b.take();
}

// Three cases per profile (bf16, fp16, fp32; the last varlen with an empty sequence), with more
// candidate blocks than forced ones so that the ranking decides (n > n_init + n_local), and
// a fourth: for fla, parallel_nsa's rounding of n to a power of two; for nsa_triton, given index
// lists holding -1 (read as block 0 by its HEAD code).
std::vector<CaseSpec> profile_suite(const std::string& profile) {
  Builder b(profile == "fla" ? 3000 : 4000);
  const Dtype dts[] = {Dtype::bf16, Dtype::f16, Dtype::f32};
  const bool fla = profile == "fla";
  for (int i = 0; i < 3; ++i) {
    Config c;
    nsa::ref::apply_profile(c, profile);
    c.dtype = dts[i];
    c.h_kv = 1;
    c.d_k = c.d_v = 32;
    if (fla) {
      c.h_q = 16;  // fla's group size is a power of two >= 16
      c.t_k = 200 + 56 * i;
      c.t_q = 48;
      c.cmp_block = c.cmp_stride = c.slc_block = i == 0 ? 16 : 32;  // 13 and 8 blocks
      c.top_n = 5;                                                  // 2 ranked slots
      c.window = 64;
    } else {
      c.h_q = 4;
      c.t_k = 300 + 50 * i;  // 5-6 selection blocks of 64
      c.t_q = 64;
      c.top_n = 5;
      c.window = 64;
      if (i == 1) c.phi = Phi::linear;  // phi_v_pos is 0 under this profile
    }
    if (i == 2) {
      c = varlen({0, 70, 229}, fla ? 24 : 40, dts[i]);
      nsa::ref::apply_profile(c, profile);
      c.h_q = fla ? 16 : 4;
      c.d_k = c.d_v = 32;
      c.top_n = 4;
      c.window = 64;
      if (fla) c.cmp_block = c.cmp_stride = c.slc_block = 32;
    }
    b.add(profile + "_" + std::string(nsa::ref::to_string(dts[i])), c);
  }
  if (fla) {
    // parallel_nsa given an integer block_counts keeps next_power_of_2(n) blocks: n = 5 -> 8 of
    // 16 blocks of 16, 5 of them ranked.
    Config c;
    nsa::ref::apply_profile(c, profile);
    c.topn_rounding = nsa::ref::TopnRounding::next_power_of_two;
    c.dtype = Dtype::bf16;
    c.h_kv = 1;
    c.h_q = 16;
    c.d_k = c.d_v = 32;
    c.t_k = 260;
    c.t_q = 48;
    c.cmp_block = c.cmp_stride = c.slc_block = 16;
    c.top_n = 5;
    c.window = 64;
    b.add("fla_parallel_nsa_topn_rounded_bf16", c);
  } else {
    Config c;
    nsa::ref::apply_profile(c, profile);
    c.dtype = Dtype::bf16;
    c.h_q = 4;
    c.h_kv = 2;
    c.d_k = c.d_v = 32;
    c.t_k = 300;
    c.t_q = 64;
    c.top_n = 4;
    c.window = 64;
    c.given_indices = true;  // generated lists: distinct candidates in random slots, -1 elsewhere
    b.add(profile + "_given_indices_negative_to_zero", c);
  }
  return b.take();
}

std::vector<CaseSpec> paper() {
  Builder b(5000);
  Config c;
  c.t_k = 3000;
  c.h_q = 64;
  c.h_kv = 4;
  c.d_k = 192;
  c.d_v = 128;
  c.top_n = 16;
  c.window = 512;
  c.dtype = Dtype::bf16;
  c.phi = Phi::mlp;
  c.phi_hidden = 64;
  b.add("paper_shape_bf16", c);
  return b.take();
}

}  // namespace

const std::vector<SuiteInfo>& suites() {
  static const std::vector<SuiteInfo> list = {
      {"smoke", "six small cases, seconds", true},
      {"canonical", "covering sweep of lengths, groups, dims, n, w, dtypes, phi, knobs", true},
      {"fla", "profile fla (flash-linear-attention)", true},
      {"nsa_triton", "profile nsa_triton (native-sparse-attention-triton)", true},
      {"paper", "the paper's shape (64 heads, d 192/128) at 3000 tokens; not committed", false},
  };
  return list;
}

std::vector<CaseSpec> suite_cases(const std::string& name) {
  if (name == "smoke") return smoke();
  if (name == "canonical") return canonical();
  if (name == "fla" || name == "nsa_triton") return profile_suite(name);
  if (name == "paper") return paper();
  throw std::invalid_argument("unknown suite '" + name +
                              "' (one of smoke|canonical|fla|nsa_triton|paper)");
}

}  // namespace nsa::golden
