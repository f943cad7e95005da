// all_properties(): the CPU table, plus the GPU table in builds with the kernels.
#include "harness.hpp"

namespace nsa::props {

std::vector<Property> cpu_properties();
#ifdef NSA_PROPS_GPU
std::vector<Property> gpu_properties();
#endif

const std::vector<Property>& all_properties() {
  static const std::vector<Property> table = [] {
    auto t = cpu_properties();
#ifdef NSA_PROPS_GPU
    for (auto& p : gpu_properties()) t.push_back(p);
#endif
    return t;
  }();
  return table;
}

}  // namespace nsa::props
