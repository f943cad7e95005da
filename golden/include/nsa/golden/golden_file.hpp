// Golden files: the in-memory form of one case (config, seed, inputs, truth, baseline errors)
// and the HDF5 reader and writer of golden/SCHEMA.md.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "nsa/ref/backward.hpp"
#include "nsa/ref/forward.hpp"
#include "nsa/ref/generate.hpp"

namespace nsa::golden {

// Version of golden/SCHEMA.md that this code writes. Version 3 added given compressed caches
// (cmp_given: inputs/k_tilde, v_tilde, expected/grad/dk_tilde, dv_tilde; version 2 files, whose
// configs have none, read the same); version 2 added the backward (inputs/do, expected/grad/);
// version 1 files are still read, forward only.
inline constexpr int kSchemaVersion = 3;
inline constexpr int kOldestReadableSchema = 1;

// Any problem with a golden or candidate file: what() names the file, the case, the dataset or
// attribute, and what was expected.
class GoldenError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct GoldenCase {
  std::string name;
  nsa::ref::ValidConfig vc;
  uint64_t seed = 0;
  nsa::ref::Regime regime = nsa::ref::Regime::typical;
  nsa::ref::Precision precision = nsa::ref::Precision::f128;  // of the truth
  int generator_version = nsa::ref::kGeneratorVersion;
  nsa::ref::Inputs inputs;
  nsa::ref::Outputs truth;  // every row and head
  // max |X_b - X*| of the dtype-faithful baseline per expected tensor ("o_cmp", "lse_win",
  // "o", "scores", "p_cmp"), the largest over the baseline set's summation orders.
  std::map<std::string, double> baseline_err;
  // The baseline set's outputs (nsa::ref::forward_baselines) when the case was generated in
  // this process (not stored in files; empty after read_golden, and then recomputed where
  // needed).
  std::vector<nsa::ref::Outputs> baselines;

  // The backward (schema 2): the upstream gradient, the truth's gradients (every row and key) and
  // max |G_b - G*| over the backward baseline set per gradient name (grad_tensor_names). Absent
  // (has_grad false) in a version 1 file and in a case with backward = 0.
  bool has_grad = false;
  std::vector<double> d_o;
  nsa::ref::Gradients grad_truth;
  std::map<std::string, double> grad_baseline_err;
  // The backward baseline set (nsa::ref::backward_baselines), as `baselines`: only when the case
  // was generated in this process.
  std::vector<nsa::ref::Gradients> grad_baselines;
};

struct GoldenFile {
  std::string suite;                    // suite name, or "config" for a file made from --config
  int schema_version = kSchemaVersion;  // of the file read (1: forward only)
  std::vector<GoldenCase> cases;
};

// Writes (replacing) a golden file.
void write_golden(const std::string& path, const GoldenFile& file);
// Reads and checks a golden file completely: schema version, every attribute, every dataset's
// presence, shape and dtype. Throws GoldenError.
GoldenFile read_golden(const std::string& path);

// The names of the expected tensors a case holds, in file order (disabled branches have none).
std::vector<std::string> expected_tensor_names(const nsa::ref::ValidConfig& vc);

// Output tensors of a candidate file for one case; absent tensors are empty.
struct CandidateCase {
  nsa::ref::Outputs outputs;         // only the tensors the candidate holds; rows/heads unset
  nsa::ref::Gradients grads;         // outputs/grad/<name>: only those it holds; rows/keys unset
  std::vector<std::string> present;  // "o_cmp", ..., "indices", "grad/dq", ...
  // Datasets that are there but cannot be judged, with the reason: a shape other than the
  // expected tensor's, a type other than the schema's float types (int32 for indices), or a
  // gradient the case does not have ("grad/<name>": a disabled branch's, a parameter phi lacks).
  // They are the candidate's failures (nsa::golden::check_case), not damage of the file.
  std::map<std::string, std::string> rejected;
  bool has_forward() const;  // any of the forward's tensors, judgeable or not
  bool has_grads() const;    // any gradient, judgeable or not
};
// Reads the candidate outputs of every case of `golden` present in the candidate file
// (missing cases are absent from the map). Shapes and types are checked against the golden case
// (see CandidateCase::rejected); a file that cannot be opened or read throws GoldenError.
std::map<std::string, CandidateCase> read_candidate(const std::string& path,
                                                    const GoldenFile& golden);
// Writes a candidate file holding `outputs` (and, where given, gradients) for each named case
// (for tests and other tools). Empty tensors are left out.
void write_candidate(const std::string& path,
                     const std::vector<std::pair<std::string, nsa::ref::Outputs>>& cases,
                     const GoldenFile& golden,
                     const std::map<std::string, nsa::ref::Gradients>& grads = {});

// Compares two HDF5 files by content: every group, dataset (shape, type, raw bytes) and
// attribute. Returns one line per difference (empty: identical content).
std::vector<std::string> diff_files(const std::string& a, const std::string& b);

}  // namespace nsa::golden
