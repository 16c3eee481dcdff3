// f32_vadd__scalar: y[i] = a[i] + b[i]; the reference of the SIMD versions and the
// fallback.
#pragma once

#include <cstddef>

namespace lic {
namespace kern {

inline void f32_vadd__scalar(const float* a, const float* b, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

}  // namespace kern
}  // namespace lic
