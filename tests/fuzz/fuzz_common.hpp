// Helpers shared by the libFuzzer targets (tests/fuzz/fuzz_*.cpp, docs/fuzzing.md).
//
// Each target checks one property: a reader of untrusted bytes either accepts them or
// refuses them with lic::Error; anything else (another exception, a crash, a sanitizer
// report, a leak, a hang) is a finding. The file formats carry checksums that random
// mutations almost never satisfy, so the targets also try a "repaired" copy of the input
// with its size and checksum fields recomputed: that copy reaches the field checks and the
// decoding behind them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "base/error.hpp"
#include "base/hash.hpp"

namespace fuzz {

using Bytes = std::vector<std::uint8_t>;

inline void put_le(Bytes& b, std::size_t pos, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b[pos + std::size_t(i)] = static_cast<std::uint8_t>(v >> (8 * i));
}

inline std::uint64_t get_le(const std::uint8_t* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// .licm and .lice share the header layout: magic, u16 major, u16 minor, u64 body size,
// u64 FNV-1a 64 of the body.
inline Bytes repaired_24(const std::uint8_t* data, std::size_t size) {
  Bytes b(data, data + size);
  if (size < 24) return b;
  put_le(b, 8, size - 24, 8);
  put_le(b, 16, lic::fnv1a64(b.data() + 24, size - 24), 8);
  return b;
}

// A finding that is not a crash by itself (a broken invariant): report and abort so that
// libFuzzer saves the input.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
  std::abort();
}

}  // namespace fuzz
