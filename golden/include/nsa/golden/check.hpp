// Checking a candidate's outputs against a golden file with the project's comparator
// (nsa::ref::compare: the tolerance rule and the tie-aware index rule), case by case.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "nsa/golden/golden_file.hpp"
#include "nsa/ref/compare.hpp"

namespace nsa::golden {

// `candidate` holds any subset of o_cmp/o_slc/o_win, lse_*, o, indices over every row and head
// (absent tensors are empty and reported as not checked). The baseline is the case's own when it
// was generated in this process, else recomputed from the stored inputs. Where the candidate's
// indices differ from the truth's only within ties, o_slc, lse_slc and o are judged against the
// reference run with the candidate's own indices (nsa::ref::check_candidate).
nsa::ref::Verdict check_case(const GoldenCase& gc, nsa::ref::Outputs candidate,
                             nsa::ref::Tolerance tol = {});

// The same for a case read from a candidate file: a dataset the reader refused (wrong shape,
// not a float or int32 type) is a failed tensor, with the reason as its note.
nsa::ref::Verdict check_case(const GoldenCase& gc, const CandidateCase& candidate,
                             nsa::ref::Tolerance tol = {});
// Judges a candidate's gradients (any subset of grad_tensor_names; absent ones are "not checked")
// against the case's truth gradients, the baseline backward setting the bound. With the
// candidate's own forward indices (candidate_indices, when they differ from the truth's within
// ties) the gradients are judged against the reference run with those indices. Throws GoldenError
// for a case without gradients (a schema 1 file).
nsa::ref::Verdict check_case_gradients(const GoldenCase& gc, nsa::ref::Gradients candidate,
                                       const std::vector<int32_t>& candidate_indices = {},
                                       nsa::ref::Tolerance tol = {});
// The same for a case read from a candidate file (its indices, when it holds them, are the
// candidate's own selection): a gradient dataset the reader refused is a failed tensor, and so is
// a gradient the case cannot have (a disabled branch's: asking for it is an error).
nsa::ref::Verdict check_case_gradients(const GoldenCase& gc, const CandidateCase& candidate,
                                       nsa::ref::Tolerance tol = {});

// max over checked tensors of max_err / bound (0 when nothing was checked; indices excluded).
double worst_ratio(const nsa::ref::Verdict& v);

// Exit status of `nsa golden check` (golden/SCHEMA.md, "Candidate files"): a CI can tell a
// wrong implementation from a check that could not be made.
enum class CheckStatus {
  pass = 0,      // every case the candidate holds passed, and at least one tensor was checked
  fail = 1,      // some checked tensor broke the tolerance or index rule
  no_check = 2,  // nothing could be judged: bad arguments, a file missing, unreadable or
                 // damaged, another schema version, or no outputs of any golden case
};

struct CaseReport {
  std::string name;
  bool checked = false;  // false: the candidate holds no outputs for this case
  bool forward = false;  // the candidate holds forward outputs: `verdict` judges them
  nsa::ref::Verdict verdict;
  bool grads = false;  // the candidate's gradients were judged: `grad_verdict`
  nsa::ref::Verdict grad_verdict;
  std::string grad_note;  // why the gradients were not judged, where they were not
  bool pass() const { return verdict.pass() && grad_verdict.pass(); }
};

struct FileReport {
  std::vector<CaseReport> cases;  // every golden case, in file order
  int passed = 0, failed = 0, not_checked = 0;
  int tensors = 0;       // forward tensors checked over all cases
  int grad_tensors = 0;  // gradient tensors checked over all cases
  CheckStatus status() const;
};

// Judges every case of `golden` that `candidates` (read_candidate) holds.
FileReport check_file(const GoldenFile& golden,
                      const std::map<std::string, CandidateCase>& candidates,
                      nsa::ref::Tolerance tol = {});

}  // namespace nsa::golden
