// s16_vleaky__scalar: y[i] = x[i] >= 0 ? x[i] : sat16(rs(x[i] * alpha_q, alpha_shift))
// (docs/int16.md; ReLU is alpha_q = 0); y may equal x. The reference and the fallback.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lic/kernels/s16-arith.hpp"

namespace lic {
namespace kern {

inline void s16_vleaky__scalar(const std::int16_t* x, std::int16_t* y, std::size_t n,
                               int alpha_q, int alpha_shift) {
  for (std::size_t i = 0; i < n; ++i)
    y[i] = static_cast<std::int16_t>(x[i] >= 0 ? x[i]
                                               : s16_leaky_negative(x[i], alpha_q, alpha_shift));
}

}  // namespace kern
}  // namespace lic
