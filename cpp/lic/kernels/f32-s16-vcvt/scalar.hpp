// f32_s16_vcvt__scalar: QUANTIZE, y[i] = sat16(floor(x[i] * 2^shift + 1/2)), NaN -> 0
// (docs/int16.md), computed exactly in double. The reference and the fallback.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lic/kernels/s16-arith.hpp"

namespace lic {
namespace kern {

inline void f32_s16_vcvt__scalar(const float* x, std::int16_t* y, std::size_t n, int shift) {
  for (std::size_t i = 0; i < n; ++i) y[i] = quantize_value(x[i], shift);
}

}  // namespace kern
}  // namespace lic
