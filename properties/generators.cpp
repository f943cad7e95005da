// The generators of generators.hpp. Draws go through rc::gen::exec so that every choice shrinks
// on its own; element lists start with the simplest value, which is where shrinking ends.
#include "generators.hpp"

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

namespace nsa::props {

using nsa::ref::Config;

void showValue(const Case& c, std::ostream& os) {
  os << nsa::ref::describe(c.cfg) << "\n  seed=" << c.seed
     << " regime=" << nsa::ref::to_string(c.regime);
}

void make_custom(Config& cfg) { cfg.profile = "custom"; }

rc::Gen<int64_t> gen_length(int64_t l, int64_t d, int64_t l_sel, int64_t cap) {
  return rc::gen::exec([=]() -> int64_t {
    const int kind = *rc::gen::weightedElement<int>({{4, 0}, {4, 1}, {2, 2}, {3, 3}, {1, 4}});
    const int64_t delta = *rc::gen::element<int64_t>(0, -1, 1);
    int64_t len = 0;
    switch (kind) {
      case 0:  // selection-block boundary
        len = *rc::gen::inRange<int64_t>(1, std::max<int64_t>(2, cap / l_sel + 1)) * l_sel + delta;
        break;
      case 1:  // compression-block boundary: the last token of block k
        len =
            l + *rc::gen::inRange<int64_t>(0, std::max<int64_t>(1, (cap - l) / d + 1)) * d + delta;
        break;
      case 2:  // shorter than a compression block
        len = *rc::gen::inRange<int64_t>(0, l);
        break;
      case 3:
        len = *rc::gen::inRange<int64_t>(0, cap + 1);
        break;
      default:
        len = 0;
    }
    return std::clamp<int64_t>(len, 0, cap);
  });
}

namespace {

template <class E>
E pick(std::initializer_list<E> values) {
  return *rc::gen::elementOf(std::vector<E>(values));
}

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

void draw_phi(Config& cfg, bool allow_mlp) {
  using namespace nsa::ref;
  cfg.phi = allow_mlp ? pick({Phi::mean, Phi::linear, Phi::mlp}) : pick({Phi::mean, Phi::linear});
  cfg.phi_hidden = 0;
  if (cfg.phi == Phi::mlp) {
    cfg.phi_hidden = *rc::gen::inRange<int64_t>(1, 9);
    cfg.phi_act = pick({Activation::relu, Activation::silu});
  }
}

void draw_layout(Config& cfg, int64_t cap) {
  using namespace nsa::ref;
  const auto len = gen_length(cfg.cmp_block, cfg.cmp_stride, cfg.slc_block, cap);
  if (*rc::gen::weightedElement<int>({{3, 0}, {2, 1}}) == 0) {
    cfg.layout = Layout::padded;
    cfg.batch = *rc::gen::inRange<int64_t>(1, 3);
    cfg.t_k = *len;
    const int q_kind = *rc::gen::weightedElement<int>({{3, 0}, {1, 1}, {1, 2}});
    cfg.t_q = q_kind == 0   ? cfg.t_k
              : q_kind == 1 ? std::min<int64_t>(1, cfg.t_k)
                            : *rc::gen::inRange<int64_t>(0, cfg.t_k + 1);
    return;
  }
  cfg.layout = Layout::varlen;
  cfg.t_k = 0;
  cfg.t_q = -1;
  const int64_t b = *rc::gen::inRange<int64_t>(1, 5);
  cfg.cu_seqlens_k = {0};
  cfg.cu_seqlens_q = {0};
  const bool all_queries = *rc::gen::weightedElement<int>({{2, 1}, {1, 0}}) == 1;
  for (int64_t i = 0; i < b; ++i) {
    const int64_t tk = *len;
    const int64_t tq = all_queries ? tk : *rc::gen::inRange<int64_t>(0, tk + 1);
    cfg.cu_seqlens_k.push_back(cfg.cu_seqlens_k.back() + tk);
    cfg.cu_seqlens_q.push_back(cfg.cu_seqlens_q.back() + tq);
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
        draw_phi(cfg, true);
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
        const int64_t group =
            std::min(opt.max_group,
                     *rc::gen::weightedElement<int64_t>(
                         {{4, 1}, {3, 2}, {2, 3}, {3, 4}, {2, 8}, {1, 16}, {1, 32}, {1, 64}}));
        if (group * cfg.h_kv > 16) cfg.h_kv = 1;
        cfg.h_q = group * cfg.h_kv;
        cfg.d_k = pick<int64_t>({4, 1, 2, 3, 8, 16});
        cfg.d_v = *rc::gen::weightedElement<int64_t>({{3, cfg.d_k}, {1, 1}, {1, 5}, {1, 16}});
        if (opt.allow_scale && *rc::gen::weightedElement<int>({{5, 0}, {1, 1}}) == 1)
          cfg.scale = pick<double>({0.5, 2.0, 0.125});

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
            1, cfg.n_init + cfg.n_local + *rc::gen::inRange<int64_t>(0, n_blocks + 3));
        cfg.window = *rc::gen::weightedElement<int>({{3, 0}, {1, 1}}) == 0
                         ? *rc::gen::inRange<int64_t>(1, std::max<int64_t>(2, max_len + 2))
                         : max_len + *rc::gen::inRange<int64_t>(1, 64);

        cfg.dtype = pick({Dtype::f32, Dtype::f16, Dtype::bf16, Dtype::f64});
        cfg.shared_kv = *rc::gen::arbitrary<bool>();
        if (*rc::gen::weightedElement<int>({{3, 0}, {1, 1}}) == 1) {
          const int mask = *rc::gen::inRange(1, 8);
          cfg.enable_cmp = mask & 1;
          cfg.enable_slc = mask & 2;
          cfg.enable_win = mask & 4;
        }
        cfg.given_indices =
            opt.allow_given_indices && *rc::gen::weightedElement<int>({{3, 0}, {1, 1}});

        c.seed = *rc::gen::inRange<uint64_t>(0, uint64_t{1} << 32);
        c.regime = pick({Regime::typical, Regime::ties, Regime::peaked, Regime::extreme});
        validate(cfg);  // a generator bug shows up here as a failing case, with the config printed
        return c;
      }));
}

}  // namespace nsa::props
