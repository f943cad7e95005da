// Decodes a fuzzer's bytes into a tiny NSA case: a config whose every field and knob is drawn
// from the bytes (shapes kept small so one run takes microseconds) and inputs from the seeded
// generator, then perturbed element by element with values from an edge-case palette.
#pragma once

#include <cstdint>

#include "byte_reader.hpp"
#include "nsa/ref/config.hpp"
#include "nsa/ref/generate.hpp"
#include "nsa/ref/inputs.hpp"

namespace nsa::fuzz {

struct TinyOptions {
  bool given_indices = false;
  bool force_slc = false;  // keep the selection branch enabled
};

// Always returns a config that obeys every rule of docs/semantics.md, so validate() must accept
// it: the targets treat a ConfigError on it as a finding.
nsa::ref::Config decode_tiny_config(ByteReader& r, const TinyOptions& opt);

// Generated inputs for vc, then edits from the remaining bytes: each edit picks a tensor, an
// element and a palette value (zeros, signed ones, the dtype's largest and smallest magnitudes),
// rounded to the dtype. With shared_kv the three branches' K/V stay identical.
nsa::ref::Inputs decode_inputs(ByteReader& r, const nsa::ref::ValidConfig& vc, int max_edits);

}  // namespace nsa::fuzz
