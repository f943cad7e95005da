// Plan: the device-side tables of one config plus scratch, and the order of the launches:
// compress -> compressed attention (lse) -> group probabilities -> mapped scores -> top-n ->
// selection -> window -> gated combination.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "device_buffer.hpp"
#include "launch.hpp"
#include "nsa/cuda/forward.hpp"
#include "phi_gemm.hpp"

namespace nsa::cuda {

using detail::DevCfg;
using detail::DeviceBuffer;
using detail::DevSeq;

namespace detail {

void check(cudaError_t err, const char* what, const std::string& context) {
  if (err == cudaSuccess) return;
  // A failed call (an allocation out of memory) stays the "last error" until read; cleared here,
  // it is not reported again by the next launch check (nsa bench's later cases).
  (void)cudaGetLastError();
  throw CudaError(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(err) + " (" +
                  cudaGetErrorString(err) + ") [" + context + "]");
}

void throw_cuda_error(const std::string& message) { throw CudaError(message); }

void check_launch(const char* what, const std::string& context) {
  check(cudaGetLastError(), what, context);
}

}  // namespace detail

std::size_t dtype_bytes(nsa::ref::Dtype d) {
  return d == nsa::ref::Dtype::f32 ? 4 : d == nsa::ref::Dtype::f64 ? 8 : 2;
}

namespace {

std::string short_context(const nsa::ref::ValidConfig& vc) {
  const auto& c = vc.cfg;
  std::ostringstream o;
  o << "dtype=" << nsa::ref::to_string(c.dtype) << " layout=" << nsa::ref::to_string(c.layout)
    << " B=" << vc.seqs.size() << " total_q=" << vc.total_q << " total_k=" << vc.total_k
    << " h_q=" << c.h_q << " h_kv=" << c.h_kv << " d_k=" << c.d_k << " d_v=" << c.d_v
    << " l=" << c.cmp_block << " d=" << c.cmp_stride << " l'=" << c.slc_block << " n=" << c.top_n
    << " w=" << c.window << " phi=" << nsa::ref::to_string(c.phi) << " profile=" << c.profile;
  return o.str();
}

// Debugging and comparison switches of the kernels (documented in docs/kernels.md).
bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v && std::string(v) == value;
}

// Integer value of an environment variable, `fallback` when unset or not a number.
int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  return end && *end == '\0' ? static_cast<int64_t>(x) : fallback;
}

// The current device is compute capability 9.0 (Hopper), where the sm_90a wgmma code runs.
bool device_is_sm90() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess)
    return false;
  return major == 9 && minor == 0;
}

class EventTimer {
 public:
  explicit EventTimer(bool on, const std::string& ctx) : on_(on), ctx_(ctx) {}
  ~EventTimer() {
    for (auto e : events_) cudaEventDestroy(e);
  }
  void mark(cudaStream_t s) {
    if (!on_) return;
    cudaEvent_t e;
    detail::check(cudaEventCreate(&e), "cudaEventCreate", ctx_);
    detail::check(cudaEventRecord(e, s), "cudaEventRecord", ctx_);
    events_.push_back(e);
  }
  // ms between mark i and mark i + 1.
  float span(std::size_t i) const {
    float ms = 0;
    if (on_ && i + 1 < events_.size())
      detail::check(cudaEventElapsedTime(&ms, events_[i], events_[i + 1]), "cudaEventElapsedTime",
                    ctx_);
    return ms;
  }
  float whole() const {
    float ms = 0;
    if (on_ && events_.size() > 1)
      detail::check(cudaEventElapsedTime(&ms, events_.front(), events_.back()),
                    "cudaEventElapsedTime", ctx_);
    return ms;
  }
  void sync() {
    if (on_ && !events_.empty())
      detail::check(cudaEventSynchronize(events_.back()), "cudaEventSynchronize", ctx_);
  }

 private:
  bool on_;
  std::string ctx_;
  std::vector<cudaEvent_t> events_;
};

// A second stream and the two events that fork work onto it from the caller's stream and join it
// back (also inside a graph capture, where the fork pulls the side stream into the capture).
class SideStream {
 public:
  SideStream() = default;
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;
  ~SideStream() {
    if (fork_) cudaEventDestroy(fork_);
    if (join_) cudaEventDestroy(join_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  void create(const std::string& ctx) {
    detail::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate",
                  ctx);
    detail::check(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming), "cudaEventCreate", ctx);
    detail::check(cudaEventCreateWithFlags(&join_, cudaEventDisableTiming), "cudaEventCreate", ctx);
  }
  bool ready() const { return stream_ != nullptr; }
  // Work on the returned stream starts after everything issued so far on `main`.
  cudaStream_t fork(cudaStream_t main, const std::string& ctx) {
    detail::check(cudaEventRecord(fork_, main), "cudaEventRecord", ctx);
    detail::check(cudaStreamWaitEvent(stream_, fork_, 0), "cudaStreamWaitEvent", ctx);
    return stream_;
  }
  // Work issued later on `main` starts after everything issued so far on the side stream.
  void join(cudaStream_t main, const std::string& ctx) {
    detail::check(cudaEventRecord(join_, stream_), "cudaEventRecord", ctx);
    detail::check(cudaStreamWaitEvent(main, join_, 0), "cudaStreamWaitEvent", ctx);
  }

 private:
  cudaStream_t stream_ = nullptr;
  cudaEvent_t fork_ = nullptr, join_ = nullptr;
};

}  // namespace

bool detail::wgmma_enabled() { return !env_is("NSA_CUDA_WGMMA", "0") && device_is_sm90(); }

struct Plan::Impl {
  nsa::ref::ValidConfig vc;
  DevCfg dc{};
  std::string ctx;
  DeviceBuffer seqs, cu_q, cu_c;
  DeviceBuffer kc, vcmp;            // compressed K/V [total_c, h_kv, d]
  std::array<DeviceBuffer, 3> o_b;  // branch outputs when the caller keeps none
  std::array<DeviceBuffer, 3> lse;  // branch lse when the caller keeps none
  DeviceBuffer pg, scores, indices;
  detail::PhiGemm phi_gemm;
  bool want_cmp_scores = false, compute_topn = false;
  bool cmp_given = false;  // the compressed cache is an input (DeviceInputs::k_tilde, v_tilde)
  // Decode-shaped batches: split-K kernels for the compressed and window branches and the probs
  // pass (attention_decode.cu), their item table and partial outputs.
  bool decode = false;
  DeviceBuffer dec_items, dec_seq_item, dec_z;
  std::array<DeviceBuffer, 3> dec_part_o, dec_part_lse;
  std::array<detail::DecodeArgs, 3> dec_b{};  // per branch: the same items and chunks, own partials
  // Beside the compressed -> scores -> top-n -> selection chain of a decode batch, a side stream
  // runs what that chain does not wait for: the window branch, and the merge of the compressed
  // branch's output (the probs pass merges the lse it needs from the partials itself).
  // NSA_CUDA_DECODE_OVERLAP=0 keeps everything in order; so does stage timing (BranchTimes).
  SideStream side;
  // The mapping and top-n of a decode batch in one kernel (scores_topn_decode.cu) where it fits;
  // NSA_CUDA_DECODE_TOPN=0 keeps launch_map_scores + launch_topn (comparisons).
  bool fused_topn = false;
  // The decode path: taken where every sequence has at most kDecodeMaxRows query rows and the
  // kernels fit the dtype, G and head dims; NSA_CUDA_DECODE=0 turns it off and =1 takes it for
  // any T_q (tests of the path on prefill shapes). Chunks are sized so that the grid is about one
  // wave of 12 warps per SM; NSA_CUDA_DECODE_CHUNK=N (a multiple of 16) fixes the keys per chunk
  // (tests of the merge on short sequences).
  void setup_decode();
  void run_dtype(const DeviceInputs& in, const DeviceOutputs& out, BranchTimes* times,
                 cudaStream_t st);
  // NSA_CUDA_SIMPLE=1 keeps every branch on the simple path (debugging, comparisons).
  bool force_simple = false;
  int64_t chunk_rows = 1;  // rows per pass of the group-probability scratch (bounded memory)

  template <class T>
  void run(const DeviceInputs& in, const DeviceOutputs& out, BranchTimes* times, cudaStream_t st);
};

Plan::Plan(const nsa::ref::ValidConfig& vc) : impl_(new Impl) {
  auto& m = *impl_;
  m.vc = vc;
  m.ctx = short_context(vc);
  const auto& c = vc.cfg;
  std::vector<DevSeq> seqs;
  std::vector<int64_t> cu_q, cu_c{0};
  for (const auto& s : vc.seqs) {
    seqs.push_back({s.q_begin, s.k_begin, s.t_q, s.t_k, cu_c.back()});
    cu_c.push_back(cu_c.back() + vc.num_cmp_blocks(s.t_k));
  }
  for (const auto v : c.cu_seqlens_q) cu_q.push_back(v);
  auto upload = [&](DeviceBuffer& buf, const void* src, std::size_t bytes, const char* what) {
    buf.allocate(bytes, std::string(what) + " [" + m.ctx + "]");
    if (bytes)
      detail::check(cudaMemcpy(buf.get(), src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy", what);
  };
  upload(m.seqs, seqs.data(), seqs.size() * sizeof(DevSeq), "sequence table");
  upload(m.cu_q, cu_q.data(), cu_q.size() * sizeof(int64_t), "cu_seqlens_q");
  upload(m.cu_c, cu_c.data(), cu_c.size() * sizeof(int64_t), "compressed offsets");

  DevCfg& d = m.dc;
  d.total_q = vc.total_q;
  d.total_k = vc.total_k;
  d.total_c = cu_c.back();
  d.h_q = c.h_q;
  d.h_kv = c.h_kv;
  d.group = vc.group;
  d.d_k = c.d_k;
  d.d_v = c.d_v;
  d.l = c.cmp_block;
  d.d = c.cmp_stride;
  d.lp = c.slc_block;
  d.n = c.top_n;
  d.n_init = c.n_init;
  d.n_local = c.n_local;
  d.w = c.window;
  d.phi_hidden = c.phi_hidden;
  d.nc_max = vc.max_cmp_blocks();
  d.ns_max = vc.max_slc_blocks();
  d.num_seqs = static_cast<int64_t>(vc.seqs.size());
  d.scale = static_cast<float>(vc.scale);
  d.scale_f64 = vc.scale;
  // NSA_CUDA_QK_SPLIT=0 accumulates Q K^T inside the MMA (for accuracy/speed comparisons).
  d.qk_split = env_is("NSA_CUDA_QK_SPLIT", "0") ? 0 : 1;
  // NSA_CUDA_SLC_UNION=1 keeps selection on the CTA-wide union kernel (comparisons).
  d.slc_union = env_is("NSA_CUDA_SLC_UNION", "1") ? 1 : 0;
  // NSA_CUDA_SLC_STAGES=2|3|4: cp.async stages per warp of the warp selection kernel (tuning).
  // Default 2: 3 and 4 leave room for fewer warps per SM and measured slower on the H200
  // (selection 28.1 / 36.0 / 42.0 ms for 2 / 3 / 4 stages; T = 65536, G = 16, d = 128, bf16).
  d.slc_stages = env_is("NSA_CUDA_SLC_STAGES", "3")   ? 3
                 : env_is("NSA_CUDA_SLC_STAGES", "4") ? 4
                                                      : 2;
  // The wgmma kernel (sm_90a machine code only) where the device is compute capability 9.0;
  // NSA_CUDA_WGMMA=0 keeps every branch on mma.sync (comparisons, tests of that path).
  d.wgmma = detail::wgmma_enabled() ? 1 : 0;
  d.phi = static_cast<int>(c.phi);
  d.act = static_cast<int>(c.phi_act);
  d.visibility = static_cast<int>(c.cmp_visibility);
  d.mapping = static_cast<int>(c.score_mapping);
  d.reduce = static_cast<int>(c.group_reduce);
  d.forced = static_cast<int>(c.forced_mode);
  d.tie = static_cast<int>(c.tie_break);
  d.slc_causal = static_cast<int>(c.slc_causal);
  d.policy = static_cast<int>(c.index_policy);
  d.window_keys = static_cast<int>(c.window_keys);
  for (int b = 0; b < 3; ++b) d.enable[b] = c.enabled(static_cast<nsa::ref::Branch>(b));
  d.seqs = m.seqs.get<DevSeq>();
  d.cu_q = m.cu_q.get<int64_t>();
  d.cu_c = m.cu_c.get<int64_t>();

  m.force_simple = env_is("NSA_CUDA_SIMPLE", "1");
  m.want_cmp_scores = c.enable_cmp || (c.enable_slc && !c.given_indices);
  m.compute_topn = c.enable_slc && !c.given_indices;
  m.setup_decode();
  const std::size_t eb = dtype_bytes(c.dtype);
  const auto sz = [](int64_t x) { return static_cast<std::size_t>(x); };
  m.cmp_given = c.cmp_given;
  if (m.want_cmp_scores && !m.cmp_given) {
    m.kc.allocate(sz(d.total_c * c.h_kv * c.d_k) * eb, "compressed K [" + m.ctx + "]");
    m.vcmp.allocate(sz(d.total_c * c.h_kv * c.d_v) * eb, "compressed V [" + m.ctx + "]");
    m.phi_gemm.prepare(d, std::max(c.d_k, c.d_v), m.ctx);
  }
  if (m.compute_topn) {
    // The group-probability scratch covers a chunk of rows: at most 512 MiB.
    const int64_t per_row = std::max<int64_t>(1, c.h_kv * d.nc_max) * 4;
    m.chunk_rows =
        std::max<int64_t>(1, std::min<int64_t>(vc.total_q, (int64_t{512} << 20) / per_row));
    m.pg.allocate(sz(m.chunk_rows * c.h_kv * d.nc_max) * sizeof(float),
                  "group probs [" + m.ctx + "]");
    m.scores.allocate(sz(vc.total_q * c.h_kv * d.ns_max) * sizeof(float),
                      "selection scores [" + m.ctx + "]");
    m.indices.allocate(sz(vc.total_q * c.h_kv * c.top_n) * sizeof(int32_t),
                       "indices [" + m.ctx + "]");
  }
}

void Plan::Impl::setup_decode() {
  const auto& c = vc.cfg;
  const DevCfg& d = dc;
  bool fits = false;
  if (c.dtype == nsa::ref::Dtype::f16) fits = detail::decode_fits<__half>(d);
  if (c.dtype == nsa::ref::Dtype::bf16) fits = detail::decode_fits<__nv_bfloat16>(d);
  bool short_rows = true;
  for (const auto& sq : vc.seqs) short_rows = short_rows && sq.t_q <= detail::kDecodeMaxRows;
  const bool want =
      env_is("NSA_CUDA_DECODE", "1") || (short_rows && !env_is("NSA_CUDA_DECODE", "0"));
  decode = fits && want && d.total_q > 0 &&
           (c.enable_cmp || c.enable_slc || c.enable_win || compute_topn);
  if (!decode) return;
  const int64_t rb = detail::decode_rows_per_item(d.group);
  std::vector<detail::DecodeItem> items;
  for (std::size_t s = 0; s < vc.seqs.size(); ++s) {
    const auto& sq = vc.seqs[s];
    for (int64_t r = 0; r < sq.t_q; r += rb)
      items.push_back({sq.q_begin + r, std::min(rb, sq.t_q - r), static_cast<int64_t>(s)});
  }
  std::vector<int64_t> seq_item;  // each sequence's first item (the probs pass's row lookup)
  for (std::size_t s = 0, n = 0; s < vc.seqs.size(); ++s) {
    seq_item.push_back(static_cast<int64_t>(n));
    n += static_cast<std::size_t>((vc.seqs[s].t_q + rb - 1) / rb);
  }
  dec_seq_item.allocate(seq_item.size() * sizeof(int64_t), "decode sequence items [" + ctx + "]");
  detail::check(cudaMemcpy(dec_seq_item.get(), seq_item.data(), seq_item.size() * sizeof(int64_t),
                           cudaMemcpyHostToDevice),
                "cudaMemcpy", "decode sequence items");
  const auto bytes = items.size() * sizeof(detail::DecodeItem);
  dec_items.allocate(bytes, "decode items [" + ctx + "]");
  detail::check(cudaMemcpy(dec_items.get(), items.data(), bytes, cudaMemcpyHostToDevice),
                "cudaMemcpy", "decode items");
  detail::DecodeArgs a{};
  a.items = dec_items.get<detail::DecodeItem>();
  a.seq_item = dec_seq_item.get<int64_t>();
  a.n_items = static_cast<int64_t>(items.size());
  int dev = 0, sms = 132;
  if (cudaGetDevice(&dev) == cudaSuccess)
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  // One wave: as many chunks as the split-K kernel keeps warps resident (its occupancy, which
  // registers limit to 2 CTAs of 4 warps at d_k = d_v = 128, or 3 with min_blocks = 3).
  // NSA_CUDA_DECODE_MINB=3 builds for 3 (168 registers, a few bytes spilled): on the H200 at
  // B = 16, T_k = 65536 it measured 0.1331 / 0.3084 / 1.186 ms at G = 16 / 4 / 1 against
  // 0.1246 / 0.3118 / 1.244 with 2 CTAs, which stays the default (the G = 16 row).
  a.min_blocks = env_is("NSA_CUDA_DECODE_MINB", "3") ? 3 : 1;
  a.stages = env_is("NSA_CUDA_DECODE_STAGES", "2") ? 2 : 0;
  int resident = 0;
  if (c.dtype == nsa::ref::Dtype::f16) resident = detail::decode_resident_warps<__half>(d, a, ctx);
  if (c.dtype == nsa::ref::Dtype::bf16)
    resident = detail::decode_resident_warps<__nv_bfloat16>(d, a, ctx);
  const int64_t warps = int64_t{resident > 0 ? resident : 8} * sms,
                work = std::max<int64_t>(1, a.n_items * d.h_kv);
  const int64_t want_chunks = std::max<int64_t>(1, (warps + work - 1) / work);
  const int64_t fixed = env_int("NSA_CUDA_DECODE_CHUNK", 0);
  const int64_t span = c.window_keys == nsa::ref::WindowKeys::w ? d.w : d.w + 1;
  // An item's keys at most: compressed rows, distinct selected blocks, window keys (its rows:
  // at most rb, and at most the longest T_q: a decode step's single row sizes the chunks).
  int64_t rows_max = 1;
  for (const auto& it : items) rows_max = std::max(rows_max, it.rows);
  const int64_t range[3] = {d.nc_max, std::min(rows_max * d.n, std::max<int64_t>(1, d.ns_max)),
                            span + rows_max - 1};
  int64_t part[3] = {0, 0, 0};
  for (int b = 0; b < 3; ++b) {
    const int64_t even = std::max<int64_t>(1, (range[b] + want_chunks - 1) / want_chunks);
    int64_t chunk = b == 1 ? even : (even + 63) / 64 * 64;  // selection: whole blocks
    if (fixed >= 16 && fixed % 16 == 0) chunk = b == 1 ? std::max<int64_t>(1, fixed / d.lp) : fixed;
    a.chunk[b] = chunk;
    a.chunks[b] = std::max<int64_t>(1, (range[b] + chunk - 1) / chunk);
    const bool runs = b == 0 ? want_cmp_scores : d.enable[b];
    if (a.chunks[b] > 1 && runs) part[b] = a.n_items * d.h_kv * a.chunks[b] * 16;
  }
  fused_topn =
      compute_topn && detail::scores_topn_decode_fits(d) && !env_is("NSA_CUDA_DECODE_TOPN", "0");
  // The compressed branch's scores for the probs pass (instead of reading the compressed keys
  // again), where they take at most 256 MiB; NSA_CUDA_DECODE_SCORES=0 turns it off.
  const int64_t z_elems = d.total_q * d.h_q * d.nc_max;
  if (compute_topn && z_elems > 0 && z_elems <= (int64_t{64} << 20) &&
      d.nc_max <= int64_t{65535} * 256 &&  // probs_from_scores_kernel's grid
      !env_is("NSA_CUDA_DECODE_SCORES", "0")) {
    dec_z.allocate(static_cast<std::size_t>(z_elems) * sizeof(float),
                   "decode scores [" + ctx + "]");
    a.z = dec_z.get<float>();
  }
  // Each branch keeps its own partial outputs, so that work on the side stream (the window, the
  // compressed branch's merge) never shares them with the chain.
  for (int b = 0; b < 3; ++b) {
    dec_b[b] = a;
    if (part[b] == 0) continue;
    const char* names[3] = {"compressed", "selection", "window"};
    dec_part_o[b].allocate(static_cast<std::size_t>(part[b] * d.d_v) * sizeof(float),
                           std::string("decode ") + names[b] + " partial outputs [" + ctx + "]");
    dec_part_lse[b].allocate(static_cast<std::size_t>(part[b]) * sizeof(float),
                             std::string("decode ") + names[b] + " partial lse [" + ctx + "]");
    dec_b[b].part_o = dec_part_o[b].get<float>();
    dec_b[b].part_lse = dec_part_lse[b].get<float>();
  }
  if (!env_is("NSA_CUDA_DECODE_OVERLAP", "0")) side.create(ctx);
}

Plan::~Plan() { delete impl_; }

const nsa::ref::ValidConfig& Plan::config() const { return impl_->vc; }

template <class T>
void Plan::Impl::run(const DeviceInputs& in, const DeviceOutputs& out, BranchTimes* times,
                     cudaStream_t st) {
  // No query rows: every output is empty, and scratch buffers of size 0 are null pointers that
  // the index path below would mistake for a missing index list.
  if (vc.total_q == 0) {
    if (times) *times = BranchTimes{};
    return;
  }
  const auto& c = vc.cfg;
  const std::size_t ob_bytes = static_cast<std::size_t>(vc.total_q * c.h_q * c.d_v) * sizeof(T);
  const std::size_t lse_bytes = static_cast<std::size_t>(vc.total_q * c.h_q) * sizeof(float);
  std::array<T*, 3> ob{};
  std::array<float*, 3> lb{};
  for (int b = 0; b < 3; ++b) {
    const bool needed = b == 0 ? want_cmp_scores : dc.enable[b];
    if (!needed) continue;
    ob[b] = static_cast<T*>(out.o_branch[b]);
    lb[b] = out.lse[b];
    if (!ob[b]) {
      if (o_b[b].bytes() < ob_bytes) o_b[b].allocate(ob_bytes, "branch output [" + ctx + "]");
      ob[b] = o_b[b].get<T>();
    }
    if (!lb[b]) {
      if (lse[b].bytes() < lse_bytes) lse[b].allocate(lse_bytes, "branch lse [" + ctx + "]");
      lb[b] = lse[b].get<float>();
    }
  }
  const T* q = static_cast<const T*>(in.q);
  auto kin = [&](int b) { return static_cast<const T*>(in.k[b]); };
  auto vin = [&](int b) { return static_cast<const T*>(in.v[b]); };
  // The compressed keys/values: phi's output, or the given cache.
  const T* kcmp = cmp_given ? static_cast<const T*>(in.k_tilde) : kc.get<T>();
  const T* vcmp_in = cmp_given ? static_cast<const T*>(in.v_tilde) : vcmp.get<T>();
  if (want_cmp_scores && dc.total_c > 0 && (!kcmp || !vcmp_in))
    throw std::invalid_argument(
        "nsa::cuda: cmp_given config but DeviceInputs::k_tilde / v_tilde is null");

  bool z_stored = false;  // the decode compressed branch stored its scores in dec_b[0].z
  // Beside the chain on the side stream: the window, and the merge of the compressed branch's
  // partials where the probs pass reads its lse from them (stored scores); nothing else on the
  // chain reads o_cmp or lse_cmp then.
  const bool aside = decode && side.ready() && !times && !force_simple;
  const bool win_aside = aside && dc.enable[2];
  const bool cmp_merge_aside = aside && compute_topn && dec_b[0].z && dec_b[0].chunks[0] > 1;
  bool forked = false;  // something runs on the side stream: joined before the combination
  // Branch b on stream `s` (the window of a decode batch may run on the side stream).
  auto attend = [&](int b, const T* k, const T* v, const int32_t* idx, cudaStream_t s) {
    if (!force_simple) {
      if (decode && b != 1 &&
          detail::launch_attend_decode<T>(b, dc, dec_b[b], q, k, v, ob[b], lb[b], s, ctx,
                                          !(b == 0 && cmp_merge_aside))) {
        z_stored = b == 0 && dec_b[0].z;
        return;
      }
      if (decode && b == 1 &&
          detail::launch_slc_warp<T>(dc, q, k, v, idx, ob[b], lb[b], s, ctx, &dec_b[1]))
        return;
      if (detail::launch_attend_mma<T>(b, dc, q, k, v, idx, ob[b], lb[b], s, ctx)) return;
    }
    detail::launch_attend_simple<T>(b, dc, q, k, v, idx, ob[b], lb[b], s, ctx);
  };
  // pg of rows [r0, r0 + rows): the stored scores (which also give p_cmp), the tensor-core
  // passes, or the simple one that also keeps p_cmp.
  auto probs = [&](int64_t r0, int64_t rows, float* p_cmp) {
    if (z_stored && !force_simple) {
      detail::launch_probs_from_scores(dc, dec_b[0], r0, rows, lb[0], pg.get<float>(), p_cmp, st,
                                       ctx);
      return;
    }
    if (!p_cmp && !force_simple) {
      if (decode && detail::launch_probs_decode<T>(dc, dec_b[0], r0, rows, q, kcmp, lb[0],
                                                   pg.get<float>(), st, ctx))
        return;
      if (detail::launch_probs_mma<T>(dc, r0, rows, q, kcmp, lb[0], pg.get<float>(), st, ctx))
        return;
    }
    detail::launch_group_probs<T>(dc, r0, rows, q, kcmp, lb[0], pg.get<float>(), p_cmp, st, ctx);
  };

  EventTimer timer(times != nullptr, ctx);
  timer.mark(st);  // 0
  // The window first, beside everything up to the combination, when it runs on the side stream.
  if (win_aside) {
    attend(2, kin(2), vin(2), nullptr, side.fork(st, ctx));
    forked = true;
  }
  if (want_cmp_scores && !cmp_given) {
    detail::PhiDev<T> pk{static_cast<const T*>(in.phi_k_pos), static_cast<const T*>(in.phi_k_w1),
                         static_cast<const T*>(in.phi_k_b1), static_cast<const T*>(in.phi_k_w2),
                         static_cast<const T*>(in.phi_k_b2)};
    detail::PhiDev<T> pv{static_cast<const T*>(in.phi_v_pos), static_cast<const T*>(in.phi_v_w1),
                         static_cast<const T*>(in.phi_v_b1), static_cast<const T*>(in.phi_v_w2),
                         static_cast<const T*>(in.phi_v_b2)};
    detail::launch_compress<T>(dc, pk, kin(0), c.d_k, kc.get<T>(), phi_gemm, st, ctx);
    detail::launch_compress<T>(dc, pv, vin(0), c.d_v, vcmp.get<T>(), phi_gemm, st, ctx);
  }
  timer.mark(st);  // 1
  if (want_cmp_scores) attend(0, kcmp, vcmp_in, nullptr, st);
  // The decode kernel left its partials unmerged (z_stored: it ran); another path wrote o itself.
  if (want_cmp_scores && cmp_merge_aside && z_stored) {
    detail::launch_decode_merge<T>(0, dc, dec_b[0], ob[0], lb[0], side.fork(st, ctx), ctx);
    forked = true;
  }
  timer.mark(st);  // 2
  const int32_t* idx = in.indices;
  if (compute_topn) {
    float* sc = out.scores ? out.scores : scores.get<float>();
    int32_t* ind = out.indices ? out.indices : indices.get<int32_t>();
    const bool fused = fused_topn && !force_simple;  // the top-n runs with the mapping
    for (int64_t r0 = 0; r0 < vc.total_q; r0 += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, vc.total_q - r0);
      if (dc.nc_max > 0) probs(r0, rows, out.p_cmp);
      if (fused)
        detail::launch_scores_topn_decode(dc, r0, rows, pg.get<float>(), sc, ind, st, ctx);
      else
        detail::launch_map_scores(dc, r0, rows, pg.get<float>(), sc, st, ctx);
    }
    timer.mark(st);  // scores done
    if (!fused) detail::launch_topn(dc, sc, ind, st, ctx);
    idx = ind;
  } else {
    timer.mark(st);
  }
  if (!compute_topn && want_cmp_scores && out.p_cmp) {
    if (dc.nc_max > 0)
      detail::launch_group_probs<T>(dc, 0, vc.total_q, q, kcmp, lb[0], nullptr, out.p_cmp, st, ctx);
  }
  timer.mark(st);  // 3
  if (dc.enable[1]) {
    if (!idx) throw std::invalid_argument("nsa::cuda: given_indices config but no index list");
    attend(1, kin(1), vin(1), idx, st);
  }
  timer.mark(st);  // 4
  if (dc.enable[2] && !win_aside) attend(2, kin(2), vin(2), nullptr, st);
  if (forked) side.join(st, ctx);
  timer.mark(st);  // 5
  const T* obc[3] = {ob[0], ob[1], ob[2]};
  const T* gates[3] = {static_cast<const T*>(in.gate[0]), static_cast<const T*>(in.gate[1]),
                       static_cast<const T*>(in.gate[2])};
  detail::launch_combine<T>(dc, obc, gates, static_cast<T*>(out.o), st, ctx);
  timer.mark(st);  // 6
  if (times) {
    timer.sync();
    times->compress = timer.span(0);
    times->cmp_attn = timer.span(1);
    times->scores = timer.span(2);
    times->topn = timer.span(2) + timer.span(3);
    times->slc = timer.span(4);
    times->win = timer.span(5);
    times->combine = timer.span(6);
    times->total = timer.whole();
  }
}

void Plan::run(const DeviceInputs& in, const DeviceOutputs& out, BranchTimes* times) {
  impl_->run_dtype(in, out, times, nullptr);
}

void Plan::Impl::run_dtype(const DeviceInputs& in, const DeviceOutputs& out, BranchTimes* times,
                           cudaStream_t st) {
  switch (vc.cfg.dtype) {
    case nsa::ref::Dtype::f32:
      run<float>(in, out, times, st);
      break;
    case nsa::ref::Dtype::f16:
      run<__half>(in, out, times, st);
      break;
    case nsa::ref::Dtype::bf16:
      run<__nv_bfloat16>(in, out, times, st);
      break;
    default:
      throw std::invalid_argument("nsa::cuda: dtype fp64 is not supported by the kernels");
  }
}

namespace {

// Owners of the CUDA objects of one graph measurement (released on every path).
struct GraphParts {
  cudaStream_t stream = nullptr;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  ~GraphParts() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    if (stream) cudaStreamDestroy(stream);
  }
};

}  // namespace

std::vector<float> Plan::graph_replay_ms(const DeviceInputs& in, const DeviceOutputs& out, int reps,
                                         int per_sample) {
  auto& m = *impl_;
  const std::string& ctx = m.ctx;
  GraphParts gp;
  detail::check(cudaStreamCreateWithFlags(&gp.stream, cudaStreamNonBlocking), "cudaStreamCreate",
                ctx);
  // The warm-up run allocates what the plan keeps and sets the kernels' attributes, so that the
  // captured run is launches only.
  m.run_dtype(in, out, nullptr, gp.stream);
  detail::check(cudaStreamSynchronize(gp.stream), "cudaStreamSynchronize", ctx);
  detail::check(cudaStreamBeginCapture(gp.stream, cudaStreamCaptureModeThreadLocal),
                "cudaStreamBeginCapture", ctx);
  try {
    m.run_dtype(in, out, nullptr, gp.stream);
  } catch (...) {
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(gp.stream, &partial);
    if (partial) cudaGraphDestroy(partial);
    throw;
  }
  detail::check(cudaStreamEndCapture(gp.stream, &gp.graph), "cudaStreamEndCapture", ctx);
  detail::check(cudaGraphInstantiate(&gp.exec, gp.graph, 0), "cudaGraphInstantiate", ctx);
  detail::check(cudaEventCreate(&gp.start), "cudaEventCreate", ctx);
  detail::check(cudaEventCreate(&gp.stop), "cudaEventCreate", ctx);
  detail::check(cudaGraphLaunch(gp.exec, gp.stream), "cudaGraphLaunch", ctx);
  std::vector<float> ms;
  for (int r = 0; r < reps; ++r) {
    detail::check(cudaEventRecord(gp.start, gp.stream), "cudaEventRecord", ctx);
    for (int i = 0; i < per_sample; ++i)
      detail::check(cudaGraphLaunch(gp.exec, gp.stream), "cudaGraphLaunch", ctx);
    detail::check(cudaEventRecord(gp.stop, gp.stream), "cudaEventRecord", ctx);
    detail::check(cudaEventSynchronize(gp.stop), "cudaEventSynchronize", ctx);
    float t = 0;
    detail::check(cudaEventElapsedTime(&t, gp.start, gp.stop), "cudaEventElapsedTime", ctx);
    ms.push_back(t / static_cast<float>(std::max(1, per_sample)));
  }
  return ms;
}

}  // namespace nsa::cuda
