#include "case_gen.hpp"

#include <algorithm>
#include <array>
#include <set>
#include <stdexcept>

namespace nsa::fuzz {

using namespace nsa::ref;

namespace {

// A stream of random choices from the project's counter-based generator.
class Draw {
 public:
  Draw(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {}
  uint64_t bits() { return random_bits(seed_, stream_, counter_++); }
  int64_t range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(bits() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool chance(double p) { return random_unit(seed_, stream_, counter_++) < p; }
  template <class T, std::size_t N>
  T pick(const std::array<T, N>& xs) {
    return xs[static_cast<std::size_t>(range(0, static_cast<int64_t>(N) - 1))];
  }

 private:
  uint64_t seed_, stream_, counter_ = 0;
};

// A sequence length near an edge of the config: at a block boundary (+-1), below l, tiny, or
// anywhere up to the limit.
int64_t draw_length(Draw& r, const Config& c, int64_t max_tokens) {
  int64_t t = 0;
  switch (r.range(0, 5)) {
    case 0:
      t = r.range(0, std::max<int64_t>(0, c.cmp_block - 1));  // below l: nothing compressed
      break;
    case 1:
    case 2: {
      const std::array<int64_t, 5> units{c.cmp_block, c.slc_block, c.cmp_stride, c.window, 64};
      const int64_t unit = std::max<int64_t>(1, r.pick(units));
      t = unit * r.range(1, std::max<int64_t>(1, std::min<int64_t>(12, max_tokens / unit))) +
          r.range(-1, 1);
      break;
    }
    case 3:
      t = r.range(0, 4);
      break;
    default:
      t = r.range(0, max_tokens);
      break;
  }
  return std::clamp<int64_t>(t, 0, max_tokens);
}

Config draw_config(Draw& r, const DrawLimits& lim) {
  Config c;
  const int64_t which_profile = r.range(0, 9);
  c.profile = which_profile < 5   ? "canonical"
              : which_profile < 6 ? "fla"
              : which_profile < 7 ? "nsa_triton"
                                  : "custom";
  if (c.profile != "custom") apply_profile(c, c.profile);

  // Heads: G = 1 and large G often; the paper's head dims often.
  const std::array<int64_t, 7> groups{1, 1, 2, 4, 8, 16, 64};
  const int64_t g = std::min(lim.max_group, r.pick(groups));
  c.h_kv = r.chance(0.7) ? 1 : r.range(2, 4);
  c.h_q = c.h_kv * g;
  const std::array<std::array<int64_t, 2>, 8> dims{
      {{192, 128}, {128, 128}, {64, 64}, {256, 256}, {32, 32}, {16, 8}, {96, 40}, {1, 1}}};
  auto d = r.pick(dims);
  if (r.chance(0.15)) d = {r.range(1, lim.max_head_dim), r.range(1, lim.max_head_dim)};
  c.d_k = std::min(d[0], lim.max_head_dim);
  c.d_v = std::min(d[1], lim.max_head_dim);

  // Blocks: the paper's l = 32, d = 16, l' = 64 half the time (fla fixes its own).
  if (c.profile != "fla") {
    if (r.chance(0.5)) {
      c.cmp_block = 32;
      c.cmp_stride = 16;
      c.slc_block = 64;
    } else {
      const std::array<int64_t, 5> strides{1, 4, 8, 16, 32};
      c.cmp_stride = r.pick(strides);
      c.cmp_block = c.cmp_stride * r.pick(std::array<int64_t, 3>{1, 2, 4});
      c.slc_block = c.cmp_stride * r.pick(std::array<int64_t, 4>{1, 2, 4, 8});
    }
  } else if (r.chance(0.5)) {
    c.cmp_block = c.cmp_stride = c.slc_block = r.pick(std::array<int64_t, 3>{16, 32, 64});
  }

  if (c.profile == "custom") {
    c.cmp_visibility = r.chance(0.5) ? CmpVisibility::inclusive : CmpVisibility::strict;
    c.score_mapping = r.chance(0.5) ? ScoreMapping::overlap : ScoreMapping::paper_eq9;
    c.group_reduce = r.chance(0.5) ? GroupReduce::sum : GroupReduce::mean;
    c.forced_mode = r.chance(0.5) ? ForcedMode::always : ForcedMode::score_one;
    c.tie_break = r.chance(0.5) ? TieBreak::lower_index_first : TieBreak::higher_index_first;
    c.slc_causal = r.chance(0.5) ? SlcCausal::token : SlcCausal::none;
    c.window_keys = r.chance(0.5) ? WindowKeys::w : WindowKeys::w_plus_one;
    c.index_policy = static_cast<IndexPolicy>(r.range(0, 2));
    c.n_init = r.range(0, 2);
    c.n_local = r.range(0, 3);
    if (c.cmp_block == c.cmp_stride && c.cmp_stride == c.slc_block && r.chance(0.3))
      c.score_mapping = ScoreMapping::identity;
  }

  c.window = r.pick(std::array<int64_t, 6>{1, 1, 7, 64, 512, 4096});
  c.dtype = r.pick(std::array<Dtype, 4>{Dtype::bf16, Dtype::f16, Dtype::f32, Dtype::bf16});
  if (lim.allow_fp64 && r.chance(0.1)) c.dtype = Dtype::f64;

  // Layout: padded batches and varlen batches with empty sequences.
  if (r.chance(0.35)) {
    c.layout = Layout::varlen;
    c.t_k = 0;
    c.t_q = -1;
    const int64_t b = r.range(1, 5);
    const bool own_q = r.chance(0.4);
    c.cu_seqlens_k = {0};
    if (own_q) c.cu_seqlens_q = {0};
    const int64_t per_seq = std::max<int64_t>(1, lim.max_tokens / b);
    for (int64_t i = 0; i < b; ++i) {
      const int64_t lk = r.chance(0.25) ? 0 : draw_length(r, c, per_seq);
      c.cu_seqlens_k.push_back(c.cu_seqlens_k.back() + lk);
      if (own_q)
        c.cu_seqlens_q.push_back(c.cu_seqlens_q.back() +
                                 (r.chance(0.5) ? std::min<int64_t>(1, lk) : r.range(0, lk)));
    }
  } else {
    c.batch = r.chance(0.7) ? 1 : r.range(2, 3);
    c.t_k = draw_length(r, c, lim.max_tokens / c.batch);
    c.t_q = r.chance(0.15) ? std::min<int64_t>(1, c.t_k) : r.chance(0.2) ? r.range(0, c.t_k) : -1;
  }

  // n: the forced minimum, the paper's 16, or beyond the number of selection blocks.
  const int64_t forced = c.n_init + c.n_local;
  const int64_t longest = c.layout == Layout::padded ? c.t_k : [&] {
    int64_t m = 0;
    for (std::size_t i = 1; i < c.cu_seqlens_k.size(); ++i)
      m = std::max(m, c.cu_seqlens_k[i] - c.cu_seqlens_k[i - 1]);
    return m;
  }();
  const int64_t blocks = (longest + c.slc_block - 1) / c.slc_block;
  switch (r.range(0, 3)) {
    case 0:
      c.top_n = std::max<int64_t>(1, forced);
      break;
    case 1:
      c.top_n = std::max<int64_t>(forced, 16);
      break;
    case 2:
      c.top_n = std::max<int64_t>(std::max<int64_t>(1, forced), blocks + r.range(0, 3));
      break;
    default:
      c.top_n = std::max<int64_t>(std::max<int64_t>(1, forced), r.range(1, 8));
      break;
  }

  // Branches, compression function, shared K/V.
  if (r.chance(0.3)) {
    do {
      c.enable_cmp = r.chance(0.5);
      c.enable_slc = r.chance(0.5);
      c.enable_win = r.chance(0.5);
    } while (!c.enable_cmp && !c.enable_slc && !c.enable_win);
  }
  if (c.profile != "fla") {
    const int64_t phi = r.range(0, 9);
    if (phi >= 6) c.phi = Phi::linear;
    if (phi >= 8 && c.profile != "nsa_triton") {
      c.phi = Phi::mlp;
      c.phi_hidden = r.pick(std::array<int64_t, 3>{1, 16, 64});
      c.phi_act = r.chance(0.5) ? Activation::relu : Activation::silu;
    }
    // Linear/mlp parameters grow as l * D * D: keep them to a few million elements.
    if (c.phi != Phi::mean &&
        c.cmp_block * std::max(c.d_k, c.d_v) * std::max(c.d_k, c.d_v) > (int64_t{1} << 21)) {
      c.phi = Phi::mean;
      c.phi_hidden = 0;
    }
  }
  c.shared_kv = r.chance(0.2);
  if (r.chance(0.25)) c.given_indices = true;
  return c;
}

}  // namespace

DrawLimits gpu_limits() { return {}; }

DrawLimits cpu_limits() {
  DrawLimits l;
  l.max_tokens = 160;
  l.max_head_dim = 32;
  l.max_group = 8;
  l.allow_fp64 = true;
  return l;
}

FuzzCase draw_case(uint64_t run_seed, int64_t index, const DrawLimits& limits,
                   const std::function<bool(const ValidConfig&)>& accept) {
  std::string last_error;
  for (int attempt = 0; attempt < 64; ++attempt) {
    Draw r(run_seed, 0x6675'7a7a'0000'0000ULL + static_cast<uint64_t>(index) * 64 +
                         static_cast<uint64_t>(attempt));
    Config c = draw_config(r, limits);
    FuzzCase fc;
    fc.run_seed = run_seed;
    fc.index = index;
    fc.attempts = attempt + 1;
    fc.input_seed = r.bits();
    fc.regime = static_cast<Regime>(r.range(0, 3));
    if (c.given_indices && r.chance(0.6)) {
      fc.adversarial_indices = true;
      c.index_policy = IndexPolicy::multiset;
      if (c.profile != "fla") c.profile = "custom";
    }
    fc.cfg = c;
    try {
      fc.vc = validate(c);
    } catch (const ConfigError& e) {
      last_error = e.what();
      continue;
    }
    if (!accept || accept(fc.vc)) return fc;
    last_error = "rejected by the acceptance filter: " + describe(c);
  }
  throw std::runtime_error("nsa fuzz: no acceptable case in 64 draws for seed " +
                           std::to_string(run_seed) + " case " + std::to_string(index) +
                           " (last: " + last_error + ")");
}

Inputs case_inputs(const FuzzCase& fc) {
  Inputs in = generate_inputs(fc.vc, fc.input_seed, fc.regime);
  if (fc.adversarial_indices) in.indices = generate_indices(fc.vc, fc.input_seed, true);
  return in;
}

namespace {

// Keeps an even spread of at most `limit` of the sorted `picked` (many sequences' edges).
std::vector<int64_t> thin_out(const std::set<int64_t>& picked, int64_t limit) {
  std::vector<int64_t> all(picked.begin(), picked.end());
  if (static_cast<int64_t>(all.size()) <= limit) return all;
  std::vector<int64_t> thin;
  for (int64_t i = 0; i < limit; ++i)
    thin.push_back(all[static_cast<std::size_t>(i * static_cast<int64_t>(all.size()) / limit)]);
  return thin;
}

}  // namespace

std::vector<int64_t> check_rows(const FuzzCase& fc, int64_t max_rows) {
  const auto& vc = fc.vc;
  std::vector<int64_t> all;
  if (vc.total_q <= max_rows) {
    for (int64_t r = 0; r < vc.total_q; ++r) all.push_back(r);
    return all;
  }
  std::set<int64_t> rows;
  const auto& c = vc.cfg;
  for (const auto& s : vc.seqs) {
    if (s.t_q == 0) continue;
    auto add_pos = [&](int64_t t) {  // key position t -> its query row, if it is a query
      const int64_t i = t - (s.t_k - s.t_q);
      if (i >= 0 && i < s.t_q) rows.insert(s.q_begin + i);
    };
    rows.insert(s.q_begin);
    rows.insert(s.q_begin + s.t_q - 1);
    for (int64_t unit : {c.slc_block, c.cmp_block, c.window}) {
      for (int64_t k = 1; k <= 3; ++k) {
        add_pos(k * unit - 1);
        add_pos(k * unit);
      }
    }
  }
  Draw r(fc.run_seed, 0x726f'7773'0000'0000ULL + static_cast<uint64_t>(fc.index));
  while (static_cast<int64_t>(rows.size()) < max_rows) rows.insert(r.range(0, vc.total_q - 1));
  return thin_out(rows, max_rows);  // more edge rows than the budget: an even spread of them
}

std::vector<int64_t> check_keys(const FuzzCase& fc, int64_t max_keys) {
  const auto& vc = fc.vc;
  std::set<int64_t> keys;
  if (vc.total_k <= max_keys) {
    for (int64_t k = 0; k < vc.total_k; ++k) keys.insert(k);
    return {keys.begin(), keys.end()};
  }
  const auto& c = vc.cfg;
  for (const auto& s : vc.seqs) {
    auto add = [&](int64_t u) {
      if (u >= 0 && u < s.t_k) keys.insert(s.k_begin + u);
    };
    add(0);
    add(s.t_k - 1);
    // Keys at block edges (a token in two overlapping compressed blocks, a selection block's
    // first and last keys) and where the last queries' windows begin.
    for (int64_t unit : {c.cmp_stride, c.cmp_block, c.slc_block}) {
      add(unit - 1);
      add(unit);
    }
    add(s.t_k - c.window - 1);
    add(s.t_k - c.window);
  }
  Draw r(fc.run_seed, 0x6b65'7973'0000'0000ULL + static_cast<uint64_t>(fc.index));
  while (static_cast<int64_t>(keys.size()) < max_keys) keys.insert(r.range(0, vc.total_k - 1));
  return thin_out(keys, max_keys);
}

std::string case_summary(const FuzzCase& fc) {
  return "seed " + std::to_string(fc.run_seed) + " case " + std::to_string(fc.index) + " regime " +
         to_string(fc.regime) + (fc.adversarial_indices ? " adversarial-indices" : "") + ": " +
         describe(fc.vc.cfg);
}

}  // namespace nsa::fuzz
