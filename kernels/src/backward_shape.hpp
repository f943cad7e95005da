// The backward's flattened config (bwd::Shape, backward_items.hpp) and its sequence tables, built
// from a ValidConfig: one construction for the device (backward_host.cpp, which copies the tables
// to the device) and the CPU host model (tests/backward).
#pragma once

#include <cstdint>
#include <vector>

#include "backward_items.hpp"
#include "nsa/ref/config.hpp"

namespace nsa::cuda::bwd {

struct ShapeTables {
  std::vector<Seq> seqs;
  std::vector<int64_t> cu_q, cu_k, cu_c;  // num_seqs + 1 offsets each
};

inline ShapeTables shape_tables(const nsa::ref::ValidConfig& vc) {
  ShapeTables t;
  t.cu_c.push_back(0);
  for (const auto& s : vc.seqs) {
    t.seqs.push_back({s.q_begin, s.k_begin, s.t_q, s.t_k, t.cu_c.back()});
    t.cu_k.push_back(s.k_begin);
    t.cu_c.push_back(t.cu_c.back() + vc.num_cmp_blocks(s.t_k));
  }
  t.cu_k.push_back(vc.total_k);
  t.cu_q.assign(vc.cfg.cu_seqlens_q.begin(), vc.cfg.cu_seqlens_q.end());
  return t;
}

// The Shape of vc; the table pointers stay null for the caller to set (host or device copies).
inline Shape shape_of(const nsa::ref::ValidConfig& vc, const ShapeTables& t) {
  const auto& c = vc.cfg;
  Shape sh{};
  sh.total_q = vc.total_q;
  sh.total_k = vc.total_k;
  sh.total_c = t.cu_c.back();
  sh.h_q = c.h_q;
  sh.h_kv = c.h_kv;
  sh.group = vc.group;
  sh.d_k = c.d_k;
  sh.d_v = c.d_v;
  sh.l = c.cmp_block;
  sh.d = c.cmp_stride;
  sh.lp = c.slc_block;
  sh.n = c.top_n;
  sh.w = c.window;
  sh.scale = vc.scale;
  sh.visibility = static_cast<int>(c.cmp_visibility);
  sh.slc_causal = static_cast<int>(c.slc_causal);
  sh.policy = static_cast<int>(c.index_policy);
  sh.window_keys = static_cast<int>(c.window_keys);
  sh.phi = static_cast<int>(c.phi);
  sh.act = static_cast<int>(c.phi_act);
  sh.m = c.phi_hidden;
  for (int b = 0; b < 3; ++b) sh.enable[b] = c.enabled(static_cast<nsa::ref::Branch>(b));
  sh.num_seqs = static_cast<int64_t>(t.seqs.size());
  return sh;
}

}  // namespace nsa::cuda::bwd
