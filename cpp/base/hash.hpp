// FNV-1a, the checksum of every lic2cpp format: 64 bit for the .licm and .lice
// fingerprints and the codec fingerprint, 32 bit for the bitstream check field.
// `h` lets a hash continue over several pieces.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lic {

constexpr std::uint64_t kFnv64Offset = 0xcbf29ce484222325ull;
constexpr std::uint32_t kFnv32Offset = 0x811c9dc5u;

inline std::uint64_t fnv1a64(const std::uint8_t* data, std::size_t size,
                             std::uint64_t h = kFnv64Offset) {
  for (std::size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 0x100000001b3ull;
  return h;
}

inline std::uint32_t fnv1a32(const std::uint8_t* data, std::size_t size,
                             std::uint32_t h = kFnv32Offset) {
  for (std::size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 0x01000193u;
  return h;
}

}  // namespace lic
