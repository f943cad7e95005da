// phi = linear / mlp as DGEMMs on gathered blocks (phi_gemm.hpp).
#include <algorithm>

#include "device.cuh"
#include "phi_gemm.hpp"

namespace nsa::cuda::detail {

namespace {

void check_cublas(cublasStatus_t st, const char* what, const std::string& ctx) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  throw_cuda_error(std::string("cuBLAS error in ") + what + ": " + cublasGetStatusString(st) +
                   " [" + ctx + "]");
}

// A[r, j * dim + e] = x[token j of compressed row r0 + r] + pos[j, e], in fp64.
template <class T>
__global__ void gather_blocks_kernel(DevCfg c, const T* __restrict__ x, const T* __restrict__ pos,
                                     int64_t dim, int64_t g, int64_t r0, int64_t rows,
                                     double* __restrict__ a) {
  const int64_t width = c.l * dim;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t row = r0 + r;
    const DevSeq sq = c.seqs[seq_of(c.cu_c, c.num_seqs, row)];
    const int64_t tok0 = sq.k_begin + (row - sq.c_begin) * c.d;
    for (int64_t f = threadIdx.x; f < width; f += blockDim.x) {
      const int64_t j = f / dim, e = f % dim;
      a[r * width + f] = static_cast<double>(to_f(x[((tok0 + j) * c.h_kv + g) * dim + e])) +
                         static_cast<double>(to_f(pos[f]));
    }
  }
}

template <class T>
__global__ void widen_kernel(const T* __restrict__ src, int64_t n, double* __restrict__ dst) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dst[i] = to_f(src[i]);
}

// H = act(H + b1) over [rows, m].
template <class T>
__global__ void bias_act_kernel(double* __restrict__ h, const T* __restrict__ b1, int64_t rows,
                                int64_t m, int act) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * m;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double v = h[i] + static_cast<double>(to_f(b1[i % m]));
    h[i] = act == 0 ? fmax(v, 0.0) : v / (1.0 + exp(-v));
  }
}

// out[(r0 + r) * h_kv + g, e] = C[r, e] (+ b2[e]), rounded once to T.
template <class T>
__global__ void store_rows_kernel(DevCfg c, const double* __restrict__ cm, const T* __restrict__ b2,
                                  int64_t dim, int64_t g, int64_t r0, int64_t rows,
                                  T* __restrict__ out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * dim;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / dim, e = i % dim;
    const double v = cm[i] + (b2 ? static_cast<double>(to_f(b2[e])) : 0.0);
    out[((r0 + r) * c.h_kv + g) * dim + e] = from_f64<T>(v);
  }
}

unsigned grid_1d(int64_t n) {
  const int64_t b = (n + 255) / 256;
  return static_cast<unsigned>(std::clamp<int64_t>(b, 1, 65535 * 16));
}

// Row-major C[n, k_out] = A[n, k_in] * W[k_in, k_out]: cuBLAS is column-major, so this is
// C^T = W^T * A^T with every buffer read as its own transpose.
void dgemm_rows(cublasHandle_t hd, const double* a, const double* w, double* cm, int64_t n,
                int64_t k_in, int64_t k_out, const std::string& ctx) {
  const double one = 1.0, zero = 0.0;
  check_cublas(
      cublasDgemm(hd, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(k_out), static_cast<int>(n),
                  static_cast<int>(k_in), &one, w, static_cast<int>(k_out), a,
                  static_cast<int>(k_in), &zero, cm, static_cast<int>(k_out)),
      "cublasDgemm (phi)", ctx);
}

}  // namespace

PhiGemm::~PhiGemm() {
  if (handle_) cublasDestroy(handle_);
}

void PhiGemm::prepare(const DevCfg& c, int64_t max_dim, const std::string& ctx) {
  if (c.phi == 0 || c.total_c == 0) return;
  check_cublas(cublasCreate(&handle_), "cublasCreate", ctx);
  const int64_t width = c.l * max_dim, m = c.phi == 2 ? c.phi_hidden : max_dim;
  // At most ~256 MiB of gathered rows per GEMM.
  chunk_ = std::clamp<int64_t>((int64_t{256} << 20) / (8 * width), 1, c.total_c);
  const auto doubles = [](int64_t n) { return static_cast<std::size_t>(n) * sizeof(double); };
  w1_.allocate(doubles(width * m), "phi weights (fp64) [" + ctx + "]");
  if (c.phi == 2) {
    w2_.allocate(doubles(m * max_dim), "phi output weights (fp64) [" + ctx + "]");
    h_.allocate(doubles(chunk_ * m), "phi hidden (fp64) [" + ctx + "]");
  }
  a_.allocate(doubles(chunk_ * width), "phi gathered blocks (fp64) [" + ctx + "]");
  c_.allocate(doubles(chunk_ * max_dim), "phi output (fp64) [" + ctx + "]");
}

template <class T>
void PhiGemm::run(const DevCfg& c, const PhiDev<T>& phi, const T* x, int64_t dim, T* out,
                  cudaStream_t stream, const std::string& ctx) {
  if (c.total_c == 0 || c.h_kv == 0) return;
  if (!handle_) throw_cuda_error("phi GEMM run before PhiGemm::prepare [" + ctx + "]");
  check_cublas(cublasSetStream(handle_, stream), "cublasSetStream", ctx);
  const bool mlp = c.phi == 2;
  const int64_t width = c.l * dim, m = mlp ? c.phi_hidden : dim;
  double* w1 = w1_.get<double>();
  double* w2 = w2_.get<double>();
  double* a = a_.get<double>();
  double* h = h_.get<double>();
  double* cm = c_.get<double>();
  for (int64_t g = 0; g < c.h_kv; ++g) {
    widen_kernel<T><<<grid_1d(width * m), 256, 0, stream>>>(phi.w1 + g * width * m, width * m, w1);
    check_launch("widen_kernel (phi W1)", ctx);
    if (mlp) {
      widen_kernel<T><<<grid_1d(m * dim), 256, 0, stream>>>(phi.w2 + g * m * dim, m * dim, w2);
      check_launch("widen_kernel (phi W2)", ctx);
    }
    for (int64_t r0 = 0; r0 < c.total_c; r0 += chunk_) {
      const int64_t rows = std::min(chunk_, c.total_c - r0);
      const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(rows, 65535 * 16));
      gather_blocks_kernel<T>
          <<<blocks, 256, 0, stream>>>(c, x, phi.pos + g * width, dim, g, r0, rows, a);
      check_launch("gather_blocks_kernel", ctx);
      if (mlp) {
        dgemm_rows(handle_, a, w1, h, rows, width, m, ctx);
        bias_act_kernel<T>
            <<<grid_1d(rows * m), 256, 0, stream>>>(h, phi.b1 + g * m, rows, m, c.act);
        check_launch("bias_act_kernel", ctx);
        dgemm_rows(handle_, h, w2, cm, rows, m, dim, ctx);
      } else {
        dgemm_rows(handle_, a, w1, cm, rows, width, dim, ctx);
      }
      store_rows_kernel<T><<<grid_1d(rows * dim), 256, 0, stream>>>(
          c, cm, mlp ? phi.b2 + g * dim : nullptr, dim, g, r0, rows, out);
      check_launch("store_rows_kernel", ctx);
    }
  }
}

#define NSA_INST(T)                                                                     \
  template void PhiGemm::run<T>(const DevCfg&, const PhiDev<T>&, const T*, int64_t, T*, \
                                cudaStream_t, const std::string&);
NSA_INST(float)
NSA_INST(__half)
NSA_INST(__nv_bfloat16)
#undef NSA_INST

}  // namespace nsa::cuda::detail
