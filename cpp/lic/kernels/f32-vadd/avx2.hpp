// f32_vadd__avx2: y[i] = a[i] + b[i]: same contract and results as f32-vadd/scalar.hpp.
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstddef>

namespace lic {
namespace kern {

LIC_TARGET_AVX2_FMA inline void f32_vadd__avx2(const float* a, const float* b, float* y,
                                              std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) y[i] = a[i] + b[i];
}

}  // namespace kern
}  // namespace lic

#endif
