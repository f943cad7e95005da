// Turns a fuzzer's byte string into bounded choices. Every read is defined for every input:
// once the bytes run out, reads return the low end of their range, so a short input still
// decodes to a complete (small) case and the mutator can grow it byte by byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "nsa/ref/knobs.hpp"

namespace nsa::fuzz {

class ByteReader {
 public:
  ByteReader(const uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  std::size_t remaining() const { return size_ - pos_; }
  bool empty() const { return pos_ >= size_; }

  uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }

  uint32_t u32() {
    uint32_t x = 0;
    for (int i = 0; i < 4; ++i) x |= static_cast<uint32_t>(u8()) << (8 * i);
    return x;
  }

  uint64_t u64() { return static_cast<uint64_t>(u32()) | (static_cast<uint64_t>(u32()) << 32); }

  // Uniform-ish in [lo, hi] (hi >= lo), from as few bytes as the span needs.
  int64_t range(int64_t lo, int64_t hi) {
    const uint64_t span = static_cast<uint64_t>(hi - lo);
    if (span == 0) return lo;
    const uint64_t raw = span < 256 ? u8() : span < 65536 ? (u8() | (u8() << 8)) : u64();
    return lo + static_cast<int64_t>(raw % (span + 1));
  }

  bool flag() { return (u8() & 1) != 0; }

  // Any enumerator of a knob enum (the spelling table gives the count).
  template <class E>
  E pick() {
    const auto n = static_cast<int64_t>(nsa::ref::EnumNames<E>::names.size());
    return static_cast<E>(range(0, n - 1));
  }

  // The rest of the bytes as a string.
  std::string rest() {
    std::string s(reinterpret_cast<const char*>(data_ + pos_), size_ - pos_);
    pos_ = size_;
    return s;
  }

 private:
  const uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

}  // namespace nsa::fuzz
