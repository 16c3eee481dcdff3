// s16_vadd__avx2: same contract and results as s16-vadd/scalar.hpp (int32 lanes: the
// aligned sum and its rounding constant stay below 2^31 in magnitude).
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstddef>
#include <cstdint>

#include "lic/kernels/s16-vadd/scalar.hpp"

namespace lic {
namespace kern {

LIC_TARGET_AVX2_FMA inline void s16_vadd__avx2(const std::int16_t* a, const std::int16_t* b,
                                               std::int16_t* y, std::size_t n, int up_a,
                                               int up_b, int shift) {
  const __m128i ua = _mm_cvtsi32_si128(up_a), ub = _mm_cvtsi32_si128(up_b);
  const __m128i sh = _mm_cvtsi32_si128(shift);
  const __m256i round = _mm256_set1_epi32(shift > 0 ? 1 << (shift - 1) : 0);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i va = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i));
    const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i));
    __m256i half[2];
    for (int h = 0; h < 2; ++h) {
      const __m256i a32 = _mm256_cvtepi16_epi32(h ? _mm256_extracti128_si256(va, 1)
                                                  : _mm256_castsi256_si128(va));
      const __m256i b32 = _mm256_cvtepi16_epi32(h ? _mm256_extracti128_si256(vb, 1)
                                                  : _mm256_castsi256_si128(vb));
      const __m256i s = _mm256_add_epi32(_mm256_sll_epi32(a32, ua), _mm256_sll_epi32(b32, ub));
      half[h] = _mm256_sra_epi32(_mm256_add_epi32(s, round), sh);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i),
                        _mm256_permute4x64_epi64(_mm256_packs_epi32(half[0], half[1]), 0xD8));
  }
  s16_vadd__scalar(a + i, b + i, y + i, n - i, up_a, up_b, shift);
}

}  // namespace kern
}  // namespace lic

#endif
