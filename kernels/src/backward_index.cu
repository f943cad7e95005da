// The selection's inverted index (block -> query rows) on the device: one thread per list
// entry writes its key (slc_entry_key: the KV head and the block's first token, or a sentinel
// past every key where the index policy skips the entry) and its query row; a stable CUB radix
// sort by key then leaves, per (KV head, block), the rows that selected it in list order, a
// multiset duplicate once per listing. The key-side kernel finds a block's range by binary
// search. Integer work only: deterministic, and no list value is ever used as an address.
#include <cub/device/device_radix_sort.cuh>

#include "backward_launch.hpp"
#include "device.cuh"

namespace nsa::cuda::detail {

namespace {

__global__ void bwd_index_keys_kernel(bwd::Shape c, const int32_t* idx, uint64_t* keys,
                                      int64_t* rows) {
  const int64_t entries = c.total_q * c.h_kv * c.n;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < entries;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t slot = e % c.n, g = (e / c.n) % c.h_kv, row = e / (c.n * c.h_kv);
    keys[e] = bwd::slc_entry_key(c, idx, row, g, slot);
    rows[e] = row;
  }
}

}  // namespace

std::size_t bwd_index_temp_bytes(int64_t entries, int end_bit) {
  std::size_t bytes = 0;
  check(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint64_t*>(nullptr),
                                        static_cast<uint64_t*>(nullptr),
                                        static_cast<const int64_t*>(nullptr),
                                        static_cast<int64_t*>(nullptr), entries, 0, end_bit),
        "cub::DeviceRadixSort::SortPairs (size query)", "selection index");
  return bytes;
}

void launch_bwd_index(const bwd::Shape& c, const int32_t* idx, uint64_t* keys_tmp,
                      int64_t* rows_tmp, uint64_t* keys, int64_t* rows, void* temp,
                      std::size_t temp_bytes, int end_bit, cudaStream_t stream,
                      const std::string& ctx) {
  const int64_t entries = c.total_q * c.h_kv * c.n;
  if (entries == 0) return;
  const unsigned want = blocks_for(entries, 256);
  const unsigned grid = want < (1u << 20) ? want : (1u << 20);
  bwd_index_keys_kernel<<<grid, 256, 0, stream>>>(c, idx, keys_tmp, rows_tmp);
  check_launch("bwd_index_keys_kernel", ctx);
  std::size_t bytes = temp_bytes;
  check(cub::DeviceRadixSort::SortPairs(temp, bytes, keys_tmp, keys, rows_tmp, rows, entries, 0,
                                        end_bit, stream),
        "cub::DeviceRadixSort::SortPairs (selection index)", ctx);
}

}  // namespace nsa::cuda::detail
