// s16_vsquare__scalar: GDN's square requantized, y[i] = min(rs(x[i] * x[i], shift), 32767)
// (docs/int16.md; 0 <= shift <= 31); y may equal x.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lic/kernels/s16-arith.hpp"

namespace lic {
namespace kern {

inline void s16_vsquare__scalar(const std::int16_t* x, std::int16_t* y, std::size_t n,
                                int shift) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t v = round_shift(std::int64_t(x[i]) * x[i], shift);
    y[i] = static_cast<std::int16_t>(v > 32767 ? 32767 : v);
  }
}

}  // namespace kern
}  // namespace lic
