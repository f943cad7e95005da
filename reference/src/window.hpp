// Sliding-window semantics: window_keys w gives keys [max(0, t-w+1), t] (w keys including t);
// w_plus_one gives [max(0, t-w), t].
#pragma once

#include <algorithm>

#include "attention.hpp"
#include "nsa/ref/config.hpp"

namespace nsa::ref::detail {

inline Segment window_segment(const ValidConfig& vc, int64_t t) {
  const int64_t span = vc.cfg.window_keys == WindowKeys::w ? vc.cfg.window : vc.cfg.window + 1;
  const int64_t begin = std::max<int64_t>(0, t - span + 1);
  return {begin, t + 1 - begin};
}

}  // namespace nsa::ref::detail
