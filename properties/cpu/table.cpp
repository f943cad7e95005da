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
  };
}

}  // namespace nsa::props
