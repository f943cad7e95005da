// Device-side random fill for benchmark inputs, so long sequences need no host generation.
#include "device.cuh"

namespace nsa::cuda::detail {

namespace {

__device__ uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

template <class T>
__global__ void fill_kernel(T* dst, int64_t count, uint64_t seed, float lo, float hi) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float u = static_cast<float>(mix64(seed ^ mix64(static_cast<uint64_t>(i))) >> 40) *
                    (1.0f / 16777216.0f);
    dst[i] = from_f<T>(lo + (hi - lo) * u);
  }
}

}  // namespace

// dtype: 0 fp32, 1 fp16, 2 bf16 (nsa::ref::Dtype order).
void launch_fill(void* dev, int64_t count, int dtype, uint64_t seed, float lo, float hi) {
  if (count <= 0) return;
  const unsigned grid = 4096;
  if (dtype == 0)
    fill_kernel<<<grid, 256>>>(static_cast<float*>(dev), count, seed, lo, hi);
  else if (dtype == 1)
    fill_kernel<<<grid, 256>>>(static_cast<__half*>(dev), count, seed, lo, hi);
  else
    fill_kernel<<<grid, 256>>>(static_cast<__nv_bfloat16*>(dev), count, seed, lo, hi);
  check_launch("fill_kernel", "fill_uniform");
  check(cudaDeviceSynchronize(), "fill_kernel", "fill_uniform");
}

}  // namespace nsa::cuda::detail
