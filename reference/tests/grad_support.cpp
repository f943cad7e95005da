#include "grad_support.hpp"

#include <utility>

#include "forward_impl.hpp"
#include "nsa/ref/generate.hpp"

namespace nsa::test {

using ref::Branch;
using ref::Inputs;

std::vector<GradPair> grad_pairs(const ref::ValidConfig& vc, Inputs& in, const ref::Gradients& g) {
  const auto& c = vc.cfg;
  std::vector<GradPair> p;
  using Unit = GradPair::Unit;
  const int64_t kdim = c.h_kv * c.d_k, vdim = c.h_kv * c.d_v;
  p.push_back({"dq", [](Inputs& x) { return std::vector<std::vector<double>*>{&x.q}; }, &g.dq,
               Unit::row, c.h_q * c.d_k});
  for (Branch b : ref::kAllBranches) {
    const int i = static_cast<int>(b);
    const std::string s(ref::to_string(b));
    p.push_back({"dk_" + s, [i](Inputs& x) { return std::vector<std::vector<double>*>{&x.k[i]}; },
                 &g.dk[i], Unit::token, kdim});
    p.push_back({"dv_" + s, [i](Inputs& x) { return std::vector<std::vector<double>*>{&x.v[i]}; },
                 &g.dv[i], Unit::token, vdim});
    if (!in.gate[i].empty())
      p.push_back({"dg_" + s,
                   [i](Inputs& x) { return std::vector<std::vector<double>*>{&x.gate[i]}; },
                   &g.dg[i], Unit::row, c.h_q});
  }
  if (c.shared_kv) {
    p.push_back({"dk_shared",
                 [](Inputs& x) {
                   return std::vector<std::vector<double>*>{&x.k[0], &x.k[1], &x.k[2]};
                 },
                 &g.dk_shared, Unit::token, kdim});
    p.push_back({"dv_shared",
                 [](Inputs& x) {
                   return std::vector<std::vector<double>*>{&x.v[0], &x.v[1], &x.v[2]};
                 },
                 &g.dv_shared, Unit::token, vdim});
  }
  if (c.cmp_given) {
    p.push_back({"dk_tilde",
                 [](Inputs& x) { return std::vector<std::vector<double>*>{&x.k_tilde}; },
                 &g.dk_tilde});
    p.push_back({"dv_tilde",
                 [](Inputs& x) { return std::vector<std::vector<double>*>{&x.v_tilde}; },
                 &g.dv_tilde});
  }
  auto phi = [&](const char* t, ref::PhiParams Inputs::*params, const ref::PhiParams& grads) {
    const std::pair<const char*, std::vector<double> ref::PhiParams::*> slots[] = {
        {"pos", &ref::PhiParams::pos},
        {"w1", &ref::PhiParams::w1},
        {"b1", &ref::PhiParams::b1},
        {"w2", &ref::PhiParams::w2},
        {"b2", &ref::PhiParams::b2}};
    for (const auto& [slot, member] : slots) {
      if (((in.*params).*member).empty()) continue;
      p.push_back({std::string("dphi_") + t + "_" + slot,
                   [params, member](Inputs& x) {
                     return std::vector<std::vector<double>*>{&((x.*params).*member)};
                   },
                   &(grads.*member)});
    }
  };
  phi("k", &Inputs::phi_k, g.dphi_k);
  phi("v", &Inputs::phi_v, g.dphi_v);
  return p;
}

FdResult finite_differences(const ref::ValidConfig& vc, const Inputs& in,
                            const std::vector<double>& r, const GradPair& pair, double h,
                            int threads, const std::vector<int64_t>& only) {
  using Bin50 = ref::detail::Bin50;
  ref::RowSelection sel;
  sel.threads = 1;
  sel.keep_scores = false;
  const ref::detail::Exact exact{vc.cfg.dtype};
  const auto& c = vc.cfg;
  const int64_t per_row = c.h_q * c.d_v, per_group = c.top_n;
  // L over the rows an element can change (the others add the same terms to L(x + h) and
  // L(x - h)), with the index lists of those rows.
  auto loss = [&](const Inputs& x, const ref::RowSelection& rows, std::vector<int32_t>* indices) {
    const auto out = ref::detail::run_forward<Bin50, ref::detail::Exact, Bin50>(vc, x, rows, exact);
    Bin50 acc(0);
    for (std::size_t ri = 0; ri < out.rows.size(); ++ri)
      for (int64_t j = 0; j < per_row; ++j)
        acc += Bin50(r[out.rows[ri] * per_row + j]) * out.o[ri * per_row + j];
    *indices = out.indices;
    return acc;
  };
  auto rows_of = [&](int64_t e) {
    ref::RowSelection rs = sel;
    if (pair.unit == GradPair::Unit::row) {
      rs.rows = {e / pair.per_unit};
    } else if (pair.unit == GradPair::Unit::token) {
      const int64_t u = e / pair.per_unit;
      for (const auto& seq : vc.seqs) {
        if (u < seq.k_begin || u >= seq.k_begin + seq.t_k) continue;
        const int64_t from = (u - seq.k_begin) / c.slc_block * c.slc_block;
        for (int64_t i = 0; i < seq.t_q; ++i)
          if (seq.pos(i) >= from) rs.rows.push_back(seq.q_begin + i);
      }
    } else {
      for (int64_t row = 0; row < vc.total_q; ++row) rs.rows.push_back(row);
    }
    return rs;
  };
  Inputs probe = in;
  const auto size = static_cast<int64_t>(pair.inputs(probe).front()->size());
  // Every row's index lists on the unperturbed inputs.
  ref::RowSelection all_rows = sel;
  std::vector<int32_t> base;
  loss(in, all_rows, &base);
  auto base_of = [&](const ref::RowSelection& rs) {
    std::vector<int32_t> b;
    const int64_t width = c.h_kv * per_group;
    for (int64_t row : rs.rows)
      b.insert(b.end(), base.begin() + row * width, base.begin() + (row + 1) * width);
    return b;
  };
  FdResult res;
  res.derivative.assign(static_cast<std::size_t>(size), 0.0);
  std::vector<char> changed(static_cast<std::size_t>(size), 0);
  std::vector<int64_t> elements = only;
  if (elements.empty())
    for (int64_t e = 0; e < size; ++e) elements.push_back(e);
  ref::detail::parallel_for(static_cast<int64_t>(elements.size()), threads, [&](int64_t k) {
    const int64_t e = elements[static_cast<std::size_t>(k)];
    const ref::RowSelection rs = rows_of(e);
    if (rs.rows.empty()) return;  // no query sees this element: dL/dx = 0
    Inputs x = in;
    const auto parts = pair.inputs(x);
    const double x0 = (*parts.front())[e];
    const std::vector<int32_t> ib = base_of(rs);
    std::vector<int32_t> ip, im;
    for (auto* v : parts) (*v)[e] = x0 + h;
    const Bin50 lp = loss(x, rs, &ip);
    for (auto* v : parts) (*v)[e] = x0 - h;
    const Bin50 lm = loss(x, rs, &im);
    res.derivative[e] = static_cast<double>((lp - lm) / Bin50(2 * h));
    changed[e] = ip != ib || im != ib;
  });
  for (char ch : changed) res.selection_changed += ch;
  res.changed = std::move(changed);
  return res;
}

}  // namespace nsa::test
