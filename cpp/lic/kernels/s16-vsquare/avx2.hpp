// s16_vsquare__avx2: same contract and results as s16-vsquare/scalar.hpp. x² <= 2^30 and
// the rounding constant <= 2^30, so the sum is exact in unsigned 32-bit lanes.
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstddef>
#include <cstdint>

#include "lic/kernels/s16-vsquare/scalar.hpp"

namespace lic {
namespace kern {

LIC_TARGET_AVX2_FMA inline void s16_vsquare__avx2(const std::int16_t* x, std::int16_t* y,
                                                  std::size_t n, int shift) {
  const __m128i sh = _mm_cvtsi32_si128(shift);
  const __m256i round = _mm256_set1_epi32(shift > 0 ? int(1u << (shift - 1)) : 0);
  const __m256i top = _mm256_set1_epi32(32767);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    __m256i half[2];
    for (int h = 0; h < 2; ++h) {
      const __m256i x32 = _mm256_cvtepi16_epi32(h ? _mm256_extracti128_si256(v, 1)
                                                  : _mm256_castsi256_si128(v));
      const __m256i sq = _mm256_add_epi32(_mm256_mullo_epi32(x32, x32), round);
      half[h] = _mm256_min_epu32(_mm256_srl_epi32(sq, sh), top);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i),
                        _mm256_permute4x64_epi64(_mm256_packs_epi32(half[0], half[1]), 0xD8));
  }
  s16_vsquare__scalar(x + i, y + i, n - i, shift);
}

}  // namespace kern
}  // namespace lic

#endif
