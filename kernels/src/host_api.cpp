// The host API: support check, dtype conversion, upload, one Plan run, download and widening.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "device_buffer.hpp"
#include "host_convert.hpp"
#include "launch.hpp"
#include "nsa/cuda/forward.hpp"

namespace nsa::cuda {

using detail::DeviceBuffer;
using detail::download;
using detail::Uploader;
using detail::widen;
using nsa::ref::Dtype;

bool device_available() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" state
    return false;
  }
  return n > 0;
}

std::string device_name() {
  if (!device_available()) return "";
  int dev = 0;
  cudaDeviceProp p{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&p, dev) != cudaSuccess)
    return "";
  return p.name;
}

std::string unsupported(const nsa::ref::ValidConfig& vc) {
  const auto& c = vc.cfg;
  if (c.dtype == Dtype::f64) return "dtype fp64 is not supported (fp32, fp16, bf16 are)";
  if (c.d_k > 256) return "d_k = " + std::to_string(c.d_k) + " > 256 is not supported";
  if (c.d_v > 256) return "d_v = " + std::to_string(c.d_v) + " > 256 is not supported";
  if (c.top_n > 6144) return "top_n = " + std::to_string(c.top_n) + " > 6144 is not supported";
  if (c.phi == nsa::ref::Phi::mlp && c.phi_hidden > 16384)
    return "phi_hidden = " + std::to_string(c.phi_hidden) + " > 16384 is not supported";
  if (vc.group * c.d_k > 16384)
    return "G * d_k = " + std::to_string(vc.group * c.d_k) + " > 16384 is not supported";
  if (c.given_indices && c.enable_slc && c.index_policy == nsa::ref::IndexPolicy::negative_to_zero)
    return "index_policy negative_to_zero is not supported for given index lists";
  return "";
}

nsa::ref::Outputs forward(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                          const Options& opt) {
  const auto& c = vc.cfg;
  if (const auto why = unsupported(vc); !why.empty())
    throw std::invalid_argument("nsa::cuda::forward: " + why);
  detail::check_host_inputs(vc, in, opt.validate_indices);
  if (!device_available()) throw CudaError("nsa::cuda::forward: no CUDA device available");

  Plan plan(vc);
  const Dtype dt = c.dtype;
  const std::size_t eb = dtype_bytes(dt);
  Uploader up{dt, "", {}, {}};
  up.bufs.reserve(32);
  DeviceInputs di = detail::upload_inputs(vc, in, up);
  const bool need_cmp_kv = c.enable_cmp || (c.enable_slc && !c.given_indices);
  DeviceBuffer idx_in;
  if (c.given_indices && c.enable_slc) {
    idx_in.allocate(in.indices.size() * sizeof(int32_t), "given indices");
    detail::check(
        cudaMemcpy(idx_in.get(), in.indices.data(), idx_in.bytes(), cudaMemcpyHostToDevice),
        "cudaMemcpy (upload)", "indices");
    di.indices = idx_in.get<int32_t>();
  }

  const int64_t rows = vc.total_q, nq = vc.total_q * c.h_q;
  const int64_t nc_max = opt.keep_scores ? vc.max_cmp_blocks() : 0;
  const int64_t ns_max = opt.keep_scores ? vc.max_slc_blocks() : 0;
  const bool compute_topn = c.enable_slc && !c.given_indices;
  DeviceBuffer o_dev(static_cast<std::size_t>(nq * c.d_v) * eb, "o");
  std::array<DeviceBuffer, 3> ob_dev, lse_dev;
  DeviceOutputs dout;
  dout.o = o_dev.get();
  for (int b = 0; b < 3; ++b) {
    if (!c.enabled(static_cast<nsa::ref::Branch>(b))) continue;
    ob_dev[b].allocate(static_cast<std::size_t>(nq * c.d_v) * eb, "o_branch");
    lse_dev[b].allocate(static_cast<std::size_t>(nq) * sizeof(float), "lse");
    dout.o_branch[b] = ob_dev[b].get();
    dout.lse[b] = lse_dev[b].get<float>();
  }
  DeviceBuffer idx_out, pcmp_dev, scores_dev;
  if (compute_topn) {
    idx_out.allocate(static_cast<std::size_t>(rows * c.h_kv * c.top_n) * sizeof(int32_t),
                     "indices");
    dout.indices = idx_out.get<int32_t>();
  }
  if (opt.keep_scores && need_cmp_kv && nc_max > 0) {
    pcmp_dev.allocate(static_cast<std::size_t>(nq * nc_max) * sizeof(float), "p_cmp");
    dout.p_cmp = pcmp_dev.get<float>();
  }
  if (opt.keep_scores && compute_topn) {
    scores_dev.allocate(static_cast<std::size_t>(rows * c.h_kv * ns_max) * sizeof(float), "scores");
    dout.scores = scores_dev.get<float>();
  }
  // Poison every output with NaN bytes (indices with 0x7f7f7f7f, an invalid block) so that an
  // element a kernel fails to write shows up in the comparison.
  for (DeviceBuffer* b : {&o_dev, &ob_dev[0], &ob_dev[1], &ob_dev[2], &lse_dev[0], &lse_dev[1],
                          &lse_dev[2], &pcmp_dev, &scores_dev})
    if (b->bytes()) detail::check(cudaMemset(b->get(), 0xff, b->bytes()), "cudaMemset", "poison");
  if (idx_out.bytes())
    detail::check(cudaMemset(idx_out.get(), 0x7f, idx_out.bytes()), "cudaMemset", "poison");
  plan.run(di, dout);
  detail::check(cudaDeviceSynchronize(), "nsa::cuda::forward (kernels)",
                "config: " + nsa::ref::describe(c));

  nsa::ref::Outputs out;
  for (int64_t r = 0; r < rows; ++r) out.rows.push_back(r);
  for (int64_t h = 0; h < c.h_q; ++h) out.heads.push_back(h);
  for (int64_t g = 0; g < c.h_kv; ++g) out.groups.push_back(g);
  out.d_v = c.d_v;
  out.top_n = c.top_n;
  out.nc_max = nc_max;
  out.ns_max = ns_max;
  const double ninf = -std::numeric_limits<double>::infinity();
  auto widen_all = [&](const DeviceBuffer& buf, std::size_t count) {
    const auto raw = download<unsigned char>(buf.get(), count * eb, "o");
    std::vector<double> v(count);
    for (std::size_t i = 0; i < count; ++i) v[i] = widen(raw.data() + i * eb, dt);
    return v;
  };
  const auto n_o = static_cast<std::size_t>(nq * c.d_v);
  out.o = widen_all(o_dev, n_o);
  for (int b = 0; b < 3; ++b) {
    if (!c.enabled(static_cast<nsa::ref::Branch>(b))) {
      out.o_branch[b].assign(n_o, 0.0);
      out.lse[b].assign(static_cast<std::size_t>(nq), ninf);
      continue;
    }
    out.o_branch[b] = widen_all(ob_dev[b], n_o);
    const auto l = download<float>(lse_dev[b].get(), static_cast<std::size_t>(nq), "lse");
    out.lse[b].assign(l.begin(), l.end());
  }
  const auto n_idx = static_cast<std::size_t>(rows * c.h_kv * c.top_n);
  if (compute_topn)
    out.indices = download<int32_t>(idx_out.get(), n_idx, "indices");
  else if (c.enable_slc)
    out.indices = in.indices;
  else
    out.indices.assign(n_idx, -1);
  if (opt.keep_scores) {
    if (dout.p_cmp) {
      const auto p =
          download<float>(pcmp_dev.get(), static_cast<std::size_t>(nq * nc_max), "p_cmp");
      out.p_cmp.assign(p.begin(), p.end());
    } else {
      out.p_cmp.assign(static_cast<std::size_t>(nq * nc_max), 0.0);
    }
    if (dout.scores) {
      const auto s = download<float>(scores_dev.get(),
                                     static_cast<std::size_t>(rows * c.h_kv * ns_max), "scores");
      out.scores.assign(s.begin(), s.end());
    } else {
      out.scores.assign(static_cast<std::size_t>(rows * c.h_kv * ns_max), ninf);
    }
  }
  return out;
}

void fill_uniform(void* dev, int64_t count, Dtype dt, uint64_t seed, float lo, float hi) {
  if (dt == Dtype::f64) throw std::invalid_argument("fill_uniform: dtype fp64 is not supported");
  detail::launch_fill(dev, count, static_cast<int>(dt), seed, lo, hi);
}

void* device_alloc(std::size_t bytes) {
  void* p = nullptr;
  detail::check(cudaMalloc(&p, bytes), "cudaMalloc", std::to_string(bytes) + " bytes");
  return p;
}

void device_free(void* p) noexcept { cudaFree(p); }

}  // namespace nsa::cuda
