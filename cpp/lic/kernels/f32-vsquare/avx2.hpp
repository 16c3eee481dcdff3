// f32_vsquare__avx2: y[i] = x[i] * x[i]: same contract and results as
// f32-vsquare/scalar.hpp.
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstddef>

namespace lic {
namespace kern {

LIC_TARGET_AVX2_FMA inline void f32_vsquare__avx2(const float* x, float* y, std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(v, v));
  }
  for (; i < n; ++i) y[i] = x[i] * x[i];
}

}  // namespace kern
}  // namespace lic

#endif
