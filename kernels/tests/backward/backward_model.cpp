#include "backward_model.hpp"

#include <algorithm>
#include <numeric>

#include "backward_items.hpp"
#include "backward_shape.hpp"

namespace nsa::cuda::test {

namespace {

struct HostLoad {
  static double get(double x) { return x; }
};

}  // namespace

nsa::ref::Gradients model_backward(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                                   const std::vector<double>& d_o,
                                   const std::vector<int32_t>& idx) {
  const auto& c = vc.cfg;
  const auto sz = [](int64_t x) { return static_cast<std::size_t>(x); };
  const bwd::ShapeTables t = bwd::shape_tables(vc);
  bwd::Shape sh = bwd::shape_of(vc, t);
  sh.seqs = t.seqs.data();
  sh.cu_q = t.cu_q.data();
  sh.cu_k = t.cu_k.data();
  sh.cu_c = t.cu_c.data();
  const int64_t nq = vc.total_q * c.h_q, nk = vc.total_k * c.h_kv, tc = sh.total_c;
  const auto round = [&](double x) { return nsa::ref::round_to(x, c.dtype); };

  // phi's tensors of K and V, and compressed K/V stored in the dtype as the forward stores them
  // (phi computed here in double from its definition, docs/semantics.md section 2).
  const bwd::PhiView<double> pk{in.k[0].data(),
                                in.phi_k.pos.data(),
                                in.phi_k.w1.data(),
                                in.phi_k.b1.data(),
                                in.phi_k.w2.data(),
                                in.phi_k.b2.data(),
                                c.d_k};
  const bwd::PhiView<double> pv{in.v[0].data(),
                                in.phi_v.pos.data(),
                                in.phi_v.w1.data(),
                                in.phi_v.b1.data(),
                                in.phi_v.w2.data(),
                                in.phi_v.b2.data(),
                                c.d_v};
  std::vector<double> kc, vcmp;
  auto compress = [&](const bwd::PhiView<double>& p, std::vector<double>& out) {
    const int64_t dim = p.dim, width = c.cmp_block * dim, m = c.phi_hidden;
    out.assign(sz(tc * c.h_kv * dim), 0.0);
    for (int64_t ci = 0; ci < tc; ++ci)
      for (int64_t g = 0; g < c.h_kv; ++g) {
        const int64_t tok0 = bwd::phi_first_token(sh, ci);
        std::vector<double> xin(sz(width)), hid(sz(m));
        for (int64_t r = 0; r < width; ++r)
          xin[sz(r)] = sh.phi == 0 ? p.x[sz(((tok0 + r / dim) * c.h_kv + g) * dim + r % dim)]
                                   : bwd::phi_input<double, HostLoad>(sh, p, tok0, g, r);
        for (int64_t j = 0; j < m; ++j) {
          double h = p.b1[sz(g * m + j)];
          for (int64_t r = 0; r < width; ++r) h += xin[sz(r)] * p.w1[sz((g * width + r) * m + j)];
          hid[sz(j)] = bwd::act_value(sh.act, h);
        }
        for (int64_t e = 0; e < dim; ++e) {
          double y = 0;
          if (sh.phi == 0) {
            for (int64_t j = 0; j < c.cmp_block; ++j) y += xin[sz(j * dim + e)];
            y /= double(c.cmp_block);
          } else if (sh.phi == 1) {
            for (int64_t r = 0; r < width; ++r)
              y += xin[sz(r)] * p.w1[sz((g * width + r) * dim + e)];
          } else {
            y = p.b2[sz(g * dim + e)];
            for (int64_t j = 0; j < m; ++j) y += hid[sz(j)] * p.w2[sz((g * m + j) * dim + e)];
          }
          out[sz((ci * c.h_kv + g) * dim + e)] = round(y);
        }
      }
  };
  if (c.enable_cmp) {
    compress(pk, kc);
    compress(pv, vcmp);
  }
  bwd::Tensors<double> x{};
  x.q = in.q.data();
  for (int b = 0; b < 3; ++b) {
    x.k[b] = in.k[b].data();
    x.v[b] = in.v[b].data();
    x.gate[b] = in.gate[b].data();
  }
  x.d_o = d_o.data();
  x.kc = kc.data();
  x.vc = vcmp.data();
  x.idx = idx.data();

  nsa::ref::Gradients g;
  g.rows.resize(sz(vc.total_q));
  std::iota(g.rows.begin(), g.rows.end(), int64_t{0});
  g.keys.resize(sz(vc.total_k));
  std::iota(g.keys.begin(), g.keys.end(), int64_t{0});
  std::array<std::vector<double>, 3> lse, dd, dg64;
  for (int b = 0; b < 3; ++b) {
    lse[b].assign(sz(nq), 0.0);
    dd[b].assign(sz(nq), 0.0);
    dg64[b].assign(sz(nq), 0.0);
  }
  double* lp[3] = {lse[0].data(), lse[1].data(), lse[2].data()};
  double* dp[3] = {dd[0].data(), dd[1].data(), dd[2].data()};
  double* gp[3] = {dg64[0].data(), dg64[1].data(), dg64[2].data()};
  std::vector<double> dq(sz(nq * c.d_k));
  for (int64_t it = 0; it < nq; ++it)
    bwd::query_item<double, HostLoad>(sh, x, it / c.h_q, it % c.h_q, lp, dp, gp,
                                      dq.data() + it * c.d_k);
  g.dq.resize(dq.size());
  std::transform(dq.begin(), dq.end(), g.dq.begin(), round);

  // The inverted index: a stable sort of the entries by key, as the device's radix sort.
  std::vector<uint64_t> keys;
  std::vector<int64_t> rows;
  if (c.enable_slc) {
    std::vector<std::pair<uint64_t, int64_t>> e;
    for (int64_t r = 0; r < vc.total_q; ++r)
      for (int64_t kv = 0; kv < c.h_kv; ++kv)
        for (int64_t s = 0; s < c.top_n; ++s)
          e.push_back({bwd::slc_entry_key(sh, idx.data(), r, kv, s), r});
    std::stable_sort(e.begin(), e.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [k, r] : e) {
      keys.push_back(k);
      rows.push_back(r);
    }
  }
  const bwd::SlcIndex si{keys.data(), rows.data(), static_cast<int64_t>(keys.size())};
  const bwd::RowStats st{{lp[0], lp[1], lp[2]}, {dp[0], dp[1], dp[2]}};
  std::array<std::vector<double>, 3> dk64, dv64;
  for (int b = 0; b < 3; ++b) {
    g.dg[b].assign(sz(nq), 0.0);
    g.dk[b].assign(sz(nk * c.d_k), 0.0);
    g.dv[b].assign(sz(nk * c.d_v), 0.0);
    if (!sh.enable[b]) continue;
    std::transform(dg64[b].begin(), dg64[b].end(), g.dg[b].begin(), round);
    const int64_t key_rows = b == 0 ? tc : vc.total_k;
    dk64[b].assign(sz(key_rows * c.h_kv * c.d_k), 0.0);
    dv64[b].assign(sz(key_rows * c.h_kv * c.d_v), 0.0);
    for (int64_t it = 0; it < key_rows * c.h_kv; ++it)
      bwd::key_item<double, HostLoad>(sh, x, st, si, b, it / c.h_kv, it % c.h_kv,
                                      dk64[b].data() + it * c.d_k, dv64[b].data() + it * c.d_v);
  }
  // phi = linear / mlp: the blocks' input gradients dx (what the tokens gather) and the
  // parameter gradients.
  std::array<std::vector<double>, 2> blk;
  const bool phi_bwd = sh.enable[0] && sh.phi != 0 && tc > 0;
  for (int kv = 0; kv < 2 && phi_bwd; ++kv) {
    const bwd::PhiView<double>& p = kv == 0 ? pk : pv;
    const std::vector<double>& dy = kv == 0 ? dk64[0] : dv64[0];
    const int64_t width = c.cmp_block * p.dim, m = c.phi_hidden;
    std::vector<double> a(sz(tc * c.h_kv * m)), dh(a.size());
    for (int64_t it = 0; it < tc * c.h_kv * m; ++it)
      bwd::mlp_hidden_item<double, HostLoad>(sh, p, dy.data(), it / (m * c.h_kv), (it / m) % c.h_kv,
                                             it % m, a.data(), dh.data());
    blk[kv].resize(sz(tc * c.h_kv * width));
    for (int64_t it = 0; it < tc * c.h_kv * width; ++it)
      blk[kv][sz(it)] = bwd::phi_dx_item<double, HostLoad>(
          sh, p, dy.data(), dh.data(), it / (width * c.h_kv), (it / width) % c.h_kv, it % width);
    nsa::ref::PhiParams& pp = kv == 0 ? g.dphi_k : g.dphi_v;
    std::vector<double>* dst[5] = {&pp.pos, &pp.w1, &pp.b1, &pp.w2, &pp.b2};
    for (int w = 0; w < 5; ++w)
      for (int64_t it = 0; it < bwd::phi_param_size(sh, p.dim, w); ++it)
        dst[w]->push_back(round(bwd::phi_param_item<double, HostLoad>(
            sh, p, dy.data(), blk[kv].data(), a.data(), dh.data(), w, it)));
  }
  if (!phi_bwd) {
    blk[0] = dk64[0];
    blk[1] = dv64[0];
    for (int kv = 0; kv < 2 && sh.enable[0]; ++kv) {  // no block: parameter gradients 0
      nsa::ref::PhiParams& pp = kv == 0 ? g.dphi_k : g.dphi_v;
      std::vector<double>* dst[5] = {&pp.pos, &pp.w1, &pp.b1, &pp.w2, &pp.b2};
      for (int w = 0; w < 5; ++w)
        dst[w]->assign(sz(bwd::phi_param_size(sh, kv == 0 ? c.d_k : c.d_v, w)), 0.0);
    }
  }
  // The finish: phi = mean gather, one rounding, the shared sum.
  if (c.shared_kv) {
    g.dk_shared.assign(sz(nk * c.d_k), 0.0);
    g.dv_shared.assign(sz(nk * c.d_v), 0.0);
  }
  auto finish = [&](int64_t dim, const std::vector<double>& from_blocks,
                    std::array<std::vector<double>, 3>& acc,
                    std::array<std::vector<double>, 3>& out, std::vector<double>& shared) {
    const double* a[3] = {from_blocks.data(), acc[1].data(), acc[2].data()};
    for (int64_t it = 0; it < nk * dim; ++it) {
      double v[3] = {0.0, 0.0, 0.0};
      const double sum = bwd::finish_item(sh, dim, a[0], a, it, v);
      for (int b = 0; b < 3; ++b)
        if (sh.enable[b]) out[b][sz(it)] = round(v[b]);
      if (c.shared_kv) shared[sz(it)] = round(sum);
    }
  };
  finish(c.d_k, blk[0], dk64, g.dk, g.dk_shared);
  finish(c.d_v, blk[1], dv64, g.dv, g.dv_shared);
  return g;
}

}  // namespace nsa::cuda::test
