// Row and key selection of full gradients (backward.hpp): a candidate's gradients computed for
// every row and key are checked on subsets, as the reference computes them.
#include <stdexcept>
#include <string>

#include "nsa/ref/backward.hpp"

namespace nsa::ref {

namespace {

void require_all_in_order(const std::vector<int64_t>& have, int64_t total, const char* what) {
  if (static_cast<int64_t>(have.size()) != total)
    throw std::invalid_argument(std::string("select_gradients: the full gradients hold ") +
                                std::to_string(have.size()) + " " + what + ", expected all " +
                                std::to_string(total));
  for (int64_t i = 0; i < total; ++i)
    if (have[static_cast<std::size_t>(i)] != i)
      throw std::invalid_argument(std::string("select_gradients: the full gradients hold ") + what +
                                  " " + std::to_string(have[static_cast<std::size_t>(i)]) +
                                  " at position " + std::to_string(i) + ", not every one in order");
}

void require_in_range(const std::vector<int64_t>& want, int64_t total, const char* what) {
  for (std::size_t i = 0; i < want.size(); ++i)
    if (want[i] < 0 || want[i] >= total)
      throw std::invalid_argument(std::string("select_gradients: ") + what + "[" +
                                  std::to_string(i) + "] = " + std::to_string(want[i]) +
                                  " is not in [0, " + std::to_string(total) + ")");
}

// The rows `which` of a row-major [n, width] tensor; an absent (empty) tensor stays absent.
std::vector<double> take(const std::vector<double>& src, const std::vector<int64_t>& which,
                         int64_t width) {
  std::vector<double> out;
  if (src.empty()) return out;
  out.reserve(which.size() * static_cast<std::size_t>(width));
  for (const int64_t r : which)
    out.insert(out.end(), src.begin() + r * width, src.begin() + (r + 1) * width);
  return out;
}

}  // namespace

Gradients select_gradients(const ValidConfig& vc, const Gradients& full,
                           const std::vector<int64_t>& rows, const std::vector<int64_t>& keys) {
  const auto& c = vc.cfg;
  require_all_in_order(full.rows, vc.total_q, "rows");
  require_all_in_order(full.keys, vc.total_k, "keys");
  require_in_range(rows, vc.total_q, "rows");
  require_in_range(keys, vc.total_k, "keys");
  Gradients g;
  g.rows = rows;
  g.keys = keys;
  g.dq = take(full.dq, rows, c.h_q * c.d_k);
  for (int b = 0; b < 3; ++b) {
    g.dg[b] = take(full.dg[b], rows, c.h_q);
    g.dk[b] = take(full.dk[b], keys, c.h_kv * c.d_k);
    g.dv[b] = take(full.dv[b], keys, c.h_kv * c.d_v);
  }
  g.dk_shared = take(full.dk_shared, keys, c.h_kv * c.d_k);
  g.dv_shared = take(full.dv_shared, keys, c.h_kv * c.d_v);
  // Neither the parameters' gradients nor a given cache's are selected by rows or keys.
  g.dphi_k = full.dphi_k;
  g.dphi_v = full.dphi_v;
  g.dk_tilde = full.dk_tilde;
  g.dv_tilde = full.dv_tilde;
  return g;
}

}  // namespace nsa::ref
