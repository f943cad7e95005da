// The CPU properties of the reference (docs/properties.md numbers them). Each takes one case and
// throws PropertyFailure when the property does not hold, NotApplicable when the case does not
// meet its precondition.
#pragma once

#include "../generators.hpp"

namespace nsa::props {

void prop_selection_all_blocks_is_full_attention(const Case& c);  // 1
void prop_window_is_attention_over_its_keys(const Case& c);       // 2 (w >= t+1: full causal)
void prop_causality(const Case& c);                               // 3
void prop_varlen_equals_separate_runs(const Case& c);             // 4
void prop_query_heads_permute_within_group(const Case& c);        // 5a
void prop_kv_groups_permute(const Case& c);                       // 5b
void prop_affine_in_v(const Case& c);                             // 6
void prop_linear_in_gates(const Case& c);                         // 7
void prop_mappings_agree_when_l_eq_d_eq_lsel(const Case& c);      // 8
void prop_sum_and_mean_reduce_select_same_blocks(const Case& c);  // 9
void prop_index_invariants(const Case& c);                        // 10
void prop_linear_phi_identity_is_mean(const Case& c);             // 11
void prop_f64_agrees_with_f128(const Case& c);                    // 12
void prop_cmp_softmax_rows_and_lse(const Case& c);                // 13
void prop_scores_follow_the_mapping(const Case& c);               // 14

}  // namespace nsa::props
