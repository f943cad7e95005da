// The shapes of every tensor of a config, as golden/SCHEMA.md states them: the inputs an
// implementation consumes, the forward's outputs for a row selection and the gradients for a
// row and key selection. One table each, so that the Python API, the judge and the CUDA path
// agree on names and shapes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "nsa/ref/config.hpp"

namespace nsa::py {

using NamedShapes = std::vector<std::pair<std::string, Shape>>;

// The inputs the config reads (golden/SCHEMA.md, inputs/), by dataset name: q, k_<b>/v_<b> of the
// branches that read them, g_<b> of the enabled branches, phi_k_*/phi_v_* of a linear or mlp phi,
// indices when given. cu_seqlens are part of the config.
NamedShapes named_input_shapes(const nsa::ref::ValidConfig& vc);

// Whether the forward reads the K/V of branch b (the compressed K/V feed the selection scores too).
bool reads_kv(const nsa::ref::ValidConfig& vc, nsa::ref::Branch b);

// The shape of forward output `name` (o_<b>, lse_<b>, o, p_cmp, scores, indices, score_gap) over
// `rows` rows, `heads` query heads and `groups` KV heads.
Shape output_shape(const nsa::ref::ValidConfig& vc, const std::string& name, int64_t rows,
                   int64_t heads, int64_t groups);
// Every expected tensor of the config (nsa::golden::expected_tensor_names) with its shape.
NamedShapes output_shapes(const nsa::ref::ValidConfig& vc, int64_t rows, int64_t heads,
                          int64_t groups);

// Gradients (nsa::ref::grad_tensor_names) over `rows` query rows and `keys` key tokens.
NamedShapes grad_shapes(const nsa::ref::ValidConfig& vc, int64_t rows, int64_t keys);

// The shape of `name` in a table; throws std::invalid_argument listing the table's names.
const Shape& shape_of(const NamedShapes& table, const std::string& name, const std::string& what);

}  // namespace nsa::py
