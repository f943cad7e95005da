// The compressed KV cache: the forward's own phi (compression.hpp), run over whole sequences or
// over the blocks a decode step completes, so that both give the bits the forward computes.
#include "nsa/ref/compressed_cache.hpp"

#include <stdexcept>
#include <string>

#include "compression.hpp"
#include "row_attention.hpp"

namespace nsa::ref {
namespace {

// The config as the compression sees it: phi runs (its parameters are inputs).
ValidConfig with_phi(const ValidConfig& vc) {
  ValidConfig v = vc;
  v.cfg.cmp_given = false;
  return v;
}

// Blocks [first_block, first_block + count) of the tokens x[row0, row0 + rows) of a
// [tokens, h_kv, dim] tensor, whose first row is token first_token of the sequence; written to
// out[(out_row + i) * h_kv + g, :], rounded once to the dtype.
template <class Real, class Round>
void compress_rows(const ValidConfig& vc, const std::vector<double>& x, int64_t row0, int64_t rows,
                   int64_t dim, const PhiParams& params, int64_t first_block, int64_t count,
                   int64_t first_token, const Round& round, std::vector<double>& out,
                   int64_t out_row) {
  using namespace detail;
  const auto& c = vc.cfg;
  for (int64_t g = 0; g < c.h_kv; ++g) {
    const Mat<Real> xs = load_rows<Real>(x, row0, rows, c.h_kv, g, dim);
    const PhiHead<Real> ph = phi_head<Real>(vc, params, g, dim);
    for (int64_t i = 0; i < count; ++i) {
      const Mat<Real> y =
          compress_block(vc, ph, xs, (first_block + i) * c.cmp_stride - first_token, round);
      for (int64_t e = 0; e < dim; ++e)
        out[static_cast<std::size_t>(((out_row + i) * c.h_kv + g) * dim + e)] =
            round_to(to_double(round.store(y(0, e))), c.dtype);
    }
  }
}

// Runs f(Real{}, round) in the arithmetic of a precision.
template <class F>
void with_precision(const ValidConfig& vc, Precision p, const F& f) {
  const detail::Exact exact{vc.cfg.dtype};
  switch (p) {
    case Precision::f64:
      return f(double{}, exact);
    case Precision::f128:
      return f(detail::Quad{}, exact);
    case Precision::bin50:
      return f(detail::Bin50{}, exact);
    case Precision::baseline:
      return f(float{}, detail::DtypeFaithful{vc.cfg.dtype, {kBaselineOrders[0]}});
  }
  throw std::invalid_argument("compressed cache: unknown precision");
}

}  // namespace

CompressedCache compress_cache(const ValidConfig& vc_in, const Inputs& in, Precision precision) {
  const ValidConfig vc = with_phi(vc_in);
  const auto& c = vc.cfg;
  const auto s = input_shapes(vc);
  const int ci = static_cast<int>(Branch::cmp);
  check_input_tensor("k_cmp", in.k[ci], s.k, c.dtype);
  check_input_tensor("v_cmp", in.v[ci], s.v, c.dtype);
  check_phi_params(vc, in.phi_k, in.phi_v);
  CompressedCache cache;
  cache.k.assign(static_cast<std::size_t>(vc.total_cmp * c.h_kv * c.d_k), 0.0);
  cache.v.assign(static_cast<std::size_t>(vc.total_cmp * c.h_kv * c.d_v), 0.0);
  with_precision(vc, precision, [&](auto real, const auto& round) {
    using Real = decltype(real);
    for (const Sequence& seq : vc.seqs) {
      const int64_t nc = vc.num_cmp_blocks(seq.t_k);
      compress_rows<Real>(vc, in.k[ci], seq.k_begin, seq.t_k, c.d_k, in.phi_k, 0, nc, 0, round,
                          cache.k, seq.c_begin);
      compress_rows<Real>(vc, in.v[ci], seq.k_begin, seq.t_k, c.d_v, in.phi_v, 0, nc, 0, round,
                          cache.v, seq.c_begin);
    }
  });
  return cache;
}

CompletedBlocks completed_blocks(const ValidConfig& vc, int64_t t_old, int64_t t_new) {
  if (t_old < 0 || t_new < t_old || t_new > kMaxTokens)
    throw std::invalid_argument("completed_blocks: t_old = " + std::to_string(t_old) +
                                ", t_new = " + std::to_string(t_new) +
                                ": expected 0 <= t_old <= t_new <= " + std::to_string(kMaxTokens));
  CompletedBlocks b;
  b.first_block = vc.num_cmp_blocks(t_old);
  b.count = vc.num_cmp_blocks(t_new) - b.first_block;
  b.first_token = b.first_block * vc.cfg.cmp_stride;
  return b;
}

CompressedCache compress_completed_blocks(const ValidConfig& vc_in,
                                          const std::vector<double>& k_tail,
                                          const std::vector<double>& v_tail, const PhiParams& phi_k,
                                          const PhiParams& phi_v, int64_t t_old, int64_t t_new,
                                          Precision precision) {
  const ValidConfig vc = with_phi(vc_in);
  const auto& c = vc.cfg;
  const CompletedBlocks b = completed_blocks(vc, t_old, t_new);
  const int64_t rows = t_new - b.first_token;
  check_input_tensor("k_tail", k_tail, rows * c.h_kv * c.d_k, c.dtype);
  check_input_tensor("v_tail", v_tail, rows * c.h_kv * c.d_v, c.dtype);
  check_phi_params(vc, phi_k, phi_v);
  CompressedCache out;
  out.k.assign(static_cast<std::size_t>(b.count * c.h_kv * c.d_k), 0.0);
  out.v.assign(static_cast<std::size_t>(b.count * c.h_kv * c.d_v), 0.0);
  with_precision(vc, precision, [&](auto real, const auto& round) {
    using Real = decltype(real);
    compress_rows<Real>(vc, k_tail, 0, rows, c.d_k, phi_k, b.first_block, b.count, b.first_token,
                        round, out.k, 0);
    compress_rows<Real>(vc, v_tail, 0, rows, c.d_v, phi_v, b.first_block, b.count, b.first_token,
                        round, out.v, 0);
  });
  return out;
}

}  // namespace nsa::ref
