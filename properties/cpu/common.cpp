#include "common.hpp"

#include <cmath>
#include <numeric>

namespace nsa::props {

Prepared prepare(const Case& c) {
  Prepared p{nsa::ref::validate(c.cfg), {}};
  p.in = nsa::ref::generate_inputs(p.vc, c.seed, c.regime);
  return p;
}

Prepared sequence_alone(const Prepared& p, std::size_t s) {
  const auto& cfg = p.vc.cfg;
  const auto& seq = p.vc.seqs[s];
  nsa::ref::Config one = cfg;
  one.layout = nsa::ref::Layout::padded;
  one.cu_seqlens_k.clear();
  one.cu_seqlens_q.clear();
  one.batch = 1;
  one.t_k = seq.t_k;
  one.t_q = seq.t_q;
  Prepared alone{nsa::ref::validate(one), p.in};
  const int64_t q0 = seq.q_begin, q1 = q0 + seq.t_q, k0 = seq.k_begin, k1 = k0 + seq.t_k;
  alone.in.q = slice_rows(p.in.q, q0, q1, cfg.h_q * cfg.d_k);
  for (int b = 0; b < 3; ++b) {
    alone.in.k[b] = slice_rows(p.in.k[b], k0, k1, cfg.h_kv * cfg.d_k);
    alone.in.v[b] = slice_rows(p.in.v[b], k0, k1, cfg.h_kv * cfg.d_v);
    alone.in.gate[b] = slice_rows(p.in.gate[b], q0, q1, cfg.h_q);
  }
  alone.in.indices = slice_rows(p.in.indices, q0, q1, cfg.h_kv * cfg.top_n);
  return alone;
}

Outputs run(const ValidConfig& vc, const Inputs& in, nsa::ref::Precision p,
            nsa::ref::RowSelection sel) {
  sel.threads = 1;
  return nsa::ref::forward(vc, in, p, sel);
}

std::string where(const ValidConfig& vc, const Outputs& out, int64_t flat, int64_t heads,
                  int64_t width) {
  const int64_t per_row = heads * std::max<int64_t>(1, width);
  const int64_t ri = flat / per_row;
  const int64_t hi = (flat % per_row) / std::max<int64_t>(1, width);
  if (ri >= static_cast<int64_t>(out.rows.size())) return "element " + std::to_string(flat);
  const int64_t row = out.rows[static_cast<std::size_t>(ri)];
  const auto pos = row_pos(vc, row);
  return "row " + std::to_string(row) + " (seq " + std::to_string(pos.seq) + ", t " +
         std::to_string(pos.t) + ") head/group index " + std::to_string(hi) + " element " +
         std::to_string(width > 0 ? flat % width : 0);
}

namespace {
template <class T>
bool same(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) && std::isnan(b)) return true;
  }
  return a == b;
}

template <class T>
void expect_same_impl(const std::string& what, const std::vector<T>& a, const std::vector<T>& b) {
  NSA_PROP_CHECK(a.size() == b.size(),
                 what << ": sizes differ (" << a.size() << " vs " << b.size() << ")");
  for (std::size_t i = 0; i < a.size(); ++i)
    NSA_PROP_CHECK(same(a[i], b[i]),
                   what << ": element " << i << " differs: " << +a[i] << " vs " << +b[i]);
}
}  // namespace

void expect_same(const std::string& what, const std::vector<double>& a,
                 const std::vector<double>& b) {
  expect_same_impl(what, a, b);
}
void expect_same(const std::string& what, const std::vector<int32_t>& a,
                 const std::vector<int32_t>& b) {
  expect_same_impl(what, a, b);
}

void expect_same_outputs(const std::string& what, const Outputs& a, const Outputs& b) {
  for (Branch br : nsa::ref::kAllBranches) {
    const std::string name(nsa::ref::to_string(br));
    expect_same(what + " o_" + name, a.out(br), b.out(br));
    expect_same(what + " lse_" + name, a.lse_of(br), b.lse_of(br));
  }
  expect_same(what + " o", a.o, b.o);
  expect_same(what + " indices", a.indices, b.indices);
}

std::vector<int64_t> permutation(uint64_t seed, uint64_t stream, int64_t n) {
  std::vector<int64_t> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(p[i],
              p[choose(seed, stream, static_cast<uint64_t>(i), static_cast<uint64_t>(i + 1))]);
  return p;
}

bool computes_top_n(const nsa::ref::Config& c) { return c.enable_slc && !c.given_indices; }

}  // namespace nsa::props
