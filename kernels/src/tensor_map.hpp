// TMA tensor maps of key and value tensors for the Hopper kernels (attention_wgmma.cu,
// backward_wgmma_query.cu). Host code; the maps travel to the kernels as __grid_constant__
// parameters.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <string>

namespace nsa::cuda::detail {

constexpr int kMapBoxRows = 64;  // key rows per TMA box: one key tile of the wgmma kernels
constexpr int kMapBoxCols = 64;  // columns per box: one 128-byte swizzle atom of 2-byte elements

// TMA map of a [rows][h_kv][D] key (or value) tensor (T = __half or __nv_bfloat16): boxes of 64
// rows x one head x 64 columns in the 128-byte swizzle, the layout of one swizzle atom
// (wgmma.cuh); rows past the end read as zeros. An empty tensor still gets a valid map, pointing
// at `stand_in` (device memory, 16-byte aligned), from which no tile is ever loaded.
template <class T>
CUtensorMap key_tile_map(const T* base, const T* stand_in, int64_t rows, int64_t h_kv, int64_t D,
                         const std::string& ctx);

}  // namespace nsa::cuda::detail
