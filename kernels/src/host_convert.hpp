// Host-side conversion between the reference's doubles and the device dtypes, upload and
// download (host API of the forward and the backward).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "device_buffer.hpp"
#include "nsa/cuda/forward.hpp"
#include "nsa/ref/config.hpp"
#include "nsa/ref/inputs.hpp"

namespace nsa::cuda::detail {

// Values already representable in dt to its bits (exact).
void convert(const std::vector<double>& src, nsa::ref::Dtype dt, std::vector<unsigned char>& dst);
// One stored value of dt at p, widened to double (exact).
double widen(const unsigned char* p, nsa::ref::Dtype dt);

// Uploads tensors in the dtype, owning their device buffers (an empty tensor gives null).
struct Uploader {
  nsa::ref::Dtype dt;
  std::string ctx;
  std::vector<DeviceBuffer> bufs;
  std::vector<unsigned char> staging;
  const void* operator()(const std::vector<double>& x, const char* name) {
    if (x.empty()) return nullptr;
    convert(x, dt, staging);
    bufs.emplace_back(staging.size(), std::string(name) + " [" + ctx + "]");
    check(cudaMemcpy(bufs.back().get(), staging.data(), staging.size(), cudaMemcpyHostToDevice),
          "cudaMemcpy (upload)", name);
    return bufs.back().get();
  }
};

// nsa::ref::check_inputs, without the strict list check where validate_indices is false (the
// kernels read any list safely under the policy).
void check_host_inputs(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                       bool validate_indices);

// Every input tensor the config reads except the index list, in the dtype (shared K/V uploaded
// once and aliased); pointers of tensors the config does not read are null.
DeviceInputs upload_inputs(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                           Uploader& up);

template <class T>
std::vector<T> download(const void* dev, std::size_t count, const char* what) {
  std::vector<T> h(count);
  if (count)
    check(cudaMemcpy(h.data(), dev, count * sizeof(T), cudaMemcpyDeviceToHost),
          "cudaMemcpy (download)", what);
  return h;
}

}  // namespace nsa::cuda::detail
