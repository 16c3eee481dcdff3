// f32_s16_vcvt__avx2: same contract and results as f32-s16-vcvt/scalar.hpp. In float32,
// v = x * 2^shift is exact (or overflows to an infinity, or loses only bits of a value far
// below 1/2), but v + 1/2 may round; so the rounding is done as floor(v) plus one when the
// exact fraction v - floor(v) is at least 1/2.
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "lic/kernels/f32-s16-vcvt/scalar.hpp"

namespace lic {
namespace kern {

LIC_TARGET_AVX2_FMA inline void f32_s16_vcvt__avx2(const float* x, std::int16_t* y,
                                                   std::size_t n, int shift) {
  // 2^shift as a float (|shift| <= 32: a normal float)
  const __m256 scale = _mm256_set1_ps(std::ldexp(1.0f, shift));
  const __m256 half = _mm256_set1_ps(0.5f), onef = _mm256_set1_ps(1.0f);
  const __m256 lo = _mm256_set1_ps(-32768.0f), hi = _mm256_set1_ps(32767.0f);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i half32[2];
    for (int h = 0; h < 2; ++h) {
      const __m256 xv = _mm256_loadu_ps(x + i + 8 * h);
      const __m256 v = _mm256_mul_ps(xv, scale);
      const __m256 f = _mm256_floor_ps(v);
      // frac >= 1/2 (false for NaN; infinities give inf - inf = NaN: also false)
      const __m256 up = _mm256_and_ps(_mm256_cmp_ps(_mm256_sub_ps(v, f), half, _CMP_GE_OQ), onef);
      __m256 r = _mm256_add_ps(f, up);
      r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);  // NaN lanes become lo here...
      r = _mm256_andnot_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), r);  // ...and 0 here
      half32[h] = _mm256_cvtps_epi32(r);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i),
                        _mm256_permute4x64_epi64(_mm256_packs_epi32(half32[0], half32[1]), 0xD8));
  }
  f32_s16_vcvt__scalar(x + i, y + i, n - i, shift);
}

}  // namespace kern
}  // namespace lic

#endif
