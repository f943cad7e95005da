// Checking a candidate's outputs for one golden case with the project's comparator
// (nsa::ref::compare: the tolerance rule and the tie-aware index rule).
#pragma once

#include "nsa/golden/golden_file.hpp"
#include "nsa/ref/compare.hpp"

namespace nsa::golden {

// `candidate` holds any subset of o_cmp/o_slc/o_win, lse_*, o, indices over every row and head
// (absent tensors are empty and reported as not checked). The baseline is the case's own when it
// was generated in this process, else recomputed from the stored inputs. Where the candidate's
// indices differ from the truth's only within ties, o_slc and o are judged against the reference
// run with the candidate's own indices (nsa::ref::check_candidate).
nsa::ref::Verdict check_case(const GoldenCase& gc, nsa::ref::Outputs candidate,
                             nsa::ref::Tolerance tol = {});

// Judges a candidate's gradients (any subset of grad_tensor_names; absent ones are "not checked")
// against the case's truth gradients, the baseline backward setting the bound. With the
// candidate's own forward indices (candidate_indices, when they differ from the truth's within
// ties) the gradients are judged against the reference run with those indices. Throws GoldenError
// for a case without gradients (a schema 1 file).
nsa::ref::Verdict check_case_gradients(const GoldenCase& gc, nsa::ref::Gradients candidate,
                                       const std::vector<int32_t>& candidate_indices = {},
                                       nsa::ref::Tolerance tol = {});

// max over checked tensors of max_err / bound (0 when nothing was checked; indices excluded).
double worst_ratio(const nsa::ref::Verdict& v);

}  // namespace nsa::golden
