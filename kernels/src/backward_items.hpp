// The backward's work items (docs/kernels.md, "Backward"), written once for the device and the
// host: the kernels in backward_*.cu run one item per thread, and the host model of the kernels
// (tests/host/test_backward_model.cpp, CPU, in CI) runs the same functions in plain loops and
// judges them against the reference. No CUDA headers: a compiler without CUDA sees plain C++.
//
// Semantics (docs/semantics.md, section 10): for a branch with key set S of a query head,
// P_j = exp(z_j - lse), dP_j = g_b <dO, v_j>, D = sum_j P_j dP_j, dS_j = P_j (dP_j - D),
// dq += s sum_j dS_j k_j, dk_j += s dS_j q, dv_j += P_j g_b dO, dg_b = sum_j P_j <dO, v_j>.
// Everything in fp64 from the dtype's values (see the header of backward_query.cu for why).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define NSA_HD __host__ __device__ __forceinline__
#else
#define NSA_HD inline
#endif

namespace nsa::cuda::bwd {

// One sequence: packed offsets and lengths (as nsa::ref::Sequence), c_begin its first compressed
// row in the packed compressed tensors.
struct Seq {
  int64_t q_begin, k_begin, t_q, t_k, c_begin;
};

// The config as the items need it, flattened. Pointers are device or host memory alike.
struct Shape {
  int64_t total_q, total_k, total_c;
  int64_t h_q, h_kv, group, d_k, d_v;
  int64_t l, d, lp, n, w;
  double scale;
  int visibility;   // CmpVisibility: 0 inclusive, 1 strict
  int slc_causal;   // SlcCausal: 0 token, 1 none
  int policy;       // IndexPolicy: 0 strict, 1 skip_invalid, 2 multiset (3 never reaches here)
  int window_keys;  // WindowKeys: 0 w, 1 w_plus_one
  int phi;          // Phi: 0 mean, 1 linear, 2 mlp
  int act;          // Activation of mlp: 0 relu, 1 silu
  int64_t m;        // mlp hidden size
  bool enable[3];
  int64_t num_seqs;
  const Seq* seqs;      // [num_seqs]
  const int64_t* cu_q;  // [num_seqs + 1] query row offsets
  const int64_t* cu_k;  // [num_seqs + 1] key row offsets
  const int64_t* cu_c;  // [num_seqs + 1] compressed row offsets
};

// The tensors the items read, in the storage type T (the case dtype on the device, double on
// the host). Pointers of disabled branches may be null.
template <class T>
struct Tensors {
  const T* q;          // [total_q, h_q, d_k]
  const T* k[3];       // per branch [total_k, h_kv, d_k]; k[0] unused (kc holds the blocks)
  const T* v[3];       // per branch [total_k, h_kv, d_v]
  const T* gate[3];    // per branch [total_q, h_q]
  const T* d_o;        // [total_q, h_q, d_v]
  const T* kc;         // compressed K [total_c, h_kv, d_k] (rounded to the dtype, as stored)
  const T* vc;         // compressed V [total_c, h_kv, d_v]
  const int32_t* idx;  // selection lists [total_q, h_kv, n]
};

// What the query side leaves for the key side, per branch: lse and D of every (row, head),
// [total_q, h_q] each, fp64.
struct RowStats {
  const double* lse[3];
  const double* D[3];
};

// The selection's inverted index: entries (key, query row), sorted by key, then by the order
// of the lists (row, slot): a stable sort of slc_entry_key over the flat list positions.
struct SlcIndex {
  const uint64_t* keys;  // [entries]
  const int64_t* rows;   // [entries]
  int64_t entries;
};

// Sequence holding packed row r of a prefix table cu (num + 1 entries): the last s with
// cu[s] <= r (empty sequences share their offset with the next one).
NSA_HD int64_t seq_index(const int64_t* cu, int64_t num, int64_t r) {
  int64_t lo = 0, hi = num;
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (cu[mid] <= r)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

NSA_HD int64_t cmp_blocks(const Shape& c, int64_t len) {
  return len < c.l ? 0 : (len - c.l) / c.d + 1;
}

// Position of packed query row `row` of sequence sq inside its key sequence (query suffix).
NSA_HD int64_t position(const Seq& sq, int64_t row) { return sq.t_k - sq.t_q + (row - sq.q_begin); }

template <class T, class Ld>
NSA_HD double dot(const T* a, const T* b, int64_t n) {
  double s = 0.0;
  for (int64_t e = 0; e < n; ++e) s += Ld::get(a[e]) * Ld::get(b[e]);
  return s;
}

// Whether slot `slot` of a selection list (of a row at position t) names a block the row walks:
// a candidate 0 <= j <= floor(t / l'), and not a repeat of an earlier slot unless the policy is
// multiset (which walks a block once per listing).
NSA_HD bool slc_slot_walked(const Shape& c, const int32_t* list, int64_t slot, int64_t t) {
  const int64_t j = list[slot];
  if (j < 0 || j > t / c.lp) return false;
  if (c.policy != 2)
    for (int64_t p = 0; p < slot; ++p)
      if (list[p] == j) return false;
  return true;
}

// Sentinel key of a list entry the policy skips: one past every real key.
NSA_HD uint64_t slc_sentinel(const Shape& c) {
  return static_cast<uint64_t>(c.h_kv) * static_cast<uint64_t>(c.total_k);
}

// The inverted-index key of slot `slot` of the list of (row, KV head g): g * total_k + the packed
// row of the block's first token, or the sentinel where the policy skips the entry (negative,
// past the row's candidates c(t) = floor(t / l'), a repeat under strict / skip_invalid).
// Whatever the list holds, nothing outside the sequence's blocks is ever named.
NSA_HD uint64_t slc_entry_key(const Shape& c, const int32_t* idx, int64_t row, int64_t g,
                              int64_t slot) {
  const Seq sq = c.seqs[seq_index(c.cu_q, c.num_seqs, row)];
  const int64_t t = position(sq, row);
  const int32_t* list = idx + (row * c.h_kv + g) * c.n;
  if (!slc_slot_walked(c, list, slot, t)) return slc_sentinel(c);
  return static_cast<uint64_t>(g) * static_cast<uint64_t>(c.total_k) +
         static_cast<uint64_t>(sq.k_begin + list[slot] * c.lp);
}

// Calls f(u) for every key of branch b's key set of the row at position t (u: the key's row
// relative to the branch's base, the sequence's first token or first compressed block), in the
// forward's order, a multiset listing once per listing.
template <class F>
NSA_HD void for_each_key(const Shape& c, int b, const Seq& sq, int64_t row, int64_t g, int64_t t,
                         const int32_t* idx, F&& f) {
  if (b == 0) {
    const int64_t nv = cmp_blocks(c, c.visibility == 0 ? t + 1 : t);
    for (int64_t u = 0; u < nv; ++u) f(u);
  } else if (b == 2) {
    const int64_t span = c.window_keys == 0 ? c.w : c.w + 1;
    const int64_t lo = t - span + 1 > 0 ? t - span + 1 : 0;
    for (int64_t u = lo; u <= t; ++u) f(u);
  } else {
    const int32_t* list = idx + (row * c.h_kv + g) * c.n;
    const int64_t cap = c.slc_causal == 0 ? t + 1 : sq.t_k;
    for (int64_t slot = 0; slot < c.n; ++slot) {
      if (!slc_slot_walked(c, list, slot, t)) continue;
      const int64_t j = list[slot];
      const int64_t end = j * c.lp + c.lp < cap ? j * c.lp + c.lp : cap;
      for (int64_t u = j * c.lp; u < end; ++u) f(u);
    }
  }
}

// Query side of one (row, query head): for every enabled branch its lse and D (written to
// lse_out[b], d_out[b] at [row, head]) and its gate gradient dg_out[b][row, head]; dq (d_k values,
// the sum over the branches, fp64) into dq_acc. Three passes over each key set: the softmax
// statistics, D, then dS and dq.
template <class T, class Ld>
NSA_HD void query_item(const Shape& c, const Tensors<T>& x, int64_t row, int64_t head,
                       double* const lse_out[3], double* const d_out[3], double* const dg_out[3],
                       double* dq_acc) {
  const Seq sq = c.seqs[seq_index(c.cu_q, c.num_seqs, row)];
  const int64_t t = position(sq, row), g = head / c.group, rh = row * c.h_q + head;
  const T* q = x.q + rh * c.d_k;
  const T* dob = x.d_o + rh * c.d_v;
  for (int64_t e = 0; e < c.d_k; ++e) dq_acc[e] = 0.0;
  for (int b = 0; b < 3; ++b) {
    if (!c.enable[b]) continue;
    const int64_t base = b == 0 ? sq.c_begin : sq.k_begin;
    const T* kb = (b == 0 ? x.kc : x.k[b]) + (base * c.h_kv + g) * c.d_k;
    const T* vb = (b == 0 ? x.vc : x.v[b]) + (base * c.h_kv + g) * c.d_v;
    const int64_t ks = c.h_kv * c.d_k, vs = c.h_kv * c.d_v;
    double m = -INFINITY, s = 0.0;
    for_each_key(c, b, sq, row, g, t, x.idx, [&](int64_t u) {
      const double z = c.scale * dot<T, Ld>(q, kb + u * ks, c.d_k);
      if (z > m) {
        s = s * ::exp(m - z) + 1.0;
        m = z;
      } else {
        s += ::exp(z - m);
      }
    });
    if (s == 0.0) {  // empty key set: contributes exactly 0
      lse_out[b][rh] = -INFINITY;
      d_out[b][rh] = 0.0;
      dg_out[b][rh] = 0.0;
      continue;
    }
    const double lse = m + ::log(s);
    double dg = 0.0;  // <dO, o_b> = sum_j P_j <dO, v_j>
    for_each_key(c, b, sq, row, g, t, x.idx, [&](int64_t u) {
      const double p = ::exp(c.scale * dot<T, Ld>(q, kb + u * ks, c.d_k) - lse);
      dg += p * dot<T, Ld>(dob, vb + u * vs, c.d_v);
    });
    const double gb = Ld::get(x.gate[b][rh]);
    const double D = gb * dg;
    for_each_key(c, b, sq, row, g, t, x.idx, [&](int64_t u) {
      const T* kr = kb + u * ks;
      const double p = ::exp(c.scale * dot<T, Ld>(q, kr, c.d_k) - lse);
      const double ds = p * (gb * dot<T, Ld>(dob, vb + u * vs, c.d_v) - D);
      for (int64_t e = 0; e < c.d_k; ++e) dq_acc[e] += c.scale * ds * Ld::get(kr[e]);
    });
    lse_out[b][rh] = lse;
    d_out[b][rh] = D;
    dg_out[b][rh] = dg;
  }
}

// One (query row, head) term of a key's gradients: dk_acc += s dS q, dv_acc += P g_b dO.
template <class T, class Ld>
NSA_HD void key_term(const Shape& c, const Tensors<T>& x, const RowStats& st, int b, int64_t row,
                     int64_t head, const T* kr, const T* vr, double* dk_acc, double* dv_acc) {
  const int64_t rh = row * c.h_q + head;
  const T* q = x.q + rh * c.d_k;
  const T* dob = x.d_o + rh * c.d_v;
  const double gb = Ld::get(x.gate[b][rh]);
  const double p = ::exp(c.scale * dot<T, Ld>(q, kr, c.d_k) - st.lse[b][rh]);
  const double ds = p * (gb * dot<T, Ld>(dob, vr, c.d_v) - st.D[b][rh]);
  for (int64_t e = 0; e < c.d_k; ++e) dk_acc[e] += c.scale * ds * Ld::get(q[e]);
  for (int64_t e = 0; e < c.d_v; ++e) dv_acc[e] += p * gb * Ld::get(dob[e]);
}

// Key side of one key row of branch b and KV head g: the sum over every (query row, head of the
// group) that attends it, rows ascending, heads ascending, a multiset listing once per listing.
// key_row is a packed token (selection, window) or a packed compressed block (compression).
// Writes d_k and d_v fp64 values to dk_acc, dv_acc (unscaled by phi: the compressed block's own
// gradient).
template <class T, class Ld>
NSA_HD void key_item(const Shape& c, const Tensors<T>& x, const RowStats& st, const SlcIndex& si,
                     int b, int64_t key_row, int64_t g, double* dk_acc, double* dv_acc) {
  for (int64_t e = 0; e < c.d_k; ++e) dk_acc[e] = 0.0;
  for (int64_t e = 0; e < c.d_v; ++e) dv_acc[e] = 0.0;
  const T* kr = (b == 0 ? x.kc : x.k[b]) + (key_row * c.h_kv + g) * c.d_k;
  const T* vr = (b == 0 ? x.vc : x.v[b]) + (key_row * c.h_kv + g) * c.d_v;
  auto rows_from = [&](const Seq& sq, int64_t t0, int64_t t1) {  // positions [t0, t1]
    const int64_t first = sq.t_k - sq.t_q;
    if (t0 < first) t0 = first;
    for (int64_t t = t0; t <= t1; ++t) {
      const int64_t row = sq.q_begin + (t - first);
      for (int64_t h = 0; h < c.group; ++h)
        key_term<T, Ld>(c, x, st, b, row, g * c.group + h, kr, vr, dk_acc, dv_acc);
    }
  };
  if (b == 0) {
    const Seq sq = c.seqs[seq_index(c.cu_c, c.num_seqs, key_row)];
    const int64_t i = key_row - sq.c_begin;
    rows_from(sq, i * c.d + c.l - 1 + (c.visibility == 0 ? 0 : 1), sq.t_k - 1);
    return;
  }
  const Seq sq = c.seqs[seq_index(c.cu_k, c.num_seqs, key_row)];
  const int64_t u = key_row - sq.k_begin;
  if (b == 2) {
    const int64_t span = c.window_keys == 0 ? c.w : c.w + 1;
    rows_from(sq, u, u + span - 1 < sq.t_k - 1 ? u + span - 1 : sq.t_k - 1);
    return;
  }
  // Selection: the entries of this token's block, found by binary search in the sorted keys.
  const uint64_t key = static_cast<uint64_t>(g) * static_cast<uint64_t>(c.total_k) +
                       static_cast<uint64_t>(sq.k_begin + (u / c.lp) * c.lp);
  int64_t lo = 0, hi = si.entries;  // first entry with keys[e] >= key
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (si.keys[mid] < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (int64_t e = lo; e < si.entries && si.keys[e] == key; ++e) {
    const int64_t row = si.rows[e];
    if (c.slc_causal == 0 && u > position(sq, row)) continue;  // causal cap inside the block
    for (int64_t h = 0; h < c.group; ++h)
      key_term<T, Ld>(c, x, st, b, row, g * c.group + h, kr, vr, dk_acc, dv_acc);
  }
}

// The token gradient of phi's backward for token key_row, KV head g, column e of a tensor of
// width dim: the sum over every compressed block i of its sequence that covers it (overlapping
// blocks each) of the block's gradient with respect to that token: dy_i / l for mean (blk: the
// blocks' gradients dy [total_c, h_kv, dim]), dx_i at the token's offset for linear / mlp (blk:
// dx [total_c, h_kv, l * dim], phi_dx_item).
NSA_HD double phi_gather(const Shape& c, const double* blk, int64_t dim, int64_t key_row, int64_t g,
                         int64_t e) {
  const Seq sq = c.seqs[seq_index(c.cu_k, c.num_seqs, key_row)];
  const int64_t u = key_row - sq.k_begin, nc = cmp_blocks(c, sq.t_k);
  const int64_t first = u < c.l ? 0 : (u - c.l) / c.d + 1;
  const int64_t last = u / c.d < nc - 1 ? u / c.d : nc - 1;
  double acc = 0.0;
  for (int64_t i = first; i <= last; ++i) {
    const int64_t row = (sq.c_begin + i) * c.h_kv + g;
    acc += c.phi == 0 ? blk[row * dim + e] : blk[row * c.l * dim + (u - i * c.d) * dim + e];
  }
  return c.phi == 0 ? acc / static_cast<double>(c.l) : acc;
}

// phi's parameters of one tensor (K or V) and the tokens it compresses, in the storage type.
template <class T>
struct PhiView {
  const T* x;  // tokens [total_k, h_kv, dim]
  const T* pos;
  const T* w1;
  const T* b1;
  const T* w2;
  const T* b2;
  int64_t dim;
};

NSA_HD double act_value(int act, double h) {
  return act == 0 ? (h > 0.0 ? h : 0.0) : h / (1.0 + ::exp(-h));
}
NSA_HD double act_grad(int act, double h) {
  if (act == 0) return h > 0.0 ? 1.0 : 0.0;  // relu'(0) = 0
  const double s = 1.0 / (1.0 + ::exp(-h));
  return s * (1.0 + h * (1.0 - s));
}

// Element r of x_i = vec(X_i + P) (token-major) of compressed row ci, KV head g.
template <class T, class Ld>
NSA_HD double phi_input(const Shape& c, const PhiView<T>& p, int64_t tok0, int64_t g, int64_t r) {
  const int64_t j = r / p.dim, e = r % p.dim;
  return Ld::get(p.x[((tok0 + j) * c.h_kv + g) * p.dim + e]) +
         Ld::get(p.pos[(g * c.l + j) * p.dim + e]);
}

// Packed row of the first token of compressed row ci.
NSA_HD int64_t phi_first_token(const Shape& c, int64_t ci) {
  const Seq sq = c.seqs[seq_index(c.cu_c, c.num_seqs, ci)];
  return sq.k_begin + (ci - sq.c_begin) * c.d;
}

// mlp, compressed row ci, KV head g, hidden unit j: a = act(h) and dh = (W2 dy)_j act'(h) with
// h = (W1^T x_i + b1)_j, into a_out / dh_out [total_c, h_kv, m] (dy: [total_c, h_kv, dim]).
template <class T, class Ld>
NSA_HD void mlp_hidden_item(const Shape& c, const PhiView<T>& p, const double* dy, int64_t ci,
                            int64_t g, int64_t j, double* a_out, double* dh_out) {
  const int64_t width = c.l * p.dim, tok0 = phi_first_token(c, ci);
  double h = Ld::get(p.b1[g * c.m + j]);
  for (int64_t r = 0; r < width; ++r)
    h += Ld::get(p.w1[(g * width + r) * c.m + j]) * phi_input<T, Ld>(c, p, tok0, g, r);
  double da = 0.0;
  for (int64_t e = 0; e < p.dim; ++e)
    da += Ld::get(p.w2[(g * c.m + j) * p.dim + e]) * dy[(ci * c.h_kv + g) * p.dim + e];
  const int64_t o = (ci * c.h_kv + g) * c.m + j;
  a_out[o] = act_value(c.act, h);
  dh_out[o] = da * act_grad(c.act, h);
}

// dx_i[r] = (W dy_i)_r (linear) or (W1 dh_i)_r (mlp) of compressed row ci, KV head g: the
// gradient of block i's input element r, which its token and P both receive.
template <class T, class Ld>
NSA_HD double phi_dx_item(const Shape& c, const PhiView<T>& p, const double* dy, const double* dh,
                          int64_t ci, int64_t g, int64_t r) {
  const int64_t width = c.l * p.dim;
  const int64_t k = c.phi == 1 ? p.dim : c.m;
  const double* v = c.phi == 1 ? dy + (ci * c.h_kv + g) * p.dim : dh + (ci * c.h_kv + g) * c.m;
  double s = 0.0;
  for (int64_t q = 0; q < k; ++q) s += Ld::get(p.w1[(g * width + r) * k + q]) * v[q];
  return s;
}

// Flat element `it` of phi's parameter gradient `which` (0 pos [h_kv, l, dim], 1 w1
// [h_kv, l dim, dim or m], 2 b1 [h_kv, m], 3 w2 [h_kv, m, dim], 4 b2 [h_kv, dim]): a sum over
// every compressed row, ascending (every block of every sequence).
template <class T, class Ld>
NSA_HD double phi_param_item(const Shape& c, const PhiView<T>& p, const double* dy,
                             const double* dx, const double* a, const double* dh, int which,
                             int64_t it) {
  const int64_t width = c.l * p.dim, dim = p.dim;
  const int64_t cols = which == 1 ? (c.phi == 1 ? dim : c.m) : which == 2 ? c.m : dim;
  const int64_t rows = which == 0 ? c.l : which == 1 ? width : which == 3 ? c.m : 1;
  const int64_t g = it / (rows * cols), rc = it % (rows * cols), r = rc / cols, k = rc % cols;
  double s = 0.0;
  for (int64_t ci = 0; ci < c.total_c; ++ci) {
    const int64_t row = ci * c.h_kv + g;
    if (which == 0) {
      s += dx[row * width + rc];
    } else if (which == 1) {
      const double x = phi_input<T, Ld>(c, p, phi_first_token(c, ci), g, r);
      s += x * (c.phi == 1 ? dy[row * dim + k] : dh[row * c.m + k]);
    } else if (which == 2) {
      s += dh[row * c.m + k];
    } else if (which == 3) {
      s += a[row * c.m + r] * dy[row * dim + k];
    } else {
      s += dy[row * dim + k];
    }
  }
  return s;
}

// Element count of phi's parameter gradient `which` (phi_param_item) for a tensor of width dim.
NSA_HD int64_t phi_param_size(const Shape& c, int64_t dim, int which) {
  const int64_t width = c.l * dim;
  if (c.phi == 0) return 0;
  if (c.phi == 1) return which == 0 ? c.h_kv * c.l * dim : which == 1 ? c.h_kv * width * dim : 0;
  const int64_t sizes[5] = {c.h_kv * c.l * dim, c.h_kv * width * c.m, c.h_kv * c.m,
                            c.h_kv * c.m * dim, c.h_kv * dim};
  return sizes[which];
}

// The finish of flat element it = (key_row, g, e) of a token tensor of width dim: each enabled
// branch's fp64 gradient into v[b] (the compressed one through phi_gather from blk, the others
// from acc[b]); returns their sum (cmp + slc + win), the shared-K/V gradient.
NSA_HD double finish_item(const Shape& c, int64_t dim, const double* blk,
                          const double* const acc[3], int64_t it, double v[3]) {
  const int64_t e = it % dim, g = (it / dim) % c.h_kv, key_row = it / (dim * c.h_kv);
  double sum = 0.0;
  for (int b = 0; b < 3; ++b) {
    if (!c.enable[b]) continue;
    v[b] = b == 0 ? phi_gather(c, blk, dim, key_row, g, e) : acc[b][it];
    sum += v[b];
  }
  return sum;
}

}  // namespace nsa::cuda::bwd
