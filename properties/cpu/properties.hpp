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

// Gradients (docs/properties.md, G1 .. G14).
void prop_grad_linear_in_do(const Case& c);                               // G1
void prop_grad_dg_is_do_dot_o_b(const Case& c);                           // G2
void prop_grad_causality(const Case& c);                                  // G3
void prop_grad_varlen_equals_separate_runs(const Case& c);                // G4
void prop_grad_full_attention(const Case& c);                             // G5
void prop_grad_query_heads_permute_within_group(const Case& c);           // G6
void prop_grad_multiset_duplicates_equal_duplicated_keys(const Case& c);  // G7
void prop_grad_disabled_or_empty_is_zero(const Case& c);                  // G8
void prop_grad_mean_phi_scatter(const Case& c);                           // G9
void prop_grad_finite_differences(const Case& c);                         // G10
void prop_grad_row_key_subsets(const Case& c);                            // G11
void prop_grad_threads_bitwise(const Case& c);                            // G12
void prop_grad_selection_is_constant(const Case& c);                      // G13
void prop_grad_matches_dense_oracle(const Case& c);                       // G14

}  // namespace nsa::props
