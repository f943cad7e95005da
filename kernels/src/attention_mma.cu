// Tensor-core attention path (placeholder until the MMA kernels land): declines every config.
#include "device.cuh"

namespace nsa::cuda::detail {

template <class T>
bool launch_attend_mma(int, const DevCfg&, const T*, const T*, const T*, const int32_t*, T*, float*,
                       cudaStream_t, const std::string&) {
  return false;
}

template bool launch_attend_mma<float>(int, const DevCfg&, const float*, const float*, const float*,
                                       const int32_t*, float*, float*, cudaStream_t,
                                       const std::string&);
template bool launch_attend_mma<__half>(int, const DevCfg&, const __half*, const __half*,
                                        const __half*, const int32_t*, __half*, float*,
                                        cudaStream_t, const std::string&);
template bool launch_attend_mma<__nv_bfloat16>(int, const DevCfg&, const __nv_bfloat16*,
                                               const __nv_bfloat16*, const __nv_bfloat16*,
                                               const int32_t*, __nv_bfloat16*, float*, cudaStream_t,
                                               const std::string&);

}  // namespace nsa::cuda::detail
