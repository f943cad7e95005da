// Counter-based input generation (see generate.hpp for the guarantees).
#include "nsa/ref/generate.hpp"

#include <algorithm>
#include <cmath>

namespace nsa::ref {
namespace {

// One fixed stream id per tensor: changing one never shifts another's values.
enum Stream : uint64_t {
  kQ = 1,
  kK = 2,      // + branch
  kV = 5,      // + branch
  kGate = 8,   // + branch
  kPhiK = 11,  // + parameter slot
  kPhiV = 21,
  kIdx = 31,
  kGradOutput = 41,
  kKTilde = 51,  // cmp_given: the compressed cache
  kVTilde = 52,
};

double scaled(double u, double amp) { return (2.0 * u - 1.0) * amp; }

std::vector<double> tensor(uint64_t seed, uint64_t stream, int64_t n, double amp, Regime regime,
                           Dtype dt) {
  std::vector<double> x(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double u = random_unit(seed, stream, static_cast<uint64_t>(i));
    double v = scaled(u, amp);
    if (regime == Regime::ties) {
      v = std::floor(u * 3.0) - 1.0;  // {-1, 0, 1}
      v *= 0.5 * amp;
    } else if (regime == Regime::extreme) {
      // Exponent spread: magnitude 2^e with e uniform in [-24, 4] (fp16 subnormals to 16),
      // sign and mantissa from the other bits.
      const uint64_t b = random_bits(seed, stream + 1000, static_cast<uint64_t>(i));
      const int e = static_cast<int>(b % 29) - 24;
      v = std::ldexp(1.0 + u, e) * ((b >> 8) & 1 ? -1.0 : 1.0);
    }
    x[static_cast<std::size_t>(i)] = round_to(v, dt);
  }
  return x;
}

}  // namespace

const char* to_string(Regime r) {
  switch (r) {
    case Regime::typical:
      return "typical";
    case Regime::peaked:
      return "peaked";
    case Regime::ties:
      return "ties";
    case Regime::extreme:
      return "extreme";
  }
  return "<invalid>";
}

bool parse_regime(const std::string& text, Regime& out) {
  for (Regime r : {Regime::typical, Regime::peaked, Regime::ties, Regime::extreme})
    if (text == to_string(r)) {
      out = r;
      return true;
    }
  return false;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

uint64_t random_bits(uint64_t seed, uint64_t stream, uint64_t i) {
  return splitmix64(splitmix64(seed ^ (stream * 0xD1B54A32D192ED03ULL)) + i);
}

double random_unit(uint64_t seed, uint64_t stream, uint64_t i) {
  return static_cast<double>(random_bits(seed, stream, i) >> 11) * 0x1.0p-53;
}

Inputs generate_inputs(const ValidConfig& vc, uint64_t seed, Regime regime) {
  const auto& c = vc.cfg;
  const auto s = input_shapes(vc);
  const Dtype dt = c.dtype;
  Inputs in;
  const double q_amp = regime == Regime::peaked ? 16.0 : 1.0;
  const Regime kv_regime = regime == Regime::peaked ? Regime::typical : regime;
  in.q = tensor(seed, kQ, s.q, q_amp, kv_regime, dt);
  for (int b = 0; b < 3; ++b) {
    const int src = c.shared_kv ? 0 : b;
    in.k[b] = tensor(seed, kK + src, s.k, 1.0, kv_regime, dt);
    in.v[b] = tensor(seed, kV + src, s.v, 1.0, Regime::typical, dt);
    std::vector<double> g(static_cast<std::size_t>(s.gate));
    for (int64_t i = 0; i < s.gate; ++i)
      g[i] = round_to(random_unit(seed, kGate + b, static_cast<uint64_t>(i)), dt);
    in.gate[b] = std::move(g);
  }
  // phi parameters: scaled so that compressed keys keep the magnitude of the raw keys.
  const double l = static_cast<double>(c.cmp_block);
  auto params = [&](PhiParams& p, uint64_t base, int64_t dim, int64_t pos, int64_t w1, int64_t b1,
                    int64_t w2, int64_t b2) {
    const double fan_in = l * static_cast<double>(dim);
    p.pos = tensor(seed, base + 0, pos, 0.1, Regime::typical, dt);
    p.w1 = tensor(seed, base + 1, w1, 1.0 / std::sqrt(fan_in), Regime::typical, dt);
    p.b1 = tensor(seed, base + 2, b1, 0.1, Regime::typical, dt);
    const double m = static_cast<double>(std::max<int64_t>(1, c.phi_hidden));
    p.w2 = tensor(seed, base + 3, w2, 1.0 / std::sqrt(m), Regime::typical, dt);
    p.b2 = tensor(seed, base + 4, b2, 0.1, Regime::typical, dt);
  };
  params(in.phi_k, kPhiK, c.d_k, s.phi_pos_k, s.phi_w1_k, s.phi_b1, s.phi_w2_k, s.phi_b2_k);
  params(in.phi_v, kPhiV, c.d_v, s.phi_pos_v, s.phi_w1_v, s.phi_b1, s.phi_w2_v, s.phi_b2_v);
  // native-sparse-attention-triton has no position table for V (check_inputs requires 0).
  if (c.profile == "nsa_triton") std::fill(in.phi_v.pos.begin(), in.phi_v.pos.end(), 0.0);
  if (c.given_indices) in.indices = generate_indices(vc, seed, false);
  // A given compressed cache: values of the raw keys' kind, independent of K_cmp (the forward
  // must not depend on anything but the cache; the regimes apply to k~ as to k).
  in.k_tilde = tensor(seed, kKTilde, s.k_tilde, 1.0, kv_regime, dt);
  in.v_tilde = tensor(seed, kVTilde, s.v_tilde, 1.0, Regime::typical, dt);
  return in;
}

std::vector<double> generate_grad_output(const ValidConfig& vc, uint64_t seed) {
  return tensor(seed, kGradOutput, vc.total_q * vc.cfg.h_q * vc.cfg.d_v, 1.0, Regime::typical,
                vc.cfg.dtype);
}

std::vector<int32_t> generate_indices(const ValidConfig& vc, uint64_t seed, bool adversarial) {
  const auto& c = vc.cfg;
  const int64_t n = c.top_n;
  std::vector<int32_t> idx(static_cast<std::size_t>(vc.total_q * c.h_kv * n), -1);
  uint64_t counter = 0;
  auto next = [&] { return random_bits(seed, kIdx, counter++); };
  for (const auto& seq : vc.seqs) {
    for (int64_t i = 0; i < seq.t_q; ++i) {
      const int64_t cand = seq.pos(i) / c.slc_block + 1;
      for (int64_t g = 0; g < c.h_kv; ++g) {
        int32_t* row = idx.data() + ((seq.q_begin + i) * c.h_kv + g) * n;
        if (!adversarial) {
          // A random subset of distinct candidates, in random slots, -1 elsewhere.
          std::vector<int64_t> pool(static_cast<std::size_t>(cand));
          for (int64_t j = 0; j < cand; ++j) pool[j] = j;
          const int64_t take =
              static_cast<int64_t>(next() % static_cast<uint64_t>(std::min(n, cand) + 1));
          for (int64_t k = 0; k < take; ++k) {
            const auto pick = k + static_cast<int64_t>(next() % static_cast<uint64_t>(cand - k));
            std::swap(pool[k], pool[pick]);
          }
          std::vector<int64_t> slots(static_cast<std::size_t>(n));
          for (int64_t k = 0; k < n; ++k) slots[k] = k;
          for (int64_t k = 0; k < take; ++k) {
            const auto pick = k + static_cast<int64_t>(next() % static_cast<uint64_t>(n - k));
            std::swap(slots[k], slots[pick]);
            row[slots[k]] = static_cast<int32_t>(pool[k]);
          }
        } else {
          for (int64_t k = 0; k < n; ++k) {
            const uint64_t r = next();
            switch (r % 6) {
              case 0:
                row[k] = -1;
                break;
              case 1:
                row[k] = static_cast<int32_t>(-2 - static_cast<int64_t>((r >> 8) % 1000));
                break;
              case 2:
                row[k] = static_cast<int32_t>(cand + static_cast<int64_t>((r >> 8) % 4));
                break;
              case 3:
                row[k] = static_cast<int32_t>((r >> 8) % 2 ? INT32_MAX : INT32_MIN);
                break;
              default:
                row[k] = static_cast<int32_t>((r >> 8) % static_cast<uint64_t>(cand));
                break;
            }
          }
        }
      }
    }
  }
  return idx;
}

}  // namespace nsa::ref
