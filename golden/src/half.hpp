// Bit-exact coding of the two-byte float formats (IEEE binary16 and bfloat16) that golden files
// store. Only values exactly representable in the format are encoded; anything else is a bug of
// the caller and is rejected rather than rounded.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace nsa::golden {

struct HalfFormat {
  int mant_bits;
  int exp_bits;
  int bias;
};
inline constexpr HalfFormat kFp16{10, 5, 15};
inline constexpr HalfFormat kBf16{7, 8, 127};

inline uint16_t encode_half(double x, HalfFormat f) {
  const uint32_t sign = std::signbit(x) ? 1u : 0u;
  const uint32_t exp_max = (1u << f.exp_bits) - 1;
  uint32_t exp = 0, mant = 0;
  const double a = std::fabs(x);
  if (std::isnan(x)) {
    exp = exp_max;
    mant = 1u << (f.mant_bits - 1);
  } else if (std::isinf(x)) {
    exp = exp_max;
  } else if (a != 0) {
    const int e = std::ilogb(a);
    double m;
    if (e < 1 - f.bias) {
      m = std::ldexp(a, f.bias - 1 + f.mant_bits);
    } else {
      exp = static_cast<uint32_t>(e + f.bias);
      m = std::ldexp(a, f.mant_bits - e) - std::ldexp(1.0, f.mant_bits);
    }
    if (exp >= exp_max || m != std::floor(m))
      throw std::invalid_argument("value " + std::to_string(x) +
                                  " is not representable in the two-byte format");
    mant = static_cast<uint32_t>(m);
  }
  return static_cast<uint16_t>((sign << 15) | (exp << f.mant_bits) | mant);
}

inline double decode_half(uint16_t bits, HalfFormat f) {
  const bool neg = (bits >> 15) & 1u;
  const uint32_t exp_max = (1u << f.exp_bits) - 1;
  const uint32_t exp = (bits >> f.mant_bits) & exp_max;
  const uint32_t mant = bits & ((1u << f.mant_bits) - 1);
  double v;
  if (exp == exp_max)
    v = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (exp == 0)
    v = std::ldexp(static_cast<double>(mant), 1 - f.bias - f.mant_bits);
  else
    v = std::ldexp(1.0 + std::ldexp(static_cast<double>(mant), -f.mant_bits),
                   static_cast<int>(exp) - f.bias);
  return neg ? -v : v;
}

}  // namespace nsa::golden
