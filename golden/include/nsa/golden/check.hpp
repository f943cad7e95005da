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
  nsa::ref::Verdict verdict;
};

struct FileReport {
  std::vector<CaseReport> cases;  // every golden case, in file order
  int passed = 0, failed = 0, not_checked = 0;
  int tensors = 0;  // tensors checked over all cases
  CheckStatus status() const;
};

// Judges every case of `golden` that `candidates` (read_candidate) holds.
FileReport check_file(const GoldenFile& golden,
                      const std::map<std::string, CandidateCase>& candidates,
                      nsa::ref::Tolerance tol = {});

}  // namespace nsa::golden
