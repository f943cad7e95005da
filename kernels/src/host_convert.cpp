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

}  // namespace nsa::cuda::detail
