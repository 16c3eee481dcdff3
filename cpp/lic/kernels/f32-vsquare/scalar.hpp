// f32_vsquare__scalar: y[i] = x[i] * x[i]; the reference of the SIMD versions and the
// fallback.
#pragma once

#include <cstddef>

namespace lic {
namespace kern {

inline void f32_vsquare__scalar(const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = x[i] * x[i];
}

}  // namespace kern
}  // namespace lic
