// s16_f32_vcvt__avx2: same contract and results as s16-f32-vcvt/scalar.hpp.
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "lic/kernels/s16-f32-vcvt/scalar.hpp"

namespace lic {
namespace kern {

LIC_TARGET_AVX2_FMA inline void s16_f32_vcvt__avx2(const std::int16_t* x, float* y,
                                                   std::size_t n, int shift) {
  const __m256 scale = _mm256_set1_ps(std::ldexp(1.0f, -shift));
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(v)), scale));
  }
  s16_f32_vcvt__scalar(x + i, y + i, n - i, shift);
}

}  // namespace kern
}  // namespace lic

#endif
