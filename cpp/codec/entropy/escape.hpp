// The escape that makes every value codable (docs/bitstream.md#payload). A value v outside
// a table's alphabet [lo, lo + nsym) is the escape symbol nsym, then bypass bits: `below`
// (1 when v < lo), n - 1 in kEscapeLengthBits bits where n is the bit length of d + 1 (d:
// v's distance from the alphabet), and the low n - 1 bits of d + 1, high chunk first, in
// chunks of at most 16 bits. The context coder, its rate model and the hyperprior coder all
// write, read and count it here.
#pragma once

#include <cstdint>

#include "codec/core/range_coder.hpp"

namespace lic::codec {

constexpr int kEscapeLengthBits = 5;

struct Escape {
  uint32_t below = 0;  // 1: v < lo
  int n = 0;           // the bit length of d + 1
  uint64_t d1 = 0;     // d + 1

  int bits() const { return 1 + kEscapeLengthBits + (n - 1); }  // after the escape symbol
};

inline Escape escape_of(int64_t v, int64_t lo, uint32_t nsym) {
  const int64_t hi = lo + static_cast<int64_t>(nsym) - 1;
  const uint64_t d = v < lo ? static_cast<uint64_t>(lo - 1 - v) : static_cast<uint64_t>(v - hi - 1);
  Escape e;
  e.below = v < lo ? 1u : 0u;
  e.d1 = d + 1;
  for (uint64_t x = e.d1; x; x >>= 1) ++e.n;
  return e;
}

inline void encode_escape(RangeEncoder& enc, const Escape& e) {
  enc.encode_bits(e.below, 1);
  enc.encode_bits(static_cast<uint32_t>(e.n - 1), kEscapeLengthBits);
  for (int left = e.n - 1; left > 0;) {
    const int chunk = left > 16 ? 16 : left;
    left -= chunk;
    enc.encode_bits(static_cast<uint32_t>(e.d1 >> left) & ((1u << chunk) - 1), chunk);
  }
}

// The value of the escape that follows an escape symbol in `dec`; d + 1 < 2^32, so the
// result is within 2^32 of the alphabet (callers bound it further).
inline int64_t decode_escape(RangeDecoder& dec, int64_t lo, uint32_t nsym) {
  const uint32_t below = dec.decode_bits(1);
  const int n = static_cast<int>(dec.decode_bits(kEscapeLengthBits)) + 1;
  uint64_t d1 = 1;
  for (int left = n - 1; left > 0;) {
    const int chunk = left > 16 ? 16 : left;
    left -= chunk;
    d1 = (d1 << chunk) | dec.decode_bits(chunk);
  }
  const int64_t d = static_cast<int64_t>(d1 - 1);
  return below ? lo - 1 - d : lo + static_cast<int64_t>(nsym) + d;
}

}  // namespace lic::codec
