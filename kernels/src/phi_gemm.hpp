// phi = linear / mlp through cuBLAS: the compressed blocks of one KV head are gathered into the
// rows of a matrix A = [vec(X_i + P)] (fp64), and phi becomes one or two DGEMMs against that
// head's weights (widened to fp64), with the bias and activation between them and one rounding
// to the input dtype on store. fp64 keeps phi's error under the fp32 baseline's (compress.cu).
#pragma once

#include <cublas_v2.h>

#include <cstdint>
#include <string>

#include "device_buffer.hpp"
#include "launch.hpp"

namespace nsa::cuda::detail {

// The cuBLAS handle and fp64 scratch of one plan; rows of A are processed in chunks so the
// scratch stays bounded whatever the sequence length.
class PhiGemm {
 public:
  PhiGemm() = default;
  PhiGemm(const PhiGemm&) = delete;
  PhiGemm& operator=(const PhiGemm&) = delete;
  ~PhiGemm();
  // Sizes the scratch for phi over inputs of width `max_dim` (d_k and d_v); no-op for mean.
  void prepare(const DevCfg& c, int64_t max_dim, const std::string& ctx);
  bool ready() const { return handle_ != nullptr; }

  template <class T>
  void run(const DevCfg& c, const PhiDev<T>& phi, const T* x, int64_t dim, T* out,
           cudaStream_t stream, const std::string& ctx);

 private:
  cublasHandle_t handle_ = nullptr;
  DeviceBuffer w1_, w2_, a_, h_, c_;  // fp64: weights of one head, gathered rows, hidden, output
  int64_t chunk_ = 0;                 // rows of A per GEMM
};

}  // namespace nsa::cuda::detail
