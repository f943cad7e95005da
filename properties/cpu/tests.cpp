// One Catch TEST_CASE per CPU property: the property's generator (gen_case mapped onto the
// property's precondition, still valid by construction) and the property from the table.
#include <catch2/catch.hpp>

#include "../harness.hpp"

namespace nsa::props {
namespace {

using nsa::ref::Config;

int64_t longest(const Config& c) {
  int64_t m = c.t_k;
  for (std::size_t i = 1; i < c.cu_seqlens_k.size(); ++i)
    m = std::max(m, c.cu_seqlens_k[i] - c.cu_seqlens_k[i - 1]);
  return m;
}

int64_t n_blocks(const Config& c) { return (longest(c) + c.slc_block - 1) / c.slc_block; }

// The selection branch computing its own indices.
void with_top_n(Config& c) {
  c.enable_slc = true;
  c.given_indices = false;
}

void with_token_mask(Config& c) {
  if (c.slc_causal != nsa::ref::SlcCausal::token) {
    make_custom(c);
    c.slc_causal = nsa::ref::SlcCausal::token;
  }
}

template <class F>
rc::Gen<Case> gen(GenOptions opt, F f) {
  return rc::gen::map(gen_case(opt), [f](Case c) {
    f(c.cfg);
    return c;
  });
}

// As gen, and a map of the whole case (its regime).
template <class F, class R>
rc::Gen<Case> gen(GenOptions opt, F f, R r) {
  return rc::gen::map(gen_case(opt), [f, r](Case c) {
    f(c.cfg);
    r(c);
    return c;
  });
}

// Expensive gradient properties run a share of the configured case count (check_property's
// cost): the finite differences run cpp_bin_float_50 forwards per perturbed element; linearity
// runs the dense oracle twice, full attention a long double attention per row and head, the
// head permutation the oracle once, the thread property three backwards.
constexpr int kFiniteDifferenceCost = 20;

// A padded batch as the same sequences packed.
void to_varlen(Config& c) {
  if (c.layout == nsa::ref::Layout::varlen) return;
  c.layout = nsa::ref::Layout::varlen;
  c.cu_seqlens_k = {0};
  c.cu_seqlens_q = {0};
  for (int64_t b = 0; b < c.batch; ++b) {
    c.cu_seqlens_k.push_back(c.cu_seqlens_k.back() + c.t_k);
    c.cu_seqlens_q.push_back(c.cu_seqlens_q.back() + c.t_q);
  }
  c.t_k = 0;
  c.t_q = -1;
}

GenOptions with_indices() {
  GenOptions o;
  o.allow_given_indices = true;
  return o;
}

}  // namespace

TEST_CASE("selection_all_blocks_is_full_attention", "[properties]") {
  check_property("selection_all_blocks_is_full_attention", gen({}, [](Config& c) {
                   with_top_n(c);
                   with_token_mask(c);
                   c.top_n = std::max(c.top_n, n_blocks(c)) + c.top_n % 3;
                 }));
}

TEST_CASE("window_wide_is_full_attention", "[properties]") {
  check_property("window_wide_is_full_attention", gen({}, [](Config& c) {
                   c.enable_win = true;
                   c.window = longest(c) + 1 + c.window % 5;
                 }));
}

TEST_CASE("window_is_attention_over_its_keys", "[properties]") {
  check_property("window_is_attention_over_its_keys",
                 gen({}, [](Config& c) { c.enable_win = true; }));
}

TEST_CASE("causality", "[properties]") {
  check_property("causality", gen(with_indices(), with_token_mask));
}

TEST_CASE("varlen_equals_separate_runs", "[properties]") {
  check_property("varlen_equals_separate_runs", gen(with_indices(), to_varlen));
}

TEST_CASE("query_heads_permute_within_group", "[properties]") {
  check_property("query_heads_permute_within_group", gen(with_indices(), [](Config&) {}));
}

TEST_CASE("kv_groups_permute", "[properties]") {
  check_property("kv_groups_permute", gen(with_indices(), [](Config&) {}));
}

TEST_CASE("affine_in_v", "[properties]") {
  check_property("affine_in_v",
                 gen(with_indices(), [](Config& c) { c.dtype = nsa::ref::Dtype::f64; }));
}

TEST_CASE("linear_in_gates", "[properties]") {
  check_property("linear_in_gates",
                 gen(with_indices(), [](Config& c) { c.dtype = nsa::ref::Dtype::f64; }));
}

TEST_CASE("mappings_agree_when_l_eq_d_eq_lsel", "[properties]") {
  check_property("mappings_agree_when_l_eq_d_eq_lsel", gen({}, [](Config& c) {
                   with_top_n(c);
                   make_custom(c);
                   c.cmp_block = c.slc_block = c.cmp_stride;
                 }));
}

TEST_CASE("sum_and_mean_reduce_select_same_blocks", "[properties]") {
  check_property("sum_and_mean_reduce_select_same_blocks", gen({}, [](Config& c) {
                   with_top_n(c);
                   make_custom(c);
                 }));
}

TEST_CASE("index_invariants", "[properties]") {
  check_property("index_invariants", gen({}, with_top_n));
}

TEST_CASE("linear_phi_identity_is_mean", "[properties]") {
  check_property("linear_phi_identity_is_mean", gen({}, [](Config& c) {
                   if (c.profile == "fla") make_custom(c);
                   c.phi = nsa::ref::Phi::linear;
                   c.phi_hidden = 0;
                   c.enable_cmp = true;
                   if ((c.cmp_block & (c.cmp_block - 1)) != 0) c.dtype = nsa::ref::Dtype::f64;
                 }));
}

TEST_CASE("f64_agrees_with_f128", "[properties]") {
  GenOptions o = with_indices();
  o.max_tokens = 48;
  check_property("f64_agrees_with_f128", gen(o, [](Config&) {}));
}

TEST_CASE("cmp_softmax_rows_and_lse", "[properties]") {
  check_property("cmp_softmax_rows_and_lse", gen({}, [](Config& c) { c.enable_cmp = true; }));
}

TEST_CASE("scores_follow_the_mapping", "[properties]") {
  check_property("scores_follow_the_mapping", gen({}, with_top_n));
}

// --- gradients (G1 .. G14) -------------------------------------------------------------------

TEST_CASE("grad_linear_in_do", "[properties]") {
  check_property("grad_linear_in_do",
                 gen(with_indices(), [](Config& c) { c.dtype = nsa::ref::Dtype::f64; }), 4);
}

TEST_CASE("grad_dg_is_do_dot_o_b", "[properties]") {
  check_property("grad_dg_is_do_dot_o_b", gen(with_indices(), [](Config&) {}));
}

TEST_CASE("grad_causality", "[properties]") {
  check_property("grad_causality", gen(with_indices(), [](Config&) {}));
}

TEST_CASE("grad_varlen_equals_separate_runs", "[properties]") {
  check_property("grad_varlen_equals_separate_runs", gen(with_indices(), to_varlen));
}

TEST_CASE("grad_full_attention", "[properties]") {
  check_property("grad_full_attention",
                 gen({},
                     [](Config& c) {
                       c.enable_cmp = false;
                       if (!c.enable_slc && !c.enable_win) c.enable_slc = true;
                       if (c.enable_slc) {
                         with_top_n(c);
                         with_token_mask(c);
                         c.top_n = std::max(c.top_n, n_blocks(c)) + c.top_n % 3;
                       }
                       if (c.enable_win) c.window = longest(c) + 1 + c.window % 5;
                     }),
                 2);
}

TEST_CASE("grad_query_heads_permute_within_group", "[properties]") {
  check_property("grad_query_heads_permute_within_group", gen(with_indices(), [](Config&) {}), 2);
}

TEST_CASE("grad_multiset_duplicates_equal_duplicated_keys", "[properties]") {
  check_property("grad_multiset_duplicates_equal_duplicated_keys",
                 gen(with_indices(), [](Config& c) {
                   make_custom(c);
                   if (c.layout == nsa::ref::Layout::varlen) c.t_q = -1;
                   c.layout = nsa::ref::Layout::padded;
                   c.cu_seqlens_k.clear();
                   c.cu_seqlens_q.clear();
                   c.batch = 1;
                   c.t_k = std::max(c.t_k, 2 * c.slc_block + c.t_k % c.slc_block);
                   c.enable_slc = true;
                   c.enable_cmp = c.enable_win = false;
                   c.given_indices = true;
                   c.index_policy = nsa::ref::IndexPolicy::multiset;
                 }));
}

TEST_CASE("grad_disabled_or_empty_is_zero", "[properties]") {
  check_property("grad_disabled_or_empty_is_zero", gen(with_indices(), [](Config&) {}));
}

TEST_CASE("grad_mean_phi_scatter", "[properties]") {
  check_property("grad_mean_phi_scatter", gen({}, [](Config& c) {
                   c.phi = nsa::ref::Phi::mean;
                   c.phi_hidden = 0;
                   c.enable_cmp = true;
                 }));
}

TEST_CASE("grad_finite_differences", "[properties]") {
  GenOptions o = with_indices();
  o.max_tokens = 12;
  o.max_group = 2;
  check_property("grad_finite_differences",
                 gen(
                     o,
                     [](Config& c) {
                       // At most two KV heads, head dims <= 4, d <= 4, l <= 8 (l and l' stay
                       // multiples of d).
                       const int64_t group = c.h_q / c.h_kv;
                       c.h_kv = std::min<int64_t>(c.h_kv, 2);
                       c.h_q = group * c.h_kv;
                       c.d_k = 1 + (c.d_k - 1) % 4;
                       c.d_v = 1 + (c.d_v - 1) % 4;
                       const int64_t lm = c.cmp_block / c.cmp_stride,
                                     sm = c.slc_block / c.cmp_stride;
                       c.cmp_stride = std::min<int64_t>(c.cmp_stride, 4);
                       c.cmp_block = c.cmp_stride * std::min<int64_t>(lm, 8 / c.cmp_stride);
                       c.slc_block = c.cmp_stride * sm;
                       if (c.phi == nsa::ref::Phi::mlp)
                         c.phi_hidden = std::min<int64_t>(c.phi_hidden, 4);
                       if (c.dtype == nsa::ref::Dtype::f64) c.dtype = nsa::ref::Dtype::f32;
                     },
                     [](Case& k) {
                       if (k.regime == nsa::ref::Regime::ties) k.regime = nsa::ref::Regime::typical;
                     }),
                 kFiniteDifferenceCost);
}

TEST_CASE("grad_row_key_subsets", "[properties]") {
  check_property("grad_row_key_subsets", gen(with_indices(), [](Config&) {}));
}

TEST_CASE("grad_threads_bitwise", "[properties]") {
  check_property("grad_threads_bitwise", gen(with_indices(), [](Config&) {}), 2);
}

TEST_CASE("grad_selection_is_constant", "[properties]") {
  check_property("grad_selection_is_constant", gen({}, with_top_n));
}

TEST_CASE("grad_matches_dense_oracle", "[properties]") {
  check_property("grad_matches_dense_oracle", gen(with_indices(), [](Config&) {}));
}

}  // namespace nsa::props
