// f32_gdn_finish__avx2: GDN's last step, y[i] = inverse ? x[i] * sqrt(norm[i]) : x[i] /
// sqrt(norm[i]): same contract and results as f32-gdn-finish/scalar.hpp.
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstddef>

namespace lic {
namespace kern {

// sqrt and div are correctly rounded in AVX as in scalar code: results equal the twin's.
LIC_TARGET_AVX2_FMA inline void f32_gdn_finish__avx2(const float* x, const float* norm,
                                                    float* y, std::size_t n, int inverse) {
  std::size_t i = 0;
  if (inverse) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i),
                                            _mm256_sqrt_ps(_mm256_loadu_ps(norm + i))));
    for (; i < n; ++i) y[i] = x[i] * __builtin_sqrtf(norm[i]);
  } else {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, _mm256_div_ps(_mm256_loadu_ps(x + i),
                                            _mm256_sqrt_ps(_mm256_loadu_ps(norm + i))));
    for (; i < n; ++i) y[i] = x[i] / __builtin_sqrtf(norm[i]);
  }
}

}  // namespace kern
}  // namespace lic

#endif
