// The backward's host API: validation, upload, the index lists (given, or from the CUDA forward),
// the launches query side -> selection index -> key side per branch -> finish, and the download.
#include <algorithm>
#include <array>
#include <numeric>
#include <optional>
#include <sstream>
#include <type_traits>
#include <vector>

#include "backward_launch.hpp"
#include "backward_mma_host.hpp"
#include "backward_shape.hpp"
#include "device_buffer.hpp"
#include "host_convert.hpp"
#include "launch.hpp"
#include "nsa/cuda/backward.hpp"
#include "phi_gemm.hpp"

namespace nsa::cuda {

using detail::DeviceBuffer;
using nsa::ref::Dtype;

std::string backward_unsupported(const nsa::ref::ValidConfig& vc) { return unsupported(vc); }

namespace {

// Bits of the selection index's sort key: enough for the sentinel h_kv * total_k.
int index_end_bit(const nsa::ref::ValidConfig& vc) {
  uint64_t s = static_cast<uint64_t>(vc.cfg.h_kv) * static_cast<uint64_t>(vc.total_k);
  int bits = 1;
  while (s >> bits) ++bits;
  return bits;
}

int64_t slc_entries(const nsa::ref::ValidConfig& vc) {
  return vc.cfg.enable_slc ? vc.total_q * vc.cfg.h_kv * vc.cfg.top_n : 0;
}

int64_t total_cmp(const nsa::ref::ValidConfig& vc) {
  int64_t n = 0;
  for (const auto& s : vc.seqs) n += vc.num_cmp_blocks(s.t_k);
  return n;
}

std::string context(const nsa::ref::ValidConfig& vc) {
  const auto& c = vc.cfg;
  std::ostringstream o;
  o << "backward dtype=" << nsa::ref::to_string(c.dtype) << " B=" << vc.seqs.size()
    << " total_q=" << vc.total_q << " total_k=" << vc.total_k << " h_q=" << c.h_q
    << " h_kv=" << c.h_kv << " d_k=" << c.d_k << " d_v=" << c.d_v << " profile=" << c.profile;
  return o.str();
}

// Start and stop events per stage of the launch sequence, recorded only when timing is asked
// for; a stage that never ran reports 0. Stages bracket launches only, so host-side allocation
// between them is not counted.
enum Stage {
  kStageForward,
  kStageCompress,
  kStageQuery,
  kStageIndex,
  kStageKeys,  // + branch
  kStagePhi = kStageKeys + 3,
  kStageFinish,
  kStageDq,  // + branch: inside the query stage (tensor-core path)
  kStages = kStageDq + 3
};

class StageEvents {
 public:
  StageEvents(bool on, cudaStream_t stream) : on_(on), stream_(stream) {
    if (!on_) return;
    for (auto& e : start_) detail::check(cudaEventCreate(&e), "cudaEventCreate", "stage timing");
    for (auto& e : stop_) detail::check(cudaEventCreate(&e), "cudaEventCreate", "stage timing");
  }
  StageEvents(const StageEvents&) = delete;
  StageEvents& operator=(const StageEvents&) = delete;
  ~StageEvents() {
    if (!on_) return;
    for (auto& e : start_) cudaEventDestroy(e);
    for (auto& e : stop_) cudaEventDestroy(e);
  }
  void begin(int s) { record(start_[s], s); }
  void end(int s) {
    record(stop_[s], s);
    ran_[s] = true;
  }
  // After a device synchronization.
  void report(BackwardTimes& t) const {
    float ms[kStages] = {};
    for (int s = 0; s < kStages; ++s)
      if (ran_[s])
        detail::check(cudaEventElapsedTime(&ms[s], start_[s], stop_[s]), "cudaEventElapsedTime",
                      "stage timing");
    t = BackwardTimes{};
    t.forward = ms[kStageForward];
    t.compress = ms[kStageCompress];
    t.query = ms[kStageQuery];
    t.index = ms[kStageIndex];
    for (int b = 0; b < 3; ++b) t.keys[b] = ms[kStageKeys + b];
    for (int b = 0; b < 3; ++b) t.dq[b] = ms[kStageDq + b];
    t.phi = ms[kStagePhi];
    t.finish = ms[kStageFinish];
    for (int s = kStageCompress; s <= kStageFinish; ++s) t.backward += ms[s];
  }

 private:
  void record(cudaEvent_t e, int s) {
    if (on_)
      detail::check(cudaEventRecord(e, stream_), "cudaEventRecord", "stage " + std::to_string(s));
  }
  bool on_;
  cudaStream_t stream_;
  std::array<cudaEvent_t, kStages> start_{}, stop_{};
  std::array<bool, kStages> ran_{};
};

template <class T>
nsa::ref::Gradients run(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                        const std::vector<double>& d_o, std::vector<int32_t>* indices_out,
                        BackwardTimes* times) {
  const auto& c = vc.cfg;
  const std::string ctx = context(vc);
  const Dtype dt = c.dtype;
  const cudaStream_t st = nullptr;
  const auto sz = [](int64_t x) { return static_cast<std::size_t>(x); };
  const int64_t nq = vc.total_q * c.h_q, nk = vc.total_k * c.h_kv;

  // Tables.
  const bwd::ShapeTables tables = bwd::shape_tables(vc);
  std::vector<detail::DevSeq> dseqs;
  for (const auto& q : tables.seqs)
    dseqs.push_back({q.q_begin, q.k_begin, q.t_q, q.t_k, q.c_begin});
  auto table = [&](const void* src, std::size_t bytes, const char* what) {
    DeviceBuffer b(bytes, std::string(what) + " [" + ctx + "]");
    if (bytes)
      detail::check(cudaMemcpy(b.get(), src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy", what);
    return b;
  };
  auto vec_table = [&](const std::vector<int64_t>& v, const char* what) {
    return table(v.data(), v.size() * sizeof(int64_t), what);
  };
  const DeviceBuffer seqs_d =
      table(tables.seqs.data(), tables.seqs.size() * sizeof(bwd::Seq), "sequences");
  const DeviceBuffer dseqs_d =
      table(dseqs.data(), dseqs.size() * sizeof(detail::DevSeq), "sequences");
  const DeviceBuffer cuq_d = vec_table(tables.cu_q, "cu_seqlens_q");
  const DeviceBuffer cuk_d = vec_table(tables.cu_k, "cu_seqlens_k");
  const DeviceBuffer cuc_d = vec_table(tables.cu_c, "cmp offsets");
  bwd::Shape sh = bwd::shape_of(vc, tables);
  sh.seqs = seqs_d.get<bwd::Seq>();
  sh.cu_q = cuq_d.get<int64_t>();
  sh.cu_k = cuk_d.get<int64_t>();
  sh.cu_c = cuc_d.get<int64_t>();
  const int64_t tc = sh.total_c;

  // Inputs, in the dtype.
  detail::Uploader up{dt, ctx, {}, {}};
  up.bufs.reserve(32);
  const DeviceInputs di = detail::upload_inputs(vc, in, up);
  const T* d_o_dev = static_cast<const T*>(up(d_o, "do"));

  StageEvents ev(times != nullptr, st);

  // The index lists: given, or the CUDA forward's. The tensor-core path also takes the forward's
  // branch outputs and fp32 lse (what a training forward keeps); the fp64 kernels recompute
  // everything and take only the lists.
  constexpr bool kMmaType = !std::is_same_v<T, float>;  // tensor cores: fp16 / bf16
  const bool mma = kMmaType && detail::mma_backward_fits(vc);
  const int64_t n_idx = vc.total_q * c.h_kv * c.top_n;
  DeviceBuffer idx_d;
  std::array<DeviceBuffer, 3> obr_d, lsef_d;
  if (c.enable_slc) {
    idx_d.allocate(sz(n_idx) * sizeof(int32_t), "indices [" + ctx + "]");
    if (c.given_indices)
      detail::check(
          cudaMemcpy(idx_d.get(), in.indices.data(), idx_d.bytes(), cudaMemcpyHostToDevice),
          "cudaMemcpy (upload)", "indices");
    else
      detail::check(cudaMemset(idx_d.get(), 0x7f, idx_d.bytes()), "cudaMemset", "poison");
  }
  if (vc.total_q > 0 && (mma || (c.enable_slc && !c.given_indices))) {
    DeviceBuffer o_fwd(sz(nq * c.d_v) * sizeof(T), "forward o [" + ctx + "]");
    DeviceOutputs dout;
    dout.o = o_fwd.get();
    DeviceInputs fin = di;
    if (c.enable_slc && c.given_indices)
      fin.indices = idx_d.get<const int32_t>();
    else if (c.enable_slc)
      dout.indices = idx_d.get<int32_t>();
    if (mma)
      for (int b = 0; b < 3; ++b) {
        if (!sh.enable[b]) continue;
        obr_d[b].allocate(sz(nq * c.d_v) * sizeof(T), "forward o_b [" + ctx + "]");
        lsef_d[b].allocate(sz(nq) * sizeof(float), "forward lse_b [" + ctx + "]");
        dout.o_branch[b] = obr_d[b].get();
        dout.lse[b] = lsef_d[b].get<float>();
      }
    Plan plan(vc);
    ev.begin(kStageForward);
    plan.run(fin, dout);
    ev.end(kStageForward);
  }

  const auto cast = [](const void* p) { return static_cast<const T*>(p); };
  // Compressed K/V as the forward stores them (its own phi kernels, rounded to the dtype).
  // A given cache (cmp_given) is read as it is: phi does not run.
  DeviceBuffer kc_d, vc_d;
  if (c.enable_cmp && tc > 0 && !c.cmp_given) {
    kc_d.allocate(sz(tc * c.h_kv * c.d_k) * sizeof(T), "compressed K [" + ctx + "]");
    vc_d.allocate(sz(tc * c.h_kv * c.d_v) * sizeof(T), "compressed V [" + ctx + "]");
    detail::DevCfg dc{};
    dc.total_q = vc.total_q;
    dc.total_k = vc.total_k;
    dc.total_c = tc;
    dc.h_q = c.h_q;
    dc.h_kv = c.h_kv;
    dc.group = vc.group;
    dc.d_k = c.d_k;
    dc.d_v = c.d_v;
    dc.l = c.cmp_block;
    dc.d = c.cmp_stride;
    dc.phi = sh.phi;
    dc.act = sh.act;
    dc.phi_hidden = c.phi_hidden;
    dc.num_seqs = sh.num_seqs;
    dc.seqs = dseqs_d.get<detail::DevSeq>();
    dc.cu_q = sh.cu_q;
    dc.cu_c = sh.cu_c;
    detail::PhiGemm gemm;
    gemm.prepare(dc, std::max(c.d_k, c.d_v), ctx);
    const detail::PhiDev<T> pk{cast(di.phi_k_pos), cast(di.phi_k_w1), cast(di.phi_k_b1),
                               cast(di.phi_k_w2), cast(di.phi_k_b2)};
    const detail::PhiDev<T> pv{cast(di.phi_v_pos), cast(di.phi_v_w1), cast(di.phi_v_b1),
                               cast(di.phi_v_w2), cast(di.phi_v_b2)};
    ev.begin(kStageCompress);
    detail::launch_compress<T>(dc, pk, cast(di.k[0]), c.d_k, kc_d.get<T>(), gemm, st, ctx);
    detail::launch_compress<T>(dc, pv, cast(di.v[0]), c.d_v, vc_d.get<T>(), gemm, st, ctx);
    ev.end(kStageCompress);
  }

  bwd::Tensors<T> x{};
  x.q = static_cast<const T*>(di.q);
  for (int b = 0; b < 3; ++b) {
    x.k[b] = static_cast<const T*>(di.k[b]);
    x.v[b] = static_cast<const T*>(di.v[b]);
    x.gate[b] = static_cast<const T*>(di.gate[b]);
  }
  x.d_o = d_o_dev;
  x.kc = c.cmp_given ? cast(di.k_tilde) : kc_d.get<const T>();
  x.vc = c.cmp_given ? cast(di.v_tilde) : vc_d.get<const T>();
  x.idx = idx_d.get<const int32_t>();

  // Outputs and scratch, every byte poisoned (NaN) so that an unwritten element shows.
  std::vector<DeviceBuffer*> poison;
  auto alloc = [&](DeviceBuffer& b, std::size_t bytes, const char* what) {
    b.allocate(bytes, std::string(what) + " [" + ctx + "]");
    poison.push_back(&b);
  };
  std::array<DeviceBuffer, 3> lse_d, dd_d, dg64_d, dg_d, dk64_d, dv64_d, dk_d, dv_d;
  DeviceBuffer dq64_d, dq_d, dks_d, dvs_d;
  if (!mma) alloc(dq64_d, sz(nq * c.d_k) * 8, "dq (fp64)");
  alloc(dq_d, sz(nq * c.d_k) * sizeof(T), "dq");
  for (int b = 0; b < 3; ++b) {
    if (!sh.enable[b]) continue;
    if (!mma) {
      alloc(lse_d[b], sz(nq) * 8, "lse (fp64)");
      alloc(dd_d[b], sz(nq) * 8, "D (fp64)");
      alloc(dg64_d[b], sz(nq) * 8, "dg (fp64)");
    }
    alloc(dg_d[b], sz(nq) * sizeof(T), "dg");
    const int64_t rows = b == 0 ? tc : vc.total_k;
    alloc(dk64_d[b], sz(rows * c.h_kv * c.d_k) * 8, "dK (fp64)");
    alloc(dv64_d[b], sz(rows * c.h_kv * c.d_v) * 8, "dV (fp64)");
    if (b == 0 && c.cmp_given) continue;  // no token gradients: dk_tilde / dv_tilde instead
    alloc(dk_d[b], sz(nk * c.d_k) * sizeof(T), "dK");
    alloc(dv_d[b], sz(nk * c.d_v) * sizeof(T), "dV");
  }
  // phi = linear / mlp: the blocks' input gradients, mlp's hidden values, the parameters'.
  const bool phi_bwd = sh.enable[0] && sh.phi != 0 && tc > 0 && !c.cmp_given;
  std::array<DeviceBuffer, 2> dx_d, a_d, dh_d;
  std::array<std::array<DeviceBuffer, 5>, 2> dpar_d;
  if (phi_bwd)
    for (int kv = 0; kv < 2; ++kv) {
      const int64_t dim = kv == 0 ? c.d_k : c.d_v;
      alloc(dx_d[kv], sz(tc * c.h_kv * c.cmp_block * dim) * 8, "phi dx (fp64)");
      if (sh.phi == 2) {
        alloc(a_d[kv], sz(tc * c.h_kv * c.phi_hidden) * 8, "phi hidden (fp64)");
        alloc(dh_d[kv], sz(tc * c.h_kv * c.phi_hidden) * 8, "phi dh (fp64)");
      }
      for (int w = 0; w < 5; ++w)
        alloc(dpar_d[kv][w], sz(bwd::phi_param_size(sh, dim, w)) * sizeof(T), "phi gradient");
    }
  DeviceBuffer dkt_d, dvt_d;  // cmp_given: the cache's gradients
  if (c.cmp_given && sh.enable[0]) {
    alloc(dkt_d, sz(tc * c.h_kv * c.d_k) * sizeof(T), "dk_tilde");
    alloc(dvt_d, sz(tc * c.h_kv * c.d_v) * sizeof(T), "dv_tilde");
  }
  if (c.shared_kv) {
    alloc(dks_d, sz(nk * c.d_k) * sizeof(T), "dk_shared");
    alloc(dvs_d, sz(nk * c.d_v) * sizeof(T), "dv_shared");
  }
  for (DeviceBuffer* b : poison)
    if (b->bytes()) detail::check(cudaMemset(b->get(), 0xff, b->bytes()), "cudaMemset", "poison");

  double* lse[3] = {lse_d[0].get<double>(), lse_d[1].get<double>(), lse_d[2].get<double>()};
  double* dd[3] = {dd_d[0].get<double>(), dd_d[1].get<double>(), dd_d[2].get<double>()};
  double* dg64[3] = {dg64_d[0].get<double>(), dg64_d[1].get<double>(), dg64_d[2].get<double>()};
  T* dg[3] = {dg_d[0].get<T>(), dg_d[1].get<T>(), dg_d[2].get<T>()};
  std::optional<detail::MmaBackward<T>> mb;
  detail::MmaBackwardIo<T> io;
  if constexpr (kMmaType)
    if (mma) {
      mb.emplace(vc, sh, ctx);
      io.q = x.q;
      for (int b = 0; b < 3; ++b) {
        io.k[b] = b == 0 ? x.kc : x.k[b];
        io.v[b] = b == 0 ? x.vc : x.v[b];
        io.gate[b] = x.gate[b];
        io.o[b] = obr_d[b].get<const T>();
        io.lse[b] = lsef_d[b].get<const float>();
        io.dg[b] = dg[b];
        io.dk[b] = dk64_d[b].get<double>();
        io.dv[b] = dv64_d[b].get<double>();
      }
      io.d_o = x.d_o;
      io.idx = x.idx;
      io.dq = dq_d.get<T>();
    }
  ev.begin(kStageQuery);
  if constexpr (kMmaType)
    if (mma) {
      mb->prep(io, st);
      for (int b = 0; b < 3; ++b) {
        ev.begin(kStageDq + b);
        mb->dq(b, io, st);
        ev.end(kStageDq + b);
      }
      mb->finish_dq(io, st);
    }
  if (!mma)
    detail::launch_bwd_query<T>(sh, x, lse, dd, dg64, dq64_d.get<double>(), dg, dq_d.get<T>(), st,
                                ctx);
  ev.end(kStageQuery);

  // The selection's inverted index.
  const int64_t entries = slc_entries(vc);
  DeviceBuffer keys_tmp, rows_tmp, keys_d, rows_d, temp_d;
  bwd::SlcIndex si{nullptr, nullptr, 0};
  if (entries > 0) {
    const int end_bit = index_end_bit(vc);
    keys_tmp.allocate(sz(entries) * 8, "index keys [" + ctx + "]");
    rows_tmp.allocate(sz(entries) * 8, "index rows [" + ctx + "]");
    keys_d.allocate(sz(entries) * 8, "sorted index keys [" + ctx + "]");
    rows_d.allocate(sz(entries) * 8, "sorted index rows [" + ctx + "]");
    const std::size_t temp_bytes = detail::bwd_index_temp_bytes(entries, end_bit);
    temp_d.allocate(temp_bytes, "index sort scratch [" + ctx + "]");
    ev.begin(kStageIndex);
    detail::launch_bwd_index(sh, x.idx, keys_tmp.get<uint64_t>(), rows_tmp.get<int64_t>(),
                             keys_d.get<uint64_t>(), rows_d.get<int64_t>(), temp_d.get(),
                             temp_bytes, end_bit, st, ctx);
    ev.end(kStageIndex);
    si = {keys_d.get<const uint64_t>(), rows_d.get<const int64_t>(), entries};
  }

  const bwd::RowStats stats{{lse[0], lse[1], lse[2]}, {dd[0], dd[1], dd[2]}};
  for (int b = 0; b < 3; ++b)
    if (sh.enable[b]) {
      ev.begin(kStageKeys + b);
      if constexpr (kMmaType)
        if (mma) mb->keys(b, io, si, st);
      if (!mma)
        detail::launch_bwd_keys<T>(b, sh, x, stats, si, dk64_d[b].get<double>(),
                                   dv64_d[b].get<double>(), st, ctx);
      ev.end(kStageKeys + b);
    }
  ev.begin(kStagePhi);
  if (phi_bwd)
    for (int kv = 0; kv < 2; ++kv) {
      const bwd::PhiView<T> pvw = kv == 0 ? bwd::PhiView<T>{x.k[0],
                                                            cast(di.phi_k_pos),
                                                            cast(di.phi_k_w1),
                                                            cast(di.phi_k_b1),
                                                            cast(di.phi_k_w2),
                                                            cast(di.phi_k_b2),
                                                            c.d_k}
                                          : bwd::PhiView<T>{x.v[0],
                                                            cast(di.phi_v_pos),
                                                            cast(di.phi_v_w1),
                                                            cast(di.phi_v_b1),
                                                            cast(di.phi_v_w2),
                                                            cast(di.phi_v_b2),
                                                            c.d_v};
      T* dpar[5];
      for (int w = 0; w < 5; ++w) dpar[w] = dpar_d[kv][w].get<T>();
      detail::launch_bwd_phi<T>(sh, pvw, (kv == 0 ? dk64_d : dv64_d)[0].get<const double>(),
                                dx_d[kv].get<double>(), a_d[kv].get<double>(),
                                dh_d[kv].get<double>(), dpar, st, ctx);
    }
  ev.end(kStagePhi);
  // What the tokens gather from the compressed blocks: dy (mean) or dx (linear / mlp).
  const double* kblk = phi_bwd ? dx_d[0].get<const double>() : dk64_d[0].get<const double>();
  const double* vblk = phi_bwd ? dx_d[1].get<const double>() : dv64_d[0].get<const double>();
  const double* kacc[3] = {nullptr, dk64_d[1].get<const double>(), dk64_d[2].get<const double>()};
  const double* vacc[3] = {nullptr, dv64_d[1].get<const double>(), dv64_d[2].get<const double>()};
  T* dk_out[3] = {dk_d[0].get<T>(), dk_d[1].get<T>(), dk_d[2].get<T>()};
  T* dv_out[3] = {dv_d[0].get<T>(), dv_d[1].get<T>(), dv_d[2].get<T>()};
  // With a given cache the compression branch's gradients stay with its blocks: the tokens
  // (and a shared K/V's sum) get none.
  bwd::Shape sh_tokens = sh;
  if (c.cmp_given) sh_tokens.enable[0] = false;
  ev.begin(kStageFinish);
  detail::launch_bwd_finish<T>(sh_tokens, c.d_k, kblk, kacc, dk_out, dks_d.get<T>(), st, ctx);
  detail::launch_bwd_finish<T>(sh_tokens, c.d_v, vblk, vacc, dv_out, dvs_d.get<T>(), st, ctx);
  if (dkt_d.bytes()) {
    detail::launch_bwd_round<T>(dk64_d[0].get<const double>(), tc * c.h_kv * c.d_k, dkt_d.get<T>(),
                                st, ctx);
    detail::launch_bwd_round<T>(dv64_d[0].get<const double>(), tc * c.h_kv * c.d_v, dvt_d.get<T>(),
                                st, ctx);
  }
  ev.end(kStageFinish);
  detail::check(cudaDeviceSynchronize(), "nsa::cuda::backward (kernels)",
                "config: " + nsa::ref::describe(c));
  if (times) ev.report(*times);

  // Download, widen.
  const std::size_t eb = sizeof(T);
  auto widen_all = [&](const DeviceBuffer& buf, std::size_t count, const char* what) {
    const auto raw = detail::download<unsigned char>(buf.get(), count * eb, what);
    std::vector<double> v(count);
    for (std::size_t i = 0; i < count; ++i) v[i] = detail::widen(raw.data() + i * eb, dt);
    return v;
  };
  nsa::ref::Gradients g;
  g.rows.resize(sz(vc.total_q));
  std::iota(g.rows.begin(), g.rows.end(), int64_t{0});
  g.keys.resize(sz(vc.total_k));
  std::iota(g.keys.begin(), g.keys.end(), int64_t{0});
  g.dq = widen_all(dq_d, sz(nq * c.d_k), "dq");
  for (int b = 0; b < 3; ++b) {
    if (!sh.enable[b] || (b == 0 && c.cmp_given)) {  // a given cache: no token gradients
      g.dg[b] = sh.enable[b] ? widen_all(dg_d[b], sz(nq), "dg") : std::vector<double>(sz(nq));
      g.dk[b].assign(sz(nk * c.d_k), 0.0);
      g.dv[b].assign(sz(nk * c.d_v), 0.0);
      continue;
    }
    g.dg[b] = widen_all(dg_d[b], sz(nq), "dg");
    g.dk[b] = widen_all(dk_d[b], sz(nk * c.d_k), "dk");
    g.dv[b] = widen_all(dv_d[b], sz(nk * c.d_v), "dv");
  }
  if (c.shared_kv) {
    g.dk_shared = widen_all(dks_d, sz(nk * c.d_k), "dk_shared");
    g.dv_shared = widen_all(dvs_d, sz(nk * c.d_v), "dv_shared");
  }
  if (c.cmp_given) {  // exactly 0 when the compression branch is off
    g.dk_tilde = dkt_d.bytes() ? widen_all(dkt_d, sz(tc * c.h_kv * c.d_k), "dk_tilde")
                               : std::vector<double>(sz(tc * c.h_kv * c.d_k));
    g.dv_tilde = dvt_d.bytes() ? widen_all(dvt_d, sz(tc * c.h_kv * c.d_v), "dv_tilde")
                               : std::vector<double>(sz(tc * c.h_kv * c.d_v));
  }
  if (sh.enable[0] && !c.cmp_given)  // phi's parameters: exactly 0 where no block exists
    for (int kv = 0; kv < 2; ++kv) {
      nsa::ref::PhiParams& pp = kv == 0 ? g.dphi_k : g.dphi_v;
      std::vector<double>* dst[5] = {&pp.pos, &pp.w1, &pp.b1, &pp.w2, &pp.b2};
      const int64_t dim = kv == 0 ? c.d_k : c.d_v;
      for (int w = 0; w < 5; ++w) {
        const auto n = sz(bwd::phi_param_size(sh, dim, w));
        *dst[w] = phi_bwd ? widen_all(dpar_d[kv][w], n, "phi gradient") : std::vector<double>(n);
      }
    }
  if (indices_out) {
    if (c.enable_slc && c.given_indices)
      *indices_out = in.indices;
    else if (c.enable_slc)
      *indices_out = detail::download<int32_t>(idx_d.get(), sz(n_idx), "indices");
    else
      indices_out->assign(sz(n_idx), -1);
  }
  return g;
}

}  // namespace

std::size_t backward_scratch_bytes(const nsa::ref::ValidConfig& vc) {
  const auto& c = vc.cfg;
  const int64_t nq = vc.total_q * c.h_q, tc = total_cmp(vc);
  const bool mma = detail::mma_backward_fits(vc);
  int64_t doubles = mma ? 0 : nq * c.d_k;  // fp64 kernels: dq accumulator
  for (int b = 0; b < 3; ++b) {
    if (!c.enabled(static_cast<nsa::ref::Branch>(b))) continue;
    if (!mma) doubles += 3 * nq;  // lse, D, dg
    doubles += (b == 0 ? tc : vc.total_k) * c.h_kv * (c.d_k + c.d_v);
  }
  if (c.enable_cmp && c.phi != nsa::ref::Phi::mean)  // dx per block; mlp: a and dh per block
    doubles +=
        tc * c.h_kv *
        (c.cmp_block * (c.d_k + c.d_v) + (c.phi == nsa::ref::Phi::mlp ? 4 * c.phi_hidden : 0));
  const int64_t entries = slc_entries(vc);
  std::size_t bytes =
      static_cast<std::size_t>(doubles) * 8 + static_cast<std::size_t>(entries) * 32;
  if (entries > 0 && device_available())
    bytes += detail::bwd_index_temp_bytes(entries, index_end_bit(vc));
  if (mma) bytes += detail::mma_backward_scratch_bytes(vc);
  return bytes;
}

nsa::ref::Gradients backward(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                             const std::vector<double>& d_o, const BackwardOptions& opt,
                             std::vector<int32_t>* indices) {
  const auto& c = vc.cfg;
  if (const auto why = backward_unsupported(vc); !why.empty())
    throw std::invalid_argument("nsa::cuda::backward: " + why);
  detail::check_host_inputs(vc, in, opt.validate_indices);
  nsa::ref::check_grad_output(vc, d_o);
  if (!device_available()) throw CudaError("nsa::cuda::backward: no CUDA device available");
  switch (c.dtype) {
    case Dtype::f32:
      return run<float>(vc, in, d_o, indices, opt.times);
    case Dtype::f16:
      return run<__half>(vc, in, d_o, indices, opt.times);
    case Dtype::bf16:
      return run<__nv_bfloat16>(vc, in, d_o, indices, opt.times);
    default:
      throw std::invalid_argument("nsa::cuda::backward: dtype fp64 is not supported");
  }
}

}  // namespace nsa::cuda
