// The CPU half of the property table: names are the Catch test names and the repro tool's
// --property values.
#include "../harness.hpp"
#include "properties.hpp"

namespace nsa::props {

std::vector<Property> cpu_properties() {
  return {
      {"selection_all_blocks_is_full_attention", "1: n >= blocks => o_slc = causal attention",
       prop_selection_all_blocks_is_full_attention},
      {"window_wide_is_full_attention", "2: w >= t+1 => o_win = causal attention",
       prop_window_is_attention_over_its_keys},
      {"window_is_attention_over_its_keys", "2b: o_win = attention over the spec's window",
       prop_window_is_attention_over_its_keys},
      {"causality", "3: inputs after t do not change outputs at t", prop_causality},
      {"varlen_equals_separate_runs", "4: packed = each sequence alone",
       prop_varlen_equals_separate_runs},
      {"query_heads_permute_within_group", "5a: permuting heads of a group",
       prop_query_heads_permute_within_group},
      {"kv_groups_permute", "5b: permuting KV groups", prop_kv_groups_permute},
      {"affine_in_v", "6: V -> aV + b => o -> a o + b", prop_affine_in_v},
      {"linear_in_gates", "7: o is linear in the gates; unit gates give branches",
       prop_linear_in_gates},
      {"mappings_agree_when_l_eq_d_eq_lsel", "8: overlap = identity = eq9 for l = d = l'",
       prop_mappings_agree_when_l_eq_d_eq_lsel},
      {"sum_and_mean_reduce_select_same_blocks", "9: group reduce sum vs mean",
       prop_sum_and_mean_reduce_select_same_blocks},
      {"index_invariants", "10: index output invariants and the top-n rule", prop_index_invariants},
      {"linear_phi_identity_is_mean", "11: linear phi with W = I/l, P = 0 equals mean",
       prop_linear_phi_identity_is_mean},
      {"f64_agrees_with_f128", "12: double vs 113-bit within the bound", prop_f64_agrees_with_f128},
      {"cmp_softmax_rows_and_lse", "13: p_cmp rows sum to 1, lse consistent",
       prop_cmp_softmax_rows_and_lse},
      {"scores_follow_the_mapping", "14: ranked scores = the spec's mapping of p_cmp, reduced",
       prop_scores_follow_the_mapping},
      {"grad_linear_in_do", "G1: grad(a dO1 + b dO2) = a grad(dO1) + b grad(dO2); -dO bitwise",
       prop_grad_linear_in_do},
      {"grad_dg_is_do_dot_o_b", "G2: dg_b = <dO, o_b> of the forward", prop_grad_dg_is_do_dot_o_b},
      {"grad_causality", "G3: dO = 0 after a cut => dK/dV after it exactly 0", prop_grad_causality},
      {"grad_varlen_equals_separate_runs", "G4: packed gradients = each sequence alone (bitwise)",
       prop_grad_varlen_equals_separate_runs},
      {"grad_full_attention", "G5: n >= candidates, w >= t+1 => full causal attention gradients",
       prop_grad_full_attention},
      {"grad_query_heads_permute_within_group", "G6: permuting heads of a group permutes dq, dg",
       prop_grad_query_heads_permute_within_group},
      {"grad_multiset_duplicates_equal_duplicated_keys",
       "G7: a block listed k times = k copies of its keys",
       prop_grad_multiset_duplicates_equal_duplicated_keys},
      {"grad_disabled_or_empty_is_zero", "G8: disabled branches, empty key sets: exactly 0",
       prop_grad_disabled_or_empty_is_zero},
      {"grad_mean_phi_scatter", "G9: mean phi: dK_cmp = scatter of dk~/l over each block",
       prop_grad_mean_phi_scatter},
      {"grad_finite_differences", "G10: central differences of <R, o> on tiny configs",
       prop_grad_finite_differences},
      {"grad_row_key_subsets", "G11: GradSelection rows/keys = that part of the full result",
       prop_grad_row_key_subsets},
      {"grad_threads_bitwise", "G12: threads 2 and 3 give the bits of threads 1",
       prop_grad_threads_bitwise},
      {"grad_selection_is_constant", "G13: computed selection = the same lists given (bitwise)",
       prop_grad_selection_is_constant},
      {"grad_matches_dense_oracle", "G14: reference backward = dense oracle backward",
       prop_grad_matches_dense_oracle},
  };
}

}  // namespace nsa::props
