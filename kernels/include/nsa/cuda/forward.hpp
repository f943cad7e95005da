// Host API of the CUDA NSA forward (docs/kernels.md). No CUDA headers here: CPU-only code (the
// CLI, tests, golden tools) includes this and links nsa_cuda.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "nsa/ref/config.hpp"
#include "nsa/ref/forward.hpp"
#include "nsa/ref/inputs.hpp"

namespace nsa::cuda {

// False when there is no CUDA device or driver; never throws.
bool device_available() noexcept;
// Name of the current device ("" when none).
std::string device_name();

// Empty when the kernels support the config, otherwise the reason (dtype fp64, head dims, G, ...).
std::string unsupported(const nsa::ref::ValidConfig& vc);

struct Options {
  // Validate a given index list with nsa::ref::check_indices_strict when the config's
  // index_policy is strict (the kernels themselves always apply multiset/skip semantics safely).
  bool validate_indices = true;
  // Also return p_cmp and the ranked selection scores (large for long sequences).
  bool keep_scores = false;
};

// Thrown for a failed CUDA call or launch; what() names the kernel (or call) and the config.
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The whole forward on the GPU for all rows and heads. Inputs are converted on the host to
// cfg.dtype (exact: they are representable); outputs are widened to double into Outputs with
// rows/heads/groups = all: o and o_branch hold the kernel's output-dtype values, lse fp32,
// indices int32; p_cmp/scores only with keep_scores (score_gap is left empty).
// Throws std::invalid_argument for an unsupported config or bad inputs, CudaError for CUDA errors.
nsa::ref::Outputs forward(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                          const Options& opt = {});

// ---- lower-level device-pointer API (benchmarks) ------------------------------------------
// All tensors live on the device in cfg.dtype (bf16/fp16 as 16-bit raw values, fp32 as float)
// with the layouts of nsa::ref::Inputs / Outputs. Pointers of disabled branches may be null.
struct DeviceInputs {
  const void* q = nullptr;   // [total_q, h_q, d_k]
  const void* k[3] = {};     // per branch (cmp, slc, win): [total_k, h_kv, d_k]
  const void* v[3] = {};     // per branch: [total_k, h_kv, d_v]
  const void* gate[3] = {};  // per branch: [total_q, h_q]
  // phi parameters (linear/mlp) in cfg.dtype, layouts of nsa::ref::PhiParams.
  const void* phi_k_pos = nullptr;
  const void* phi_k_w1 = nullptr;
  const void* phi_k_b1 = nullptr;
  const void* phi_k_w2 = nullptr;
  const void* phi_k_b2 = nullptr;
  const void* phi_v_pos = nullptr;
  const void* phi_v_w1 = nullptr;
  const void* phi_v_b1 = nullptr;
  const void* phi_v_w2 = nullptr;
  const void* phi_v_b2 = nullptr;
  const int32_t* indices = nullptr;  // given_indices: [total_q, h_kv, top_n]
  // cmp_given: the compressed cache k~ [total_cmp, h_kv, d_k], v~ [total_cmp, h_kv, d_v] (each
  // sequence's blocks in order, as nsa::ref::Inputs holds them); phi is not run and k[0], v[0]
  // and the phi parameters are not read.
  const void* k_tilde = nullptr;
  const void* v_tilde = nullptr;
};

struct DeviceOutputs {
  void* o = nullptr;           // [total_q, h_q, d_v] in cfg.dtype
  void* o_branch[3] = {};      // per branch [total_q, h_q, d_v] in cfg.dtype (null: not kept)
  float* lse[3] = {};          // per branch [total_q, h_q] (null: not kept)
  int32_t* indices = nullptr;  // [total_q, h_kv, top_n] (null: internal scratch)
  float* p_cmp = nullptr;      // [total_q, h_q, nc_max] (null: not kept)
  float* scores = nullptr;     // [total_q, h_kv, ns_max] (null: not kept)
};

// Per-branch device timings of one forward_device call (ms, CUDA events), filled when asked.
// topn covers the importance scores (probs pass + mapping, also in `scores`) and the top-n.
struct BranchTimes {
  float compress = 0, cmp_attn = 0, topn = 0, slc = 0, win = 0, combine = 0, total = 0;
  float scores = 0;
};

// Device-side plan: config tables uploaded once, scratch buffers owned. Reusable across calls
// with the same config (benchmarks).
class Plan {
 public:
  explicit Plan(const nsa::ref::ValidConfig& vc);
  ~Plan();
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  // Runs the forward on the default stream; optional per-stage timings.
  void run(const DeviceInputs& in, const DeviceOutputs& out, BranchTimes* times = nullptr);
  // Device time of one forward without host launch overhead, as a decode loop runs it: the
  // forward captured once in a CUDA graph, then `reps` samples of `per_sample` back-to-back
  // replays; returns each sample's ms per replay. Runs the forward once first (warm-up).
  std::vector<float> graph_replay_ms(const DeviceInputs& in, const DeviceOutputs& out, int reps,
                                     int per_sample);
  const nsa::ref::ValidConfig& config() const;

 private:
  struct Impl;
  Impl* impl_;
};

// Fills count elements of dtype dt at dev with values uniform in [lo, hi) from a counter-based
// hash of (seed, i) (benchmark inputs; synchronous).
void fill_uniform(void* dev, int64_t count, nsa::ref::Dtype dt, uint64_t seed, float lo, float hi);

// Device memory helpers for callers without CUDA headers (benchmarks).
void* device_alloc(std::size_t bytes);
void device_free(void* p) noexcept;

// Bytes per element of cfg.dtype on the device.
std::size_t dtype_bytes(nsa::ref::Dtype d);

}  // namespace nsa::cuda
