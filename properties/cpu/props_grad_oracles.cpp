// Gradient properties G5, G7, G9, G10 and G14: the reference's gradients against independent
// computations (full causal attention, the mean phi as a scatter of the compressed keys'
// gradients, an explicitly duplicated-key problem, finite differences, the dense oracle).
#include <algorithm>
#include <cmath>

#include "dense_oracle.hpp"
#include "grad_common.hpp"
#include "grad_support.hpp"
#include "nsa/ref/generate.hpp"
#include "properties.hpp"

namespace nsa::props {
namespace {

// A Gradients of the same shapes as g, every value 0.
Gradients zeros_like(const Gradients& g) {
  Gradients z = g;
  for (auto& [name, t] : all_tensors(z)) std::fill(t->begin(), t->end(), 0.0);
  return z;
}

// Adds one attention_grad result to the gradients of branch b: dq of (row, head), dK/dV of the
// listed keys (absolute key rows `keys`, KV head g), dg = <dO, o>.
void add_attention(const ValidConfig& vc, Branch br, int64_t row, int64_t head,
                   const std::vector<int64_t>& keys, const AttentionGrad& a, const double* d_o,
                   Gradients& want, Gradients& mag) {
  const auto& cfg = vc.cfg;
  const int bi = static_cast<int>(br);
  const int64_t g = head / vc.group, rh = row * cfg.h_q + head;
  for (int64_t e = 0; e < cfg.d_k; ++e) {
    want.dq[rh * cfg.d_k + e] += a.dq[e];
    mag.dq[rh * cfg.d_k + e] += a.dq_mag[e];
  }
  double dg = 0, dg_mag = 0;
  for (int64_t e = 0; e < cfg.d_v; ++e) {
    dg += d_o[e] * a.o[e];
    dg_mag += std::fabs(d_o[e]) * a.o_mag[e];
  }
  want.dg[bi][rh] = dg;
  mag.dg[bi][rh] = dg_mag;
  for (std::size_t j = 0; j < keys.size(); ++j) {
    const int64_t kk = (keys[j] * cfg.h_kv + g) * cfg.d_k, kv = (keys[j] * cfg.h_kv + g) * cfg.d_v;
    for (int64_t e = 0; e < cfg.d_k; ++e) {
      want.dk[bi][kk + e] += a.dk[j][e];
      mag.dk[bi][kk + e] += a.dk_mag[j][e];
    }
    for (int64_t e = 0; e < cfg.d_v; ++e) {
      want.dv[bi][kv + e] += a.dv[j][e];
      mag.dv[bi][kv + e] += a.dv_mag[j][e];
    }
  }
}

// dk_shared / dv_shared as the sum over the branches.
void sum_shared(const ValidConfig& vc, Gradients& g) {
  if (!vc.cfg.shared_kv) return;
  std::fill(g.dk_shared.begin(), g.dk_shared.end(), 0.0);
  std::fill(g.dv_shared.begin(), g.dv_shared.end(), 0.0);
  for (int b = 0; b < 3; ++b) {
    for (std::size_t i = 0; i < g.dk_shared.size(); ++i) g.dk_shared[i] += g.dk[b][i];
    for (std::size_t i = 0; i < g.dv_shared.size(); ++i) g.dv_shared[i] += g.dv[b][i];
  }
}

// Branch b's upstream gradient of (row, head): g_b * dO.
std::vector<double> branch_d_o(const ValidConfig& vc, const Inputs& in, Branch br,
                               const std::vector<double>& d_o, int64_t row, int64_t head) {
  const auto& cfg = vc.cfg;
  const int64_t rh = row * cfg.h_q + head;
  std::vector<double> x(static_cast<std::size_t>(cfg.d_v));
  for (int64_t e = 0; e < cfg.d_v; ++e) x[e] = in.gates(br)[rh] * d_o[rh * cfg.d_v + e];
  return x;
}

}  // namespace

void prop_grad_full_attention(const Case& c) {
  const auto& cfg = c.cfg;
  const auto vc = nsa::ref::validate(cfg);
  NSA_PROP_REQUIRE(!cfg.enable_cmp, "needs the compression branch off (dq sums the branches)");
  NSA_PROP_REQUIRE(
      !cfg.enable_slc || (computes_top_n(cfg) && cfg.slc_causal == nsa::ref::SlcCausal::token &&
                          cfg.top_n >= vc.max_slc_blocks()),
      "needs n >= the candidates, computed indices and the token mask");
  const int64_t span = cfg.window_keys == nsa::ref::WindowKeys::w ? cfg.window : cfg.window + 1;
  NSA_PROP_REQUIRE(!cfg.enable_win || span >= vc.max_t_k, "needs w >= t + 1 for every t");
  const auto p = prepare(c);
  const auto d_o = grad_output(vc, c.seed);
  const auto g = run_backward(vc, p.in, d_o);
  Gradients want = zeros_like(g), mag = zeros_like(g);
  // Both branches are full causal attention over keys 0 .. t of their own K/V.
  for (int64_t r = 0; r < vc.total_q; ++r) {
    const auto pos = row_pos(vc, r);
    const int64_t k0 = vc.seqs[static_cast<std::size_t>(pos.seq)].k_begin;
    std::vector<int64_t> keys;
    for (int64_t u = 0; u <= pos.t; ++u) keys.push_back(k0 + u);
    for (Branch br : {Branch::slc, Branch::win}) {
      if (!cfg.enabled(br)) continue;
      for (int64_t h = 0; h < cfg.h_q; ++h) {
        const int64_t gi = h / vc.group;
        std::vector<const double*> kp, vp;
        for (int64_t u : keys) {
          kp.push_back(p.in.keys(br).data() + (u * cfg.h_kv + gi) * cfg.d_k);
          vp.push_back(p.in.values(br).data() + (u * cfg.h_kv + gi) * cfg.d_v);
        }
        const auto dob = branch_d_o(vc, p.in, br, d_o, r, h);
        const auto a = attention_grad(kp, vp, p.in.q.data() + (r * cfg.h_q + h) * cfg.d_k,
                                      dob.data(), cfg.d_k, cfg.d_v, vc.scale);
        add_attention(vc, br, r, h, keys, a, d_o.data() + (r * cfg.h_q + h) * cfg.d_v, want, mag);
      }
    }
  }
  sum_shared(vc, want);
  sum_shared(vc, mag);
  expect_close_grads("full causal attention:", g, want, mag, grad_tol(vc));
}

void prop_grad_mean_phi_scatter(const Case& c) {
  const auto& cfg = c.cfg;
  NSA_PROP_REQUIRE(cfg.enable_cmp && cfg.phi == nsa::ref::Phi::mean,
                   "needs the compression branch with phi = mean");
  const auto p = prepare(c);
  const auto& vc = p.vc;
  const auto d_o = grad_output(vc, c.seed);
  const auto g = run_backward(vc, p.in, d_o);
  Gradients want = zeros_like(g), mag = zeros_like(g);
  const int64_t l = cfg.cmp_block, d = cfg.cmp_stride, Hkv = cfg.h_kv;
  const auto& K = p.in.keys(Branch::cmp);
  const auto& V = p.in.values(Branch::cmp);
  for (const auto& seq : vc.seqs) {
    const int64_t nc = seq.t_k < l ? 0 : (seq.t_k - l) / d + 1;
    for (int64_t gi = 0; gi < Hkv; ++gi) {
      // The compressed keys and values as plain attention keys: block means.
      std::vector<std::vector<double>> kt(static_cast<std::size_t>(nc)), vt(kt.size());
      for (int64_t i = 0; i < nc; ++i) {
        auto mean = [&](const std::vector<double>& x, int64_t dim) {
          std::vector<double> m(static_cast<std::size_t>(dim));
          for (int64_t e = 0; e < dim; ++e) {
            long double s = 0;
            for (int64_t j = 0; j < l; ++j)
              s += x[((seq.k_begin + i * d + j) * Hkv + gi) * dim + e];
            m[e] = static_cast<double>(s / l);
          }
          return m;
        };
        kt[i] = mean(K, cfg.d_k);
        vt[i] = mean(V, cfg.d_v);
      }
      std::vector<std::vector<double>> dkt(kt.size(), std::vector<double>(cfg.d_k, 0.0)),
          dvt(kt.size(), std::vector<double>(cfg.d_v, 0.0)), dkt_mag = dkt, dvt_mag = dvt;
      for (int64_t i = 0; i < seq.t_q; ++i) {
        const int64_t r = seq.q_begin + i, t = seq.pos(i);
        int64_t vis = 0;  // the spec's visible blocks
        while (vis < nc) {
          const int64_t last = vis * d + l - 1;
          if (cfg.cmp_visibility == nsa::ref::CmpVisibility::inclusive ? last > t : last >= t)
            break;
          ++vis;
        }
        std::vector<const double*> kp, vp;
        for (int64_t j = 0; j < vis; ++j) {
          kp.push_back(kt[j].data());
          vp.push_back(vt[j].data());
        }
        for (int64_t hl = 0; hl < vc.group; ++hl) {
          const int64_t h = gi * vc.group + hl;
          const auto dob = branch_d_o(vc, p.in, Branch::cmp, d_o, r, h);
          const auto a = attention_grad(kp, vp, p.in.q.data() + (r * cfg.h_q + h) * cfg.d_k,
                                        dob.data(), cfg.d_k, cfg.d_v, vc.scale);
          for (int64_t j = 0; j < vis; ++j) {
            for (int64_t e = 0; e < cfg.d_k; ++e) {
              dkt[j][e] += a.dk[j][e];
              dkt_mag[j][e] += a.dk_mag[j][e];
            }
            for (int64_t e = 0; e < cfg.d_v; ++e) {
              dvt[j][e] += a.dv[j][e];
              dvt_mag[j][e] += a.dv_mag[j][e];
            }
          }
          for (int64_t e = 0; e < cfg.d_k; ++e) {
            want.dq[(r * cfg.h_q + h) * cfg.d_k + e] = a.dq[e];
            mag.dq[(r * cfg.h_q + h) * cfg.d_k + e] = a.dq_mag[e];
          }
        }
      }
      // Scatter: every token of block i receives dk~_i / l (overlapping blocks: from each).
      for (int64_t i = 0; i < nc; ++i)
        for (int64_t j = 0; j < l; ++j) {
          const int64_t tok = seq.k_begin + i * d + j;
          for (int64_t e = 0; e < cfg.d_k; ++e) {
            want.dk[0][(tok * Hkv + gi) * cfg.d_k + e] += dkt[i][e] / static_cast<double>(l);
            mag.dk[0][(tok * Hkv + gi) * cfg.d_k + e] += dkt_mag[i][e] / static_cast<double>(l);
          }
          for (int64_t e = 0; e < cfg.d_v; ++e) {
            want.dv[0][(tok * Hkv + gi) * cfg.d_v + e] += dvt[i][e] / static_cast<double>(l);
            mag.dv[0][(tok * Hkv + gi) * cfg.d_v + e] += dvt_mag[i][e] / static_cast<double>(l);
          }
        }
    }
  }
  const double tol = grad_tol(vc);
  for (const auto& [name, got, w, m] : {std::tuple{"dk_cmp", &g.dk[0], &want.dk[0], &mag.dk[0]},
                                        std::tuple{"dv_cmp", &g.dv[0], &want.dv[0], &mag.dv[0]}})
    expect_close(std::string("mean phi as a scatter of dk~/l: ") + name, *got, *w, *m, tol);
  if (!cfg.enable_slc && !cfg.enable_win)
    expect_close("compression branch alone: dq", g.dq, want.dq, mag.dq, tol);
}

void prop_grad_multiset_duplicates_equal_duplicated_keys(const Case& c) {
  const auto& cfg = c.cfg;
  NSA_PROP_REQUIRE(cfg.layout == nsa::ref::Layout::padded && cfg.batch == 1,
                   "needs one padded sequence");
  NSA_PROP_REQUIRE(cfg.enable_slc && !cfg.enable_cmp && !cfg.enable_win && cfg.given_indices &&
                       cfg.index_policy == nsa::ref::IndexPolicy::multiset,
                   "needs the selection branch alone with given multiset lists");
  NSA_PROP_REQUIRE(cfg.t_k >= 2 * cfg.slc_block, "needs a complete block before the last one");
  auto p = prepare(c);
  const auto& vc = p.vc;
  const int64_t T = cfg.t_k, lb = cfg.slc_block, n = cfg.top_n, Hkv = cfg.h_kv;
  const auto& seq = vc.seqs[0];
  // Block j, complete before the last query's block, is listed up to three times by rows past
  // it; the lists also hold other blocks once, and entries the policy skips.
  const int64_t j =
      static_cast<int64_t>(choose(c.seed, 110, 0, static_cast<uint64_t>((T - 1) / lb)));
  int64_t copies = 0;  // extra listings of j, at most, over every list
  for (int64_t i = 0; i < seq.t_q; ++i) {
    const int64_t t = seq.pos(i), cur = t / lb;
    for (int64_t gi = 0; gi < Hkv; ++gi) {
      const uint64_t k = static_cast<uint64_t>(i * Hkv + gi);
      std::vector<int32_t> list;
      for (int64_t b = 0; b <= cur; ++b)
        if (b != j && choose(c.seed, 111, k * 64 + static_cast<uint64_t>(b), 2) == 0)
          list.push_back(static_cast<int32_t>(b));
      if (j <= cur && choose(c.seed, 112, k, 4) != 0) {
        const int64_t times = j < cur ? 1 + static_cast<int64_t>(choose(c.seed, 113, k, 3)) : 1;
        for (int64_t m = 0; m < times; ++m) list.push_back(static_cast<int32_t>(j));
      }
      const int32_t skipped[] = {-1, -7, static_cast<int32_t>(cur + 1), 1 << 20};
      if (choose(c.seed, 114, k, 4) == 0) list.push_back(skipped[choose(c.seed, 115, k, 4)]);
      const auto order = permutation(c.seed ^ k, 116, static_cast<int64_t>(list.size()));
      int32_t* dst = p.in.indices.data() + (i * Hkv + gi) * n;
      std::fill_n(dst, n, -1);
      int64_t listed_j = 0;
      for (int64_t s = 0; s < n && s < static_cast<int64_t>(order.size()); ++s) {
        dst[s] = list[static_cast<std::size_t>(order[s])];
        listed_j += dst[s] == j;
      }
      copies = std::max(copies, listed_j - 1);
    }
  }
  // The explicit problem: `copies` copies of block j's keys and values put in front, so each
  // extra listing of j becomes a listing of its own copy (blocks 0 .. copies-1) and block b
  // becomes block b + copies; positions move by copies * l'. Skipped entries become -1.
  nsa::ref::Config big = cfg;
  make_custom(big);
  big.index_policy = nsa::ref::IndexPolicy::strict;
  big.t_k = T + copies * lb;
  big.t_q = seq.t_q;
  const auto vc2 = nsa::ref::validate(big);
  Inputs in2 = p.in;
  const int64_t kd = Hkv * cfg.d_k, vd = Hkv * cfg.d_v;
  auto with_copies = [&](const std::vector<double>& x, int64_t width) {
    std::vector<double> y;
    for (int64_t m = 0; m < copies; ++m)
      y.insert(y.end(), x.begin() + j * lb * width, x.begin() + (j + 1) * lb * width);
    y.insert(y.end(), x.begin(), x.end());
    return y;
  };
  in2.k[1] = with_copies(p.in.k[1], kd);
  in2.v[1] = with_copies(p.in.v[1], vd);
  for (int64_t i = 0; i < seq.t_q; ++i) {
    const int64_t cur = seq.pos(i) / lb;
    for (int64_t gi = 0; gi < Hkv; ++gi) {
      int32_t* row = in2.indices.data() + (i * Hkv + gi) * n;
      int64_t seen_j = 0;
      for (int64_t s = 0; s < n; ++s) {
        const int32_t e = row[s];
        if (e < 0 || e > cur) {
          row[s] = -1;
        } else if (e == j && seen_j++ > 0) {
          row[s] = static_cast<int32_t>(seen_j - 2);
        } else {
          row[s] = static_cast<int32_t>(e + copies);
        }
      }
    }
  }
  const auto d_o = grad_output(vc, c.seed);
  const auto g1 = run_backward(vc, p.in, d_o);
  const auto g2 = run_backward(vc2, in2, d_o);
  const auto mag = nsa::oracle::dense_backward(vc, p.in, d_o).magnitude;
  const double tol = 2 * grad_tol(vc);
  expect_close("dq of the multiset lists vs the duplicated keys", g1.dq, g2.dq, mag.dq, tol);
  expect_close("dg_slc of the multiset lists vs the duplicated keys", g1.dg[1], g2.dg[1], mag.dg[1],
               tol);
  // A key of block j collects from its copies too.
  for (const auto& [name, width, got, dup, m] :
       {std::tuple{"dk_slc", kd, &g1.dk[1], &g2.dk[1], &mag.dk[1]},
        std::tuple{"dv_slc", vd, &g1.dv[1], &g2.dv[1], &mag.dv[1]}}) {
    std::vector<double> want(got->size());
    for (int64_t u = 0; u < T; ++u)
      for (int64_t e = 0; e < width; ++e) {
        double x = (*dup)[(u + copies * lb) * width + e];
        if (u / lb == j)
          for (int64_t m2 = 0; m2 < copies; ++m2) x += (*dup)[(m2 * lb + u - j * lb) * width + e];
        want[u * width + e] = x;
      }
    expect_close(std::string(name) + " of the multiset lists vs the duplicated keys summed", *got,
                 want, *m, tol);
  }
}

void prop_grad_finite_differences(const Case& c) {
  const auto& cfg = c.cfg;
  const auto vc = nsa::ref::validate(cfg);
  NSA_PROP_REQUIRE(vc.max_t_k <= 16 && cfg.h_q <= 4 && cfg.d_k <= 4 && cfg.d_v <= 4 &&
                       cfg.cmp_block <= 8 && cfg.phi_hidden <= 4,
                   "needs a tiny config (T <= 16, h_q <= 4, d <= 4, l <= 8, hidden <= 4)");
  NSA_PROP_REQUIRE(cfg.dtype != nsa::ref::Dtype::f64,
                   "needs an fp32/fp16/bf16 dtype (x +- 2^-40 exact in double)");
  NSA_PROP_REQUIRE(c.regime != nsa::ref::Regime::ties,
                   "ties make the selection and relu(0) non-differentiable");
  auto p = prepare(c);
  const auto r = grad_output(vc, c.seed);
  const auto g = run_backward(vc, p.in, r, {}, nsa::ref::Precision::bin50);
  constexpr double kH = 0x1.0p-40, kRel = 0x1.0p-50;
  for (const auto& pair : nsa::test::grad_pairs(vc, p.in, g)) {
    // Three seed-chosen elements of each input tensor (distinct).
    Inputs probe = p.in;
    const auto size = static_cast<int64_t>(pair.inputs(probe).front()->size());
    if (size == 0) continue;
    std::vector<int64_t> only;
    for (int64_t e : permutation(c.seed ^ std::hash<std::string>{}(pair.name), 120, size))
      if (only.size() < 3) only.push_back(e);
    const auto fd = nsa::test::finite_differences(vc, p.in, r, pair, kH, 1, only);
    const double bound = kRel * std::max(1.0, max_abs(*pair.grad));
    for (int64_t e : only) {
      if (fd.changed[e]) continue;  // the perturbation moved the selection: no derivative there
      const double want = fd.derivative[e], got = (*pair.grad)[e];
      NSA_PROP_CHECK(std::fabs(want - got) <= bound,
                     pair.name << "[" << e << "]: backward (bin50) " << got
                               << ", central difference of <R, o> (h = 2^-40) " << want
                               << ", |diff| " << std::fabs(want - got) << " > " << bound);
    }
  }
}

void prop_grad_matches_dense_oracle(const Case& c) {
  auto p = prepare(c);
  const auto& vc = p.vc;
  const auto& cfg = vc.cfg;
  if (cfg.given_indices && cfg.index_policy != nsa::ref::IndexPolicy::strict &&
      choose(c.seed, 130, 0, 2) == 0)
    p.in.indices = nsa::ref::generate_indices(vc, c.seed + 1, true);
  const auto d_o = grad_output(vc, c.seed);
  const auto g = run_backward(vc, p.in, d_o);
  // Where the two forwards break an exact tie of scores differently, the oracle differentiates
  // the reference's selection (a constant of the backward).
  std::vector<int32_t> selection;
  const double delta = 1e-12;
  const auto tie =
      nsa::oracle::tie_aware_selection(vc, p.in, run_forward(vc, p.in), delta, selection);
  NSA_PROP_CHECK(tie.empty(), "reference forward vs dense oracle: " << tie);
  const auto want = nsa::oracle::dense_backward(vc, p.in, d_o, selection);
  const auto d = nsa::oracle::diff(g, want, grad_tol(vc));
  NSA_PROP_CHECK(d.empty(), "reference backward vs dense oracle: " << d);
}

}  // namespace nsa::props
