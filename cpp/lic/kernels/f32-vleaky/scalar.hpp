// f32_vleaky__scalar: y[i] = x[i] >= 0 ? x[i] : alpha * x[i] (y may equal x); the
// reference of the SIMD versions and the fallback.
#pragma once

#include <cstddef>

namespace lic {
namespace kern {

inline void f32_vleaky__scalar(const float* x, float* y, std::size_t n, float alpha) {
  for (std::size_t i = 0; i < n; ++i) y[i] = x[i] >= 0.0f ? x[i] : alpha * x[i];
}

}  // namespace kern
}  // namespace lic
