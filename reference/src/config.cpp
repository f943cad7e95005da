// Validation of Config: every rule of docs/semantics.md "Configuration rules", one check each.
#include "nsa/ref/config.hpp"

#include <bit>
#include <cmath>
#include <sstream>

#include "nsa/ref/profiles.hpp"

namespace nsa::ref {

ConfigError::ConfigError(std::string field, std::string value, std::string rule)
    : std::invalid_argument("invalid config: field '" + field + "' = " + value + ": " + rule),
      field_(std::move(field)),
      value_(std::move(value)),
      rule_(std::move(rule)) {}

namespace {

void require(bool ok, const char* field, int64_t value, const std::string& rule) {
  if (!ok) throw ConfigError(field, std::to_string(value), rule);
}

void require_range(const char* field, int64_t value, int64_t lo, int64_t hi) {
  require(value >= lo && value <= hi, field, value,
          "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

// Checks one cu_seqlens vector and returns the per-sequence lengths.
std::vector<int64_t> lengths_of(const std::vector<int64_t>& cu, const char* field) {
  if (cu.size() < 2)
    throw ConfigError(field, "<" + std::to_string(cu.size()) + " entries>",
                      "needs at least 2 entries (B+1 offsets, B >= 1)");
  if (cu[0] != 0) throw ConfigError(std::string(field) + "[0]", std::to_string(cu[0]), "must be 0");
  std::vector<int64_t> len(cu.size() - 1);
  for (std::size_t b = 0; b + 1 < cu.size(); ++b) {
    const auto where = std::string(field) + "[" + std::to_string(b + 1) + "]";
    if (cu[b + 1] < cu[b])
      throw ConfigError(where, std::to_string(cu[b + 1]),
                        "must be >= the previous entry " + std::to_string(cu[b]) +
                            " (offsets are non-decreasing)");
    if (cu[b + 1] > kMaxTokens)
      throw ConfigError(where, std::to_string(cu[b + 1]),
                        "must be <= " + std::to_string(kMaxTokens) + " (int32 offsets)");
    len[b] = cu[b + 1] - cu[b];
  }
  return len;
}

void validate_layout(ValidConfig& v) {
  Config& c = v.cfg;
  if (c.layout == Layout::padded) {
    require_range("batch", c.batch, 1, kMaxBatch);
    require_range("t_k", c.t_k, 0, kMaxTokens);
    require(c.t_q >= -1, "t_q", c.t_q, "must be -1 (= t_k) or in [0, t_k]");
    if (c.t_q < 0) c.t_q = c.t_k;
    require(c.t_q <= c.t_k, "t_q", c.t_q,
            "must be <= t_k = " + std::to_string(c.t_k) + " (queries are a suffix of the keys)");
    require(c.batch * c.t_k <= kMaxTokens, "batch", c.batch,
            "batch * t_k must be <= " + std::to_string(kMaxTokens));
    std::vector<int64_t> cu_k, cu_q;
    for (int64_t b = 0; b <= c.batch; ++b) {
      cu_k.push_back(b * c.t_k);
      cu_q.push_back(b * c.t_q);
    }
    // A normalized config carries the derived offsets; anything else is a layout mix-up.
    require(c.cu_seqlens_k.empty() || c.cu_seqlens_k == cu_k, "cu_seqlens_k",
            static_cast<int64_t>(c.cu_seqlens_k.size()),
            "must be empty for layout padded (use layout varlen)");
    require(c.cu_seqlens_q.empty() || c.cu_seqlens_q == cu_q, "cu_seqlens_q",
            static_cast<int64_t>(c.cu_seqlens_q.size()),
            "must be empty for layout padded (use layout varlen)");
    c.cu_seqlens_k = cu_k;
    c.cu_seqlens_q = cu_q;
  } else {
    require(c.t_q == -1 && c.t_k == 0, "t_k", c.t_k,
            "t_q/t_k must be left unset for layout varlen (lengths come from cu_seqlens)");
    const auto lk = lengths_of(c.cu_seqlens_k, "cu_seqlens_k");
    if (c.cu_seqlens_q.empty()) c.cu_seqlens_q = c.cu_seqlens_k;
    const auto lq = lengths_of(c.cu_seqlens_q, "cu_seqlens_q");
    require(lq.size() == lk.size(), "cu_seqlens_q", static_cast<int64_t>(c.cu_seqlens_q.size()),
            "must have as many entries as cu_seqlens_k (" + std::to_string(c.cu_seqlens_k.size()) +
                ")");
    for (std::size_t b = 0; b < lk.size(); ++b) {
      if (lq[b] > lk[b])
        throw ConfigError(
            "cu_seqlens_q",
            "sequence " + std::to_string(b) + " has " + std::to_string(lq[b]) + " queries",
            "must be <= its " + std::to_string(lk[b]) + " keys");
    }
    c.batch = static_cast<int64_t>(lk.size());
  }
  for (int64_t b = 0; b < c.batch; ++b) {
    Sequence s;
    s.q_begin = c.cu_seqlens_q[b];
    s.k_begin = c.cu_seqlens_k[b];
    s.t_q = c.cu_seqlens_q[b + 1] - s.q_begin;
    s.t_k = c.cu_seqlens_k[b + 1] - s.k_begin;
    v.max_t_k = std::max(v.max_t_k, s.t_k);
    s.c_begin = v.total_cmp;
    v.total_cmp += v.num_cmp_blocks(s.t_k);
    v.seqs.push_back(s);
  }
  v.total_q = c.cu_seqlens_q.back();
  v.total_k = c.cu_seqlens_k.back();
  if (c.layout == Layout::varlen) {
    c.t_k = 0;
    c.t_q = -1;
  }
}

void validate_shapes(ValidConfig& v) {
  const Config& c = v.cfg;
  require_range("h_q", c.h_q, 1, kMaxHeads);
  require_range("h_kv", c.h_kv, 1, kMaxHeads);
  require(c.h_q % c.h_kv == 0, "h_q", c.h_q,
          "must be a multiple of h_kv = " + std::to_string(c.h_kv) + " (G = h_q / h_kv)");
  v.group = c.h_q / c.h_kv;
  require_range("d_k", c.d_k, 1, kMaxHeadDim);
  require_range("d_v", c.d_v, 1, kMaxHeadDim);
  if (c.scale) {
    if (!std::isfinite(*c.scale) || *c.scale <= 0)
      throw ConfigError("scale", std::to_string(*c.scale), "must be finite and > 0");
    v.scale = *c.scale;
  } else {
    v.scale = 1.0 / std::sqrt(static_cast<double>(c.d_k));
  }
}

void validate_blocks(const Config& c) {
  require_range("cmp_stride", c.cmp_stride, 1, kMaxBlock);
  require_range("cmp_block", c.cmp_block, 1, kMaxBlock);
  require(c.cmp_block >= c.cmp_stride, "cmp_block", c.cmp_block,
          "must be >= cmp_stride = " + std::to_string(c.cmp_stride) + " (l >= d)");
  require(c.cmp_block % c.cmp_stride == 0, "cmp_block", c.cmp_block,
          "must be a multiple of cmp_stride = " + std::to_string(c.cmp_stride) + " (l % d == 0)");
  require_range("slc_block", c.slc_block, 1, kMaxBlock);
  require(c.slc_block % c.cmp_stride == 0, "slc_block", c.slc_block,
          "must be a multiple of cmp_stride = " + std::to_string(c.cmp_stride) + " (l' % d == 0)");
  require_range("top_n", c.top_n, 1, kMaxTokens);
  require_range("n_init", c.n_init, 0, kMaxTokens);
  require_range("n_local", c.n_local, 0, kMaxTokens);
  require(c.top_n >= c.n_init + c.n_local, "top_n", c.top_n,
          "must be >= n_init + n_local = " + std::to_string(c.n_init + c.n_local));
  require_range("window", c.window, 1, kMaxTokens);
  if (c.score_mapping == ScoreMapping::identity) {
    require(c.cmp_block == c.cmp_stride && c.cmp_stride == c.slc_block, "score_mapping",
            c.cmp_block,
            "identity needs cmp_block == cmp_stride == slc_block (got l=" +
                std::to_string(c.cmp_block) + ", d=" + std::to_string(c.cmp_stride) +
                ", l'=" + std::to_string(c.slc_block) + ")");
  }
}

void validate_branches(const Config& c) {
  if (!c.enable_cmp && !c.enable_slc && !c.enable_win)
    throw ConfigError("enable_cmp/enable_slc/enable_win", "false/false/false",
                      "at least one branch must be enabled");
  if (c.phi == Phi::mlp) {
    require_range("phi_hidden", c.phi_hidden, 1, kMaxPhiHidden);
  } else {
    require(c.phi_hidden == 0, "phi_hidden", c.phi_hidden,
            "must be 0 unless phi is mlp (phi = " + std::string(to_string(c.phi)) + ")");
  }
}

}  // namespace

ValidConfig validate(const Config& cfg) {
  ValidConfig v;
  v.cfg = cfg;
  validate_profile(v.cfg);
  validate_shapes(v);
  validate_blocks(v.cfg);
  // top_n <= 2^31 = kMaxTokens, a power of two, so the rounded count stays in range.
  if (v.cfg.topn_rounding == TopnRounding::next_power_of_two)
    v.cfg.top_n = static_cast<int64_t>(std::bit_ceil(static_cast<uint64_t>(v.cfg.top_n)));
  validate_branches(v.cfg);
  validate_layout(v);
  v.cfg.scale = v.scale;
  // Every per-row sizes product must stay inside int64 with room to spare.
  const long double elems = static_cast<long double>(std::max(v.total_q, v.total_k)) *
                            static_cast<long double>(v.cfg.h_q) *
                            static_cast<long double>(std::max(v.cfg.d_k, v.cfg.d_v));
  if (elems > static_cast<long double>(int64_t{1} << 52))
    throw ConfigError("total tokens * h_q * head dim", std::to_string(static_cast<double>(elems)),
                      "must be <= 2^52 elements");
  return v;
}

std::string describe(const Config& c) {
  std::ostringstream o;
  auto list = [&](const std::vector<int64_t>& xs) {
    o << '[';
    for (std::size_t i = 0; i < xs.size(); ++i) o << (i ? "," : "") << xs[i];
    o << ']';
  };
  o << "profile=" << c.profile << " layout=" << to_string(c.layout);
  if (c.layout == Layout::padded) {
    o << " batch=" << c.batch << " t_k=" << c.t_k << " t_q=" << c.t_q;
  } else {
    o << " cu_seqlens_k=";
    list(c.cu_seqlens_k);
    o << " cu_seqlens_q=";
    list(c.cu_seqlens_q);
  }
  o << " h_q=" << c.h_q << " h_kv=" << c.h_kv << " d_k=" << c.d_k << " d_v=" << c.d_v;
  if (c.scale) o << " scale=" << *c.scale;
  o << " l=" << c.cmp_block << " d=" << c.cmp_stride << " l'=" << c.slc_block << " n=" << c.top_n
    << " n_init=" << c.n_init << " n_local=" << c.n_local << " w=" << c.window
    << " branches=" << (c.enable_cmp ? "c" : "-") << (c.enable_slc ? "s" : "-")
    << (c.enable_win ? "w" : "-") << " phi=" << to_string(c.phi);
  if (c.phi == Phi::mlp) o << "(" << c.phi_hidden << "," << to_string(c.phi_act) << ")";
  o << " dtype=" << to_string(c.dtype) << " shared_kv=" << c.shared_kv
    << " given_indices=" << c.given_indices << " cmp_given=" << c.cmp_given
    << " cmp_visibility=" << to_string(c.cmp_visibility)
    << " score_mapping=" << to_string(c.score_mapping)
    << " group_reduce=" << to_string(c.group_reduce) << " forced_mode=" << to_string(c.forced_mode)
    << " tie_break=" << to_string(c.tie_break) << " slc_causal=" << to_string(c.slc_causal)
    << " index_policy=" << to_string(c.index_policy) << " window_keys=" << to_string(c.window_keys)
    << " topn_rounding=" << to_string(c.topn_rounding);
  return o.str();
}

}  // namespace nsa::ref
