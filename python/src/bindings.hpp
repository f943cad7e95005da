// The parts of nsa_verify._core, one file each, and the conversions they share between the
// libraries' structs and dicts of numpy arrays keyed by golden/SCHEMA.md's dataset names.
#pragma once

#include <nanobind/nanobind.h>

#include <string>

#include "nsa/ref/backward.hpp"
#include "nsa/ref/compare.hpp"
#include "nsa/ref/forward.hpp"

namespace nsa::py {

namespace nb = nanobind;

void bind_config(nb::module_& m);     // ValidConfig, parsing, profiles
void bind_reference(nb::module_& m);  // generated inputs, forward, backward
void bind_golden(nb::module_& m);     // golden files, candidate files
void bind_judge(nb::module_& m);      // the comparator on golden cases and on given inputs
void bind_cuda(nb::module_& m);       // the CUDA forward on device tensors (DLPack)

// "f64", "f128", "bin50", "baseline"; std::invalid_argument naming the allowed ones otherwise.
nsa::ref::Precision parse_precision(const std::string& name);

// Inputs from a dict of float64 arrays (and an int32 "indices"): every tensor the config reads
// must be there in its shape (shapes.hpp); others are ignored.
nsa::ref::Inputs inputs_from(const nsa::ref::ValidConfig& vc, const nb::dict& arrays);
// Every input tensor of the config as a numpy array.
nb::dict inputs_to_dict(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in);

// Outputs as {"tensors": {name: array}, "rows", "heads", "groups"}, holding those of `names` that
// were computed (p_cmp, scores and score_gap are empty where keep_scores was off).
nb::dict outputs_to_dict(const nsa::ref::ValidConfig& vc, const nsa::ref::Outputs& out,
                         const std::vector<std::string>& names);
// What the forward computes for a config: the expected tensors of a golden case
// (nsa::golden::expected_tensor_names), and with given indices the echoed index lists.
std::vector<std::string> forward_output_names(const nsa::ref::ValidConfig& vc);
// A candidate's outputs over every row and head: any subset of o_<b>, lse_<b>, o, indices.
nsa::ref::Outputs candidate_outputs(const nsa::ref::ValidConfig& vc, const nb::dict& arrays);

// Gradients as {"tensors": {name: array}, "rows", "keys"}: the tensors of
// nsa::ref::grad_tensor_names that `sel` asked for.
nb::dict grads_to_dict(const nsa::ref::ValidConfig& vc, const nsa::ref::Gradients& g,
                       const nsa::ref::GradSelection& sel = {});
// A candidate's gradients over every row and key: any subset of grad_tensor_names; an unknown
// name or one the config does not have throws std::invalid_argument naming it.
nsa::ref::Gradients candidate_grads(const nsa::ref::ValidConfig& vc, const nb::dict& arrays);

// A verdict as a list of dicts (name, checked, passed, max_err, bound, baseline_err, worst,
// expected, actual, note); worst is the flat index, -1 when none.
nb::list verdict_to_list(const nsa::ref::Verdict& v);

}  // namespace nsa::py
