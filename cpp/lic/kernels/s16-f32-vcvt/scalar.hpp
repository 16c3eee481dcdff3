// s16_f32_vcvt__scalar: DEQUANTIZE, y[i] = x[i] * 2^-shift (exact in float32).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace lic {
namespace kern {

inline void s16_f32_vcvt__scalar(const std::int16_t* x, float* y, std::size_t n, int shift) {
  const float scale = std::ldexp(1.0f, -shift);
  for (std::size_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i]) * scale;
}

}  // namespace kern
}  // namespace lic
