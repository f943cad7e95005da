// Row selection of full outputs (forward.hpp): candidates computed for every row are checked on a
// subset of rows.
#include <stdexcept>
#include <string>

#include "nsa/ref/forward.hpp"

namespace nsa::ref {

Outputs select_rows(const Outputs& full, const std::vector<int64_t>& rows) {
  const int64_t total = static_cast<int64_t>(full.rows.size());
  for (int64_t i = 0; i < total; ++i)
    if (full.rows[static_cast<std::size_t>(i)] != i)
      throw std::invalid_argument("select_rows: the full outputs hold row " +
                                  std::to_string(full.rows[static_cast<std::size_t>(i)]) +
                                  " at position " + std::to_string(i) + ", not every row in order");
  for (const int64_t r : rows)
    if (r < 0 || r >= total)
      throw std::invalid_argument("select_rows: row " + std::to_string(r) + " is not in [0, " +
                                  std::to_string(total) + ")");
  Outputs s;
  s.rows = rows;
  s.heads = full.heads;
  s.groups = full.groups;
  s.d_v = full.d_v;
  s.top_n = full.top_n;
  s.nc_max = full.nc_max;
  s.ns_max = full.ns_max;
  const int64_t nh = static_cast<int64_t>(full.heads.size());
  const int64_t ng = static_cast<int64_t>(full.groups.size());
  auto take = [&](const auto& x, int64_t width, auto& out) {
    if (x.empty()) return;  // a tensor the candidate does not provide stays absent
    for (const int64_t r : rows)
      out.insert(out.end(), x.begin() + r * width, x.begin() + (r + 1) * width);
  };
  for (int b = 0; b < 3; ++b) {
    take(full.o_branch[b], nh * full.d_v, s.o_branch[b]);
    take(full.lse[b], nh, s.lse[b]);
  }
  take(full.o, nh * full.d_v, s.o);
  take(full.p_cmp, nh * full.nc_max, s.p_cmp);
  take(full.scores, ng * full.ns_max, s.scores);
  take(full.score_gap, ng, s.score_gap);
  take(full.indices, ng * full.top_n, s.indices);
  return s;
}

}  // namespace nsa::ref
