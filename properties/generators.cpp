// The generators of generators.hpp. Draws go through rc::gen::exec so that every choice shrinks
// on its own; element lists start with the simplest value, which is where shrinking ends.
#include "generators.hpp"

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include "nsa/ref/profiles.hpp"

namespace nsa::props {

using nsa::ref::Config;

void showValue(const Case& c, std::ostream& os) {
  os << nsa::ref::describe(c.cfg) << "\n  seed=" << c.seed
     << " regime=" << nsa::ref::to_string(c.regime);
}

void make_custom(Config& cfg) { cfg.profile = "custom"; }

namespace {

// RapidCheck's element/weightedElement do not shrink; these draw an index with inRange, which
// shrinks toward 0, so a choice shrinks toward the first (simplest) value of its list.
template <class E>
E pick(std::initializer_list<E> values) {
  const auto i = *rc::gen::inRange<std::size_t>(0, values.size());
  return *(values.begin() + i);
}

template <class E>
E weighted(std::initializer_list<std::pair<int, E>> choices) {
  int total = 0;
  for (const auto& c : choices) total += c.first;
  int r = *rc::gen::inRange<int>(0, total);
  for (const auto& c : choices) {
    if (r < c.first) return c.second;
    r -= c.first;
  }
  return choices.begin()->second;
}

}  // namespace

double draw_fraction() {
  constexpr int64_t kSteps = int64_t{1} << 20;
  return static_cast<double>(*rc::gen::inRange<int64_t>(0, kSteps)) / static_cast<double>(kSteps);
}

int64_t scale_to(double f, int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  return std::min(hi, lo + static_cast<int64_t>(f * static_cast<double>(hi - lo + 1)));
}

LengthDraw draw_length() {
  LengthDraw d;
  d.kind = weighted<int>({{4, 0}, {4, 1}, {2, 2}, {3, 3}, {1, 4}});
  d.delta = pick<int64_t>({0, -1, 1});
  d.f = draw_fraction();
  return d;
}

int64_t length_of(const LengthDraw& d, int64_t l, int64_t stride, int64_t l_sel, int64_t cap) {
  int64_t len = 0;
  switch (d.kind) {
    case 0:  // selection-block boundary: k*l' - 1, k*l', k*l' + 1
      len = scale_to(d.f, 1, std::max<int64_t>(1, cap / l_sel)) * l_sel + d.delta;
      break;
    case 1:  // compression-block boundary: the last token of block k, and one either side
      len = l + scale_to(d.f, 0, std::max<int64_t>(0, (cap - l) / stride)) * stride + d.delta;
      break;
    case 2:  // shorter than a compression block
      len = scale_to(d.f, 0, l - 1);
      break;
    case 3:
      len = scale_to(d.f, 0, cap);
      break;
    default:
      len = 0;
  }
  return std::clamp<int64_t>(len, 0, cap);
}

namespace {

// Block sizes: d first, then l and l' as multiples of d. fla fixes l = d = l'.
void draw_blocks(Config& cfg, bool identity_only) {
  if (identity_only) {
    const int64_t b = pick<int64_t>({4, 8, 2, 16, 1, 3, 64});
    cfg.cmp_block = cfg.cmp_stride = cfg.slc_block = b;
    return;
  }
  cfg.cmp_stride = pick<int64_t>({4, 2, 1, 8, 16, 3});
  cfg.cmp_block = cfg.cmp_stride * pick<int64_t>({2, 1, 4, 3});
  cfg.slc_block = cfg.cmp_stride * pick<int64_t>({2, 1, 4, 3});
  while (cfg.slc_block > 64) cfg.slc_block -= cfg.cmp_stride;
  while (cfg.cmp_block > 64) cfg.cmp_block -= cfg.cmp_stride;
}

void draw_knobs(Config& cfg) {
  using namespace nsa::ref;
  cfg.cmp_visibility = pick({CmpVisibility::inclusive, CmpVisibility::strict});
  const bool id_ok = cfg.cmp_block == cfg.cmp_stride && cfg.cmp_stride == cfg.slc_block;
  cfg.score_mapping =
      id_ok ? pick({ScoreMapping::overlap, ScoreMapping::paper_eq9, ScoreMapping::identity})
            : pick({ScoreMapping::overlap, ScoreMapping::paper_eq9});
  cfg.group_reduce = pick({GroupReduce::sum, GroupReduce::mean});
  cfg.forced_mode = pick({ForcedMode::always, ForcedMode::score_one});
  cfg.tie_break = pick({TieBreak::lower_index_first, TieBreak::higher_index_first});
  cfg.slc_causal = pick({SlcCausal::token, SlcCausal::none});
  cfg.index_policy = pick({IndexPolicy::strict, IndexPolicy::skip_invalid, IndexPolicy::multiset});
  cfg.window_keys = pick({WindowKeys::w, WindowKeys::w_plus_one});
  cfg.n_init = *rc::gen::inRange<int64_t>(0, 3);
  cfg.n_local = *rc::gen::inRange<int64_t>(0, 4);
}

void draw_phi(Config& cfg) {
  using namespace nsa::ref;
  cfg.phi = pick({Phi::mean, Phi::linear, Phi::mlp});
  const int64_t hidden = *rc::gen::inRange<int64_t>(1, 9);
  cfg.phi_act = pick({Activation::relu, Activation::silu});
  cfg.phi_hidden = cfg.phi == Phi::mlp ? hidden : 0;
}

// Draws four sequences' worth of lengths whatever the layout, so that shrinking the layout or
// the batch keeps the other draws.
void draw_layout(Config& cfg, int64_t cap) {
  using namespace nsa::ref;
  const bool padded = weighted<int>({{3, 0}, {2, 1}}) == 0;
  const int64_t batch = *rc::gen::inRange<int64_t>(1, 3);
  const int64_t seqs = *rc::gen::inRange<int64_t>(1, 5);
  const int q_kind = weighted<int>({{3, 0}, {1, 1}, {1, 2}});
  std::vector<LengthDraw> lens;
  std::vector<double> q_frac;
  for (int i = 0; i < 4; ++i) {
    lens.push_back(draw_length());
    q_frac.push_back(draw_fraction());
  }
  auto len = [&](int i) {
    return length_of(lens[static_cast<std::size_t>(i)], cfg.cmp_block, cfg.cmp_stride,
                     cfg.slc_block, cap);
  };
  auto queries = [&](int i, int64_t tk) {
    return q_kind == 0   ? tk
           : q_kind == 1 ? std::min<int64_t>(1, tk)
                         : scale_to(q_frac[static_cast<std::size_t>(i)], 0, tk);
  };
  if (padded) {
    cfg.layout = Layout::padded;
    cfg.batch = batch;
    cfg.t_k = len(0);
    cfg.t_q = queries(0, cfg.t_k);
    return;
  }
  cfg.layout = Layout::varlen;
  cfg.t_k = 0;
  cfg.t_q = -1;
  cfg.cu_seqlens_k = {0};
  cfg.cu_seqlens_q = {0};
  for (int i = 0; i < seqs; ++i) {
    const int64_t tk = len(i);
    cfg.cu_seqlens_k.push_back(cfg.cu_seqlens_k.back() + tk);
    cfg.cu_seqlens_q.push_back(cfg.cu_seqlens_q.back() + queries(i, tk));
  }
}

}  // namespace

rc::Gen<Case> gen_case(GenOptions opt) {
  // RapidCheck's inRange narrows its range with the test size; the limits in opt are the
  // intended ranges, so the size is pinned at its nominal 100 (shrinking still works).
  return rc::gen::resize(
      100, rc::gen::exec([opt]() {
        using namespace nsa::ref;
        Case c;
        Config& cfg = c.cfg;
        // Every case makes the same draws in the same order whatever the profile, so that shrinking
        // one choice (say the profile) leaves the others in place.
        const std::string profile =
            opt.allow_profiles ? pick<std::string>({"custom", "canonical", "fla", "nsa_triton"})
                               : std::string("custom");
        draw_blocks(cfg, false);
        Config same_blocks;
        draw_blocks(same_blocks, true);
        draw_phi(cfg);
        draw_knobs(cfg);
        cfg.profile = "custom";
        if (profile != "custom") {
          if (profile == "fla" || (profile == "nsa_triton" && cfg.phi == Phi::mlp)) {
            cfg.phi = Phi::mean;
            cfg.phi_hidden = 0;
          }
          apply_profile(cfg, profile);  // knobs, n_init/n_local (fla: also l = d = l' = 64)
          if (profile == "fla") {
            cfg.cmp_block = same_blocks.cmp_block;
            cfg.cmp_stride = same_blocks.cmp_stride;
            cfg.slc_block = same_blocks.slc_block;
          }
        }

        cfg.h_kv = *rc::gen::inRange<int64_t>(1, 4);
        // G weighted toward the common 1..8, up to 64 (clipped to max_group) now and then.
        const int64_t group = std::min(
            opt.max_group,
            weighted<int64_t>({{4, 1}, {3, 2}, {2, 3}, {3, 4}, {2, 8}, {1, 16}, {1, 32}, {1, 64}}));
        if (group * cfg.h_kv > 16) cfg.h_kv = 1;
        cfg.h_q = group * cfg.h_kv;
        cfg.d_k = pick<int64_t>({4, 1, 2, 3, 8, 16});
        const int64_t d_v = weighted<int64_t>({{3, 0}, {1, 1}, {1, 5}, {1, 16}});
        cfg.d_v = d_v == 0 ? cfg.d_k : d_v;
        const bool explicit_scale = weighted<int>({{5, 0}, {1, 1}}) == 1;
        const double scale = pick<double>({0.5, 2.0, 0.125});
        if (opt.allow_scale && explicit_scale) cfg.scale = scale;

        // Many heads: shorter sequences, so a case stays cheap.
        const int64_t cap = cfg.h_q > 32  ? std::max<int64_t>(8, opt.max_tokens / 4)
                            : cfg.h_q > 8 ? std::max<int64_t>(8, opt.max_tokens / 2)
                                          : opt.max_tokens;
        draw_layout(cfg, cap);
        int64_t max_len = cfg.t_k;
        for (std::size_t i = 1; i < cfg.cu_seqlens_k.size(); ++i)
          max_len = std::max(max_len, cfg.cu_seqlens_k[i] - cfg.cu_seqlens_k[i - 1]);
        const int64_t n_blocks = (max_len + cfg.slc_block - 1) / cfg.slc_block;
        cfg.top_n = std::max<int64_t>(
            1, cfg.n_init + cfg.n_local + scale_to(draw_fraction(), 0, n_blocks + 2));
        const bool wide_window = weighted<int>({{3, 0}, {1, 1}}) == 1;
        const double window_f = draw_fraction();
        cfg.window = wide_window ? max_len + 1 + scale_to(window_f, 0, 63)
                                 : scale_to(window_f, 1, std::max<int64_t>(1, max_len + 1));

        cfg.dtype = pick({Dtype::f32, Dtype::f16, Dtype::bf16, Dtype::f64});
        cfg.shared_kv = pick<bool>({false, true});
        const bool subset = weighted<int>({{3, 0}, {1, 1}}) == 1;
        const int mask = 7 - *rc::gen::inRange(0, 7);  // shrinks toward all branches
        if (subset) {
          cfg.enable_cmp = mask & 1;
          cfg.enable_slc = mask & 2;
          cfg.enable_win = mask & 4;
        }
        const bool given = weighted<int>({{3, 0}, {1, 1}}) == 1;
        cfg.given_indices = opt.allow_given_indices && given;

        c.seed = *rc::gen::inRange<uint64_t>(0, uint64_t{1} << 32);
        c.regime = pick({Regime::typical, Regime::ties, Regime::peaked, Regime::extreme});
        // A named profile also fixes what its implementation accepts (fla: G a power of two
        // >= 16, l = d = l' a power of two; nsa_triton: l in {16, 32, 64, 128}; both: the default
        // scale); a draw outside that keeps the profile's knobs under profile custom.
        try {
          nsa::ref::validate_profile(cfg);
        } catch (const nsa::ref::ConfigError&) {
          cfg.profile = "custom";
        }
        validate(cfg);  // a generator bug shows up here as a failing case, with the config printed
        return c;
      }));
}

}  // namespace nsa::props
