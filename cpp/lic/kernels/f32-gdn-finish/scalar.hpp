// f32_gdn_finish__scalar: GDN's last step, y[i] = inverse ? x[i] * sqrt(norm[i]) : x[i] /
// sqrt(norm[i]); the reference of the SIMD versions and the fallback.
#pragma once

#include <cmath>
#include <cstddef>

namespace lic {
namespace kern {

inline void f32_gdn_finish__scalar(const float* x, const float* norm, float* y, std::size_t n,
                                   int inverse) {
  if (inverse) {
    for (std::size_t i = 0; i < n; ++i) y[i] = x[i] * std::sqrt(norm[i]);
  } else {
    for (std::size_t i = 0; i < n; ++i) y[i] = x[i] / std::sqrt(norm[i]);
  }
}

}  // namespace kern
}  // namespace lic
