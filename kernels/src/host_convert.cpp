// Host-side conversion between the reference's doubles and the device dtypes (host_convert.hpp).
#include "host_convert.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace nsa::cuda::detail {

using nsa::ref::Dtype;

namespace {

// IEEE half <-> float by bits (round to nearest even; exact for representable values).
uint16_t float_to_half_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const int32_t exp = static_cast<int32_t>((x >> 23) & 0xffu) - 127 + 15;
  uint32_t mant = x & 0x7fffffu;
  if (((x >> 23) & 0xffu) == 0xffu)
    return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0));
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - exp;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  float f;
  if (e == 0) {
    f = std::ldexp(static_cast<float>(m), -24);
  } else if (e == 31) {
    f = m ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    f = std::ldexp(static_cast<float>(m | 0x400u), static_cast<int>(e) - 25);
  }
  return sign ? -f : f;
}

}  // namespace

// Host-side bit conversion of values already representable in the dtype (exact).
void convert(const std::vector<double>& src, Dtype dt, std::vector<unsigned char>& dst) {
  const std::size_t eb = dtype_bytes(dt);
  dst.resize(src.size() * eb);
  for (std::size_t i = 0; i < src.size(); ++i) {
    const float f = static_cast<float>(src[i]);
    if (dt == Dtype::f32) {
      std::memcpy(dst.data() + i * 4, &f, 4);
    } else if (dt == Dtype::bf16) {
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      const uint16_t h = static_cast<uint16_t>(bits >> 16);  // exact: value is representable
      std::memcpy(dst.data() + i * 2, &h, 2);
    } else {
      const uint16_t h = float_to_half_bits(f);
      std::memcpy(dst.data() + i * 2, &h, 2);
    }
  }
}

double widen(const unsigned char* p, Dtype dt) {
  if (dt == Dtype::f32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  if (dt == Dtype::bf16) {
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  return half_bits_to_float(h);
}

void check_host_inputs(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                       bool validate_indices) {
  if (validate_indices) {
    nsa::ref::check_inputs(vc, in);
    return;
  }
  auto relaxed = vc;
  relaxed.cfg.index_policy = nsa::ref::IndexPolicy::multiset;  // skips only the strict list check
  nsa::ref::check_inputs(relaxed, in);
}

DeviceInputs upload_inputs(const nsa::ref::ValidConfig& vc, const nsa::ref::Inputs& in,
                           Uploader& up) {
  const auto& c = vc.cfg;
  DeviceInputs di;
  di.q = up(in.q, "q");
  const bool need_cmp_kv = c.enable_cmp || (c.enable_slc && !c.given_indices);
  for (int b = 0; b < 3; ++b) {
    // A given compressed cache replaces the compression branch's K/V (and phi).
    const bool need =
        b == 0 ? need_cmp_kv && !c.cmp_given : c.enabled(static_cast<nsa::ref::Branch>(b));
    if (need) {
      // Shared K/V: upload once and alias.
      if (c.shared_kv && b > 0 && di.k[0] && in.k[b] == in.k[0] && in.v[b] == in.v[0]) {
        di.k[b] = di.k[0];
        di.v[b] = di.v[0];
      } else {
        di.k[b] = up(in.k[b], "k");
        di.v[b] = up(in.v[b], "v");
      }
    }
    if (c.enabled(static_cast<nsa::ref::Branch>(b))) di.gate[b] = up(in.gate[b], "gate");
  }
  di.phi_k_pos = up(in.phi_k.pos, "phi_k.pos");
  di.phi_k_w1 = up(in.phi_k.w1, "phi_k.w1");
  di.phi_k_b1 = up(in.phi_k.b1, "phi_k.b1");
  di.phi_k_w2 = up(in.phi_k.w2, "phi_k.w2");
  di.phi_k_b2 = up(in.phi_k.b2, "phi_k.b2");
  di.phi_v_pos = up(in.phi_v.pos, "phi_v.pos");
  di.phi_v_w1 = up(in.phi_v.w1, "phi_v.w1");
  di.phi_v_b1 = up(in.phi_v.b1, "phi_v.b1");
  di.phi_v_w2 = up(in.phi_v.w2, "phi_v.w2");
  di.phi_v_b2 = up(in.phi_v.b2, "phi_v.b2");
  if (c.cmp_given && need_cmp_kv) {
    di.k_tilde = up(in.k_tilde, "k_tilde");
    di.v_tilde = up(in.v_tilde, "v_tilde");
  }
  return di;
}

}  // namespace nsa::cuda::detail
