#include "tensor_map.hpp"

#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "launch.hpp"

namespace nsa::cuda::detail {

namespace {

// The driver's tensor-map encoder, looked up once through the runtime (no libcuda link).
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder(const std::string& ctx) {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [&] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult found{};
    check(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault,
                                           &found),
          "cudaGetDriverEntryPointByVersion(cuTensorMapEncodeTiled)", ctx);
    if (found != cudaDriverEntryPointSuccess || !p)
      throw_cuda_error("cuTensorMapEncodeTiled is not available from the driver [" + ctx + "]");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

}  // namespace

template <class T>
CUtensorMap key_tile_map(const T* base, const T* stand_in, int64_t rows, int64_t h_kv, int64_t D,
                         const std::string& ctx) {
  CUtensorMap map{};
  const void* addr = rows > 0 ? static_cast<const void*>(base) : stand_in;
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(D), static_cast<cuuint64_t>(h_kv),
                              static_cast<cuuint64_t>(rows > 0 ? rows : 1)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(D * sizeof(T)),
                                 static_cast<cuuint64_t>(h_kv * D * sizeof(T))};
  const cuuint32_t box[3] = {kMapBoxCols, 1, kMapBoxRows}, unit[3] = {1, 1, 1};
  const CUresult r = tensor_map_encoder(ctx)(
      &map,
      std::is_same_v<T, __half> ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
      3, const_cast<void*>(addr), dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
      CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw_cuda_error("cuTensorMapEncodeTiled failed (error " + std::to_string(static_cast<int>(r)) +
                     ") for a [" + std::to_string(rows) + "][" + std::to_string(h_kv) + "][" +
                     std::to_string(D) + "] key tensor [" + ctx + "]");
  return map;
}

template CUtensorMap key_tile_map<__half>(const __half*, const __half*, int64_t, int64_t, int64_t,
                                          const std::string&);
template CUtensorMap key_tile_map<__nv_bfloat16>(const __nv_bfloat16*, const __nv_bfloat16*,
                                                 int64_t, int64_t, int64_t, const std::string&);

}  // namespace nsa::cuda::detail
