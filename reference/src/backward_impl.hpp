// The one code path of the backward, templated on the real type and the storage policy. It
// differentiates exactly the key sets the forward attends (row_attention.hpp) and runs in two
// passes over each block of kRowBlock query rows, as flash-style backward kernels do:
//
//  1. query side, parallel over the block's rows: the forward of the row (key sets, lse,
//     weights P), dP = dO_b V^T, D, dS = P ∘ (dP − D), dq and the gate gradients; P and dS are
//     kept, as a kernel stores them, for the block's key side;
//  2. key side, parallel over tiles of keys: the block's (row, key range) listings are inverted
//     into per-tile lists, in row order, and each tile adds P^T dO_b and dS^T q over its lists.
//     After the last block the compressed keys' gradients flow through phi into K_cmp/V_cmp and
//     phi's parameters.
//
// Keeping P and dS (instead of recomputing q·k and dO·v per tile) makes the backward five
// products per key set and branch (q·k, dO·v, dS·K, P^T dO, dS^T q) against the forward's two;
// the block bounds what is kept (G · |S| · 2 values per row and KV head).
//
// Every sum runs in an order fixed by the shapes alone (never by the thread schedule), so the
// result is the same for any thread count: golden files regenerate bit for bit.
#pragma once

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "nsa/ref/backward.hpp"
#include "parallel.hpp"
#include "row_attention.hpp"

namespace nsa::ref::detail {

inline constexpr int64_t kKeyTile = 64;   // tokens per key tile (selection and window keys)
inline constexpr int64_t kCmpTile = 16;   // compressed blocks per key tile
inline constexpr int64_t kRowChunk = 32;  // (row, range) listings per product in a tile
inline constexpr int64_t kRowBlock = 64;  // query rows per pass 1 / pass 2 round

// A list of wanted elements of [0, total) and each element's output slot (-1: not wanted).
struct Picked {
  std::vector<int64_t> list;
  std::vector<int64_t> slot;
};

inline Picked pick(const std::vector<int64_t>& want, int64_t total, bool on, const char* what) {
  Picked p;
  p.slot.assign(static_cast<std::size_t>(total), -1);
  if (!on) return p;
  if (want.empty()) {
    for (int64_t i = 0; i < total; ++i) p.list.push_back(i);
  } else {
    p.list = want;
  }
  for (std::size_t i = 0; i < p.list.size(); ++i) {
    const int64_t v = p.list[i];
    const std::string where = std::string("gradient selection: ") + what + "[" + std::to_string(i) +
                              "] = " + std::to_string(v);
    if (v < 0 || v >= total)
      throw std::invalid_argument(where + " is outside [0, " + std::to_string(total) + ")");
    if (p.slot[v] >= 0)
      throw std::invalid_argument(where + " is listed twice (also at [" +
                                  std::to_string(p.slot[v]) + "])");
    p.slot[v] = static_cast<int64_t>(i);
  }
  return p;
}

// Branch b's upstream gradient dO_b = g_b ∘ dO for the G heads of KV head g at packed row `row`,
// written to rows dst_row .. dst_row + G of dst (the baseline keeps it in the input dtype, as the
// gradient a branch's kernel receives).
template <class Real, class Round>
void branch_upstream(const ValidConfig& vc, const Inputs& in, const std::vector<double>& d_o,
                     Branch b, int64_t row, int64_t g, const Round& round, Mat<Real>& dst,
                     int64_t dst_row) {
  const auto& c = vc.cfg;
  const auto& gate = in.gates(b);
  for (int64_t h = 0; h < vc.group; ++h) {
    const int64_t head = g * vc.group + h;
    const Real gh = Real(gate[row * c.h_q + head]);
    const double* src = d_o.data() + (row * c.h_q + head) * c.d_v;
    for (int64_t e = 0; e < c.d_v; ++e) dst(dst_row + h, e) = round.store(Real(gh * Real(src[e])));
  }
}

// The per-KV-head parameter gradients in the layout of PhiParams (KV head outermost, each
// matrix row-major), rounded once by the storage policy.
template <class Real, class Round>
PhiParams flatten_phi_grad(const std::vector<PhiHeadGrad<Real>>& heads, const Round& round) {
  PhiParams p;
  auto put = [&](std::vector<double>& dst, const auto& m) {
    for (int64_t r = 0; r < m.rows(); ++r)
      for (int64_t k = 0; k < m.cols(); ++k) dst.push_back(to_double(round.store(m(r, k))));
  };
  for (const auto& h : heads) {
    put(p.pos, h.pos);
    put(p.w1, h.w1);
    put(p.b1, h.b1);
    put(p.w2, h.w2);
    put(p.b2, h.b2);
  }
  return p;
}

// What pass 1 keeps of each branch's forward: the exact backward needs only the weights (D and the
// gate gradient come from P and dP); the baseline recomputes P from the scaled scores and the
// fp32 lse, and takes D from the output as it stored it, as a kernel does.
template <class Round>
inline constexpr AttnKeep kPass1Keep =
    std::is_same_v<Round, Exact> ? AttnKeep{false, true, false} : AttnKeep{true, false, true};

// The softmax backward's row quantities of one branch for the G heads of one (row, KV head).
template <class Real>
struct RowGrad {
  Mat<Real> p, dp;  // weights and dP = dO_b V_S^T, [G, |S|]
  Vec<Real> D, dg;  // D = rowsum(dO_b ∘ o_b) and the gate gradient <dO, o_b>, [G]
};

template <class Real, class Round>
RowGrad<Real> row_grad(const ValidConfig& vc, const Inputs& in, const std::vector<double>& d_o,
                       Branch b, int64_t row, int64_t g, const AttnResult<Real>& fwd,
                       const Mat<Real>& vals, const std::vector<Segment>& segs,
                       const Round& round) {
  const auto& c = vc.cfg;
  const int64_t G = vc.group;
  RowGrad<Real> r;
  const Mat<Real> up = load_rows<Real>(d_o, row * c.h_q + g * G, G, 1, 0, c.d_v);  // dO
  auto rowsums = [&](const Mat<Real>& x) {
    Vec<Real> s(x.rows());
    for (int64_t h = 0; h < x.rows(); ++h) s(h) = round.sum(x.row(h));
    return s;
  };
  int64_t total = 0;
  for (const auto& sg : segs) total += sg.len;
  if (total == 0) {  // empty key set: every term is 0
    r.p = Mat<Real>(G, 0);
    r.dp = Mat<Real>(G, 0);
    r.D = r.dg = Vec<Real>::Zero(G);
    return r;
  }
  if constexpr (std::is_same_v<Round, Exact>) {
    // dP' = dO V^T without the gate: <dO, o_b> = Σ_j P_j dP'_j, and dO_b = g_b dO.
    const Mat<Real> dpu = times_keys(up, vals, segs, round);
    r.p = fwd.p;
    r.dg = rowsums(r.p.cwiseProduct(dpu));
    Vec<Real> gate(G);
    for (int64_t h = 0; h < G; ++h) gate(h) = Real(in.gates(b)[row * c.h_q + g * G + h]);
    r.dp = gate.asDiagonal() * dpu;
    r.D = gate.cwiseProduct(r.dg);
  } else {
    const Mat<Real> o = stored(fwd.o, round);
    Mat<Real> dob(G, c.d_v);
    branch_upstream(vc, in, d_o, b, row, g, round, dob, 0);
    r.p = weights_from_lse(fwd.z, fwd.lse);
    r.dp = times_keys(dob, vals, segs, round);
    r.D = rowsums(dob.cwiseProduct(o));
    r.dg = rowsums(up.cwiseProduct(o));
  }
  return r;
}

// One listing of a key range of a tile by a query row: row `row` of the current block attends
// tile keys [lo, hi) (tile-relative), whose weights are its key set's columns [col, col + hi -
// lo); once per listing (a multiset list can list a range twice).
struct TileUse {
  int64_t row, lo, hi, col;
};

// What pass 1 keeps of one (row, KV head) for pass 2: per branch the key set and P and dS over
// it, [G, |S|], as the storage policy keeps them.
template <class Real>
struct RowKeep {
  std::array<std::vector<Segment>, 3> segs;
  std::array<Mat<Real>, 3> p, ds;
};

template <class Real, class Round>
Gradients run_backward(const ValidConfig& vc, const Inputs& in, const std::vector<double>& d_o,
                       const GradSelection& sel, const Round& round) {
  const auto& c = vc.cfg;
  const int64_t G = vc.group, Hkv = c.h_kv, dk_dim = c.d_k, dv_dim = c.d_v;
  const Real scale = Real(vc.scale);
  const Picked qp = pick(sel.rows, vc.total_q, sel.query_grads, "rows");
  const Picked kp = pick(sel.keys, vc.total_k, sel.key_grads, "keys");
  const bool phi_has_params = c.phi != Phi::mean && !c.cmp_given;
  const bool want_phi = sel.key_grads && sel.phi_params && phi_has_params;
  // Every compressed block's gradient is needed: for phi's parameters, or as the gradient of a
  // given compressed cache (an input of its own, not selected by `keys`).
  const bool cmp_all = c.enable_cmp && (c.cmp_given ? sel.key_grads : want_phi);
  const int ci = static_cast<int>(Branch::cmp);

  Gradients out;
  out.rows = qp.list;
  out.keys = kp.list;
  const auto nq = static_cast<int64_t>(qp.list.size()), nk = static_cast<int64_t>(kp.list.size());
  out.dq.assign(static_cast<std::size_t>(nq * c.h_q * dk_dim), 0.0);
  for (int b = 0; b < 3; ++b) {
    out.dg[b].assign(static_cast<std::size_t>(nq * c.h_q), 0.0);
    out.dk[b].assign(static_cast<std::size_t>(nk * Hkv * dk_dim), 0.0);
    out.dv[b].assign(static_cast<std::size_t>(nk * Hkv * dv_dim), 0.0);
  }
  if (c.shared_kv) {
    out.dk_shared.assign(out.dk[0].size(), 0.0);
    out.dv_shared.assign(out.dv[0].size(), 0.0);
  }
  if (c.cmp_given) {  // exactly 0 when the compression branch is disabled
    out.dk_tilde.assign(static_cast<std::size_t>(vc.total_cmp * Hkv * dk_dim), 0.0);
    out.dv_tilde.assign(static_cast<std::size_t>(vc.total_cmp * Hkv * dv_dim), 0.0);
  }
  // phi parameter gradients per KV head, summed over the sequences in order.
  std::vector<PhiHeadGrad<Real>> gk, gv;
  if (want_phi)
    for (int64_t g = 0; g < Hkv; ++g) {
      gk.push_back(zero_phi_grad(phi_head<Real>(vc, in.phi_k, g, dk_dim)));
      gv.push_back(zero_phi_grad(phi_head<Real>(vc, in.phi_v, g, dv_dim)));
    }

  for (const Sequence& seq : vc.seqs) {
    const int64_t nc = vc.num_cmp_blocks(seq.t_k);
    const int64_t n_tok_tiles = (seq.t_k + kKeyTile - 1) / kKeyTile;
    const int64_t n_cmp_tiles = (nc + kCmpTile - 1) / kCmpTile;
    // Key tiles whose gradients are wanted, per branch (the compressed keys a wanted token
    // reads, or all of them for the phi parameters).
    std::array<std::vector<char>, 3> tile_on;
    tile_on[0].assign(static_cast<std::size_t>(n_cmp_tiles), cmp_all ? 1 : 0);
    tile_on[1].assign(static_cast<std::size_t>(n_tok_tiles), 0);
    tile_on[2].assign(static_cast<std::size_t>(n_tok_tiles), 0);
    bool any_keys = cmp_all && nc > 0;
    for (int64_t u = 0; u < seq.t_k; ++u) {
      if (kp.slot[seq.k_begin + u] < 0) continue;
      any_keys = true;
      tile_on[1][u / kKeyTile] = tile_on[2][u / kKeyTile] = 1;
      const int64_t first = u < c.cmp_block ? 0 : (u - c.cmp_block) / c.cmp_stride + 1;
      for (int64_t i = first; i <= std::min(nc - 1, u / c.cmp_stride); ++i)
        tile_on[0][i / kCmpTile] = 1;
    }
    // Rows of pass 1: all of the sequence's rows when any of its keys is wanted, else the
    // wanted query rows.
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < seq.t_q; ++i)
      if (any_keys || qp.slot[seq.q_begin + i] >= 0) rows.push_back(i);
    if (rows.empty() && !any_keys) continue;

    std::vector<HeadData<Real>> heads(static_cast<std::size_t>(Hkv));
    parallel_for(Hkv, sel.threads,
                 [&](int64_t g) { heads[g] = load_head<Real>(vc, in, seq, g, round); });

    // dK (without the scale, applied once at the end) and dV per branch and KV head: [keys, d].
    std::array<std::vector<Mat<Real>>, 3> dks, dvs;
    if (any_keys)
      for (Branch b : kAllBranches) {
        if (!c.enabled(b)) continue;
        const int bi = static_cast<int>(b);
        const int64_t nkeys = b == Branch::cmp ? nc : seq.t_k;
        dks[bi].assign(static_cast<std::size_t>(Hkv), Mat<Real>::Zero(nkeys, dk_dim));
        dvs[bi].assign(static_cast<std::size_t>(Hkv), Mat<Real>::Zero(nkeys, dv_dim));
      }

    for (std::size_t r0 = 0; r0 < rows.size(); r0 += kRowBlock) {
      const int64_t nrows = std::min<int64_t>(kRowBlock, static_cast<int64_t>(rows.size() - r0));
      const auto block_row = [&](int64_t k) { return rows[r0 + static_cast<std::size_t>(k)]; };
      std::vector<RowKeep<Real>> keep(any_keys ? static_cast<std::size_t>(nrows * Hkv) : 0);

      // Pass 1: the block's query side.
      parallel_for(nrows, sel.threads, [&](int64_t k) {
        const int64_t i = block_row(k);
        const int64_t row = seq.q_begin + i, t = seq.pos(i);
        const int64_t qslot = qp.slot[row];
        for (int64_t g = 0; g < Hkv; ++g) {
          const auto& hd = heads[static_cast<std::size_t>(g)];
          const Mat<Real> q = group_queries<Real>(vc, in, row, g);
          const int32_t* given =
              c.given_indices ? in.indices.data() + (row * Hkv + g) * c.top_n : nullptr;
          const auto ra = attend_row(vc, hd, q, t, seq.t_k, given, scale, round, kPass1Keep<Round>);
          Mat<Real> dq = Mat<Real>::Zero(G, dk_dim);
          for (Branch b : kAllBranches) {
            if (!c.enabled(b)) continue;
            const int bi = static_cast<int>(b);
            const auto& fwd = ra.res[bi];
            const auto& segs = ra.segs[bi];
            // The rows the products read: the gathered selection keys where attend_row made them.
            const bool gathered = b == Branch::slc && ra.slc_k.rows() > 0;
            const std::vector<Segment> local = {{0, gathered ? ra.slc_k.rows() : 0}};
            const Mat<Real>& keys = gathered ? ra.slc_k : b == Branch::cmp ? hd.k_cmp : hd.k[bi];
            const Mat<Real>& vals = gathered ? ra.slc_v : b == Branch::cmp ? hd.v_cmp : hd.v[bi];
            const auto& key_rows = gathered ? local : segs;
            const RowGrad<Real> rg = row_grad(vc, in, d_o, b, row, g, fwd, vals, key_rows, round);
            Mat<Real> ds = stored(scores_grad(rg.p, rg.dp, rg.D), round);
            if (qslot >= 0) {
              dq += attend_backward_q(ds, keys, key_rows, scale, round);
              for (int64_t h = 0; h < G; ++h)
                out.dg[bi][qslot * c.h_q + g * G + h] = to_double(round.store(rg.dg(h)));
            }
            if (any_keys) {
              auto& kept = keep[static_cast<std::size_t>(k * Hkv + g)];
              kept.segs[bi] = segs;
              kept.p[bi] = stored(rg.p, round);
              kept.ds[bi] = std::move(ds);
            }
          }
          if (qslot < 0) continue;
          for (int64_t h = 0; h < G; ++h)
            for (int64_t e = 0; e < dk_dim; ++e)
              out.dq[(qslot * c.h_q + g * G + h) * dk_dim + e] = to_double(round.store(dq(h, e)));
        }
      });
      if (!any_keys) continue;

      // Pass 2: invert the block's key sets into per-tile listings, row by row (a fixed order).
      std::array<std::vector<std::vector<std::vector<TileUse>>>, 3> uses;  // [b][g][tile]
      for (Branch b : kAllBranches) {
        if (!c.enabled(b)) continue;
        const int bi = static_cast<int>(b);
        const int64_t tile = b == Branch::cmp ? kCmpTile : kKeyTile;
        uses[bi].assign(static_cast<std::size_t>(Hkv),
                        std::vector<std::vector<TileUse>>(tile_on[bi].size()));
        for (int64_t k = 0; k < nrows; ++k)
          for (int64_t g = 0; g < Hkv; ++g) {
            int64_t col = 0;  // the segment's first column in the row's P and dS
            for (const Segment& s : keep[static_cast<std::size_t>(k * Hkv + g)].segs[bi]) {
              for (int64_t tl = s.begin / tile; tl * tile < s.begin + s.len; ++tl) {
                if (!tile_on[bi][tl]) continue;
                const int64_t from = std::max(s.begin, tl * tile);
                const int64_t to = std::min(s.begin + s.len, (tl + 1) * tile);
                uses[bi][g][tl].push_back(
                    {k, from - tl * tile, to - tl * tile, col + from - s.begin});
              }
              col += s.len;
            }
          }
      }
      struct Task {
        int b;
        int64_t g, tile;
      };
      std::vector<Task> tasks;
      for (int b = 0; b < 3; ++b)
        for (int64_t g = 0; g < static_cast<int64_t>(uses[b].size()); ++g)
          for (int64_t tl = 0; tl < static_cast<int64_t>(uses[b][g].size()); ++tl)
            if (!uses[b][g][tl].empty()) tasks.push_back({b, g, tl});
      parallel_for(static_cast<int64_t>(tasks.size()), sel.threads, [&](int64_t ti) {
        const Task& task = tasks[static_cast<std::size_t>(ti)];
        const int bi = task.b;
        const int64_t k0 = task.tile * (bi == ci ? kCmpTile : kKeyTile);
        const auto& list = uses[bi][task.g][task.tile];
        for (std::size_t u0 = 0; u0 < list.size(); u0 += kRowChunk) {
          const std::size_t m = std::min<std::size_t>(kRowChunk, list.size() - u0);
          const int64_t R = static_cast<int64_t>(m) * G;
          // Only the tile keys some listing of the chunk reaches enter the products.
          int64_t c0 = list[u0].lo, c1 = list[u0].hi;
          for (std::size_t e = 1; e < m; ++e) {
            c0 = std::min(c0, list[u0 + e].lo);
            c1 = std::max(c1, list[u0 + e].hi);
          }
          Mat<Real> q(R, dk_dim), dob(R, dv_dim);
          Mat<Real> p = Mat<Real>::Zero(R, c1 - c0), ds = Mat<Real>::Zero(R, c1 - c0);
          for (std::size_t e = 0; e < m; ++e) {
            const TileUse& use = list[u0 + e];
            const int64_t row = seq.q_begin + block_row(use.row), e0 = static_cast<int64_t>(e) * G;
            const auto& kept = keep[static_cast<std::size_t>(use.row * Hkv + task.g)];
            q.middleRows(e0, G) = group_queries<Real>(vc, in, row, task.g);
            branch_upstream(vc, in, d_o, static_cast<Branch>(bi), row, task.g, round, dob, e0);
            p.block(e0, use.lo - c0, G, use.hi - use.lo) =
                kept.p[bi].middleCols(use.col, use.hi - use.lo);
            ds.block(e0, use.lo - c0, G, use.hi - use.lo) =
                kept.ds[bi].middleCols(use.col, use.hi - use.lo);
          }
          Mat<Real> dk_part = Mat<Real>::Zero(c1 - c0, dk_dim),
                    dv_part = Mat<Real>::Zero(c1 - c0, dv_dim);
          attend_backward_kv(p, ds, q, dob, round, dk_part, dv_part);
          dks[bi][task.g].middleRows(k0 + c0, c1 - c0) += dk_part;
          dvs[bi][task.g].middleRows(k0 + c0, c1 - c0) += dv_part;
        }
      });
    }
    if (!any_keys) continue;
    for (int b = 0; b < 3; ++b)
      for (auto& dk : dks[b]) dk *= scale;

    // A given compressed cache receives its blocks' gradients as they are, rounded once.
    if (c.enable_cmp && c.cmp_given && sel.key_grads) {
      for (int64_t g = 0; g < Hkv; ++g)
        for (int64_t i = 0; i < nc; ++i) {
          const std::size_t kb = static_cast<std::size_t>(((seq.c_begin + i) * Hkv + g) * dk_dim);
          const std::size_t vb = static_cast<std::size_t>(((seq.c_begin + i) * Hkv + g) * dv_dim);
          for (int64_t e = 0; e < dk_dim; ++e)
            out.dk_tilde[kb + e] = to_double(round.store(dks[ci][g](i, e)));
          for (int64_t e = 0; e < dv_dim; ++e)
            out.dv_tilde[vb + e] = to_double(round.store(dvs[ci][g](i, e)));
        }
    }
    // The compressed keys' gradients through phi into the tokens (and phi's parameters).
    if (c.enable_cmp && !c.cmp_given) {
      parallel_for(Hkv, sel.threads, [&](int64_t g) {
        const auto& hd = heads[static_cast<std::size_t>(g)];
        const PhiHead<Real> hk = phi_head<Real>(vc, in.phi_k, g, dk_dim);
        const PhiHead<Real> hv = phi_head<Real>(vc, in.phi_v, g, dv_dim);
        PhiHeadGrad<Real> sk = zero_phi_grad(hk), sv = zero_phi_grad(hv);
        dks[ci][g] = compress_all_backward(vc, hk, hd.k[ci], dks[ci][g], sk, round);
        dvs[ci][g] = compress_all_backward(vc, hv, hd.v[ci], dvs[ci][g], sv, round);
        if (!want_phi) return;
        add_phi_grad(gk[static_cast<std::size_t>(g)], sk);
        add_phi_grad(gv[static_cast<std::size_t>(g)], sv);
      });
    }

    // Token gradients of this sequence's wanted keys, rounded once.
    for (int64_t u = 0; u < seq.t_k; ++u) {
      const int64_t slot = kp.slot[seq.k_begin + u];
      if (slot < 0) continue;
      for (int64_t g = 0; g < Hkv; ++g) {
        const std::size_t kbase = static_cast<std::size_t>((slot * Hkv + g) * dk_dim);
        const std::size_t vbase = static_cast<std::size_t>((slot * Hkv + g) * dv_dim);
        Vec<Real> ksum = Vec<Real>::Zero(dk_dim), vsum = Vec<Real>::Zero(dv_dim);
        for (Branch b : kAllBranches) {
          // A given compressed cache: the raw K_cmp/V_cmp are not inputs, no token gradient.
          if (!c.enabled(b) || (b == Branch::cmp && c.cmp_given)) continue;
          const int bi = static_cast<int>(b);
          const Mat<Real>& dkm = dks[bi][g];
          const Mat<Real>& dvm = dvs[bi][g];
          for (int64_t e = 0; e < dk_dim; ++e) {
            out.dk[bi][kbase + e] = to_double(round.store(dkm(u, e)));
            ksum(e) += dkm(u, e);
          }
          for (int64_t e = 0; e < dv_dim; ++e) {
            out.dv[bi][vbase + e] = to_double(round.store(dvm(u, e)));
            vsum(e) += dvm(u, e);
          }
        }
        if (!c.shared_kv) continue;
        for (int64_t e = 0; e < dk_dim; ++e)
          out.dk_shared[kbase + e] = to_double(round.store(ksum(e)));
        for (int64_t e = 0; e < dv_dim; ++e)
          out.dv_shared[vbase + e] = to_double(round.store(vsum(e)));
      }
    }
  }

  if (want_phi) {
    out.dphi_k = flatten_phi_grad(gk, round);
    out.dphi_v = flatten_phi_grad(gv, round);
  }
  return out;
}

}  // namespace nsa::ref::detail
