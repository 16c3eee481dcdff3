// What every AVX2 kernel shares: the target attribute and a few vector helpers. Kernels
// are compiled with a per-function target attribute, so one binary built for baseline
// x86-64 carries them and dispatch.hpp picks them only on CPUs that have AVX2 and FMA.
// LIC_HAVE_X86_KERNELS is defined where they can be compiled (x86-64, GCC or Clang).
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LIC_HAVE_X86_KERNELS 1

#include <immintrin.h>

#define LIC_TARGET_AVX2_FMA __attribute__((target("avx2,fma")))

namespace lic {
namespace kern {
namespace x86 {

// v >= 0 keeps v; negative or NaN takes alpha * v (as the scalar twin does).
LIC_TARGET_AVX2_FMA inline __m256 leaky8(__m256 v, __m256 alpha) {
  const __m256 neg = _mm256_mul_ps(v, alpha);
  const __m256 keep = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ);
  return _mm256_blendv_ps(neg, v, keep);
}

// int16 LeakyReLU of 16 lanes (docs/int16.md): v >= 0 keeps v; a negative v becomes
// sat16(rs(v * alpha_q, alpha_shift)). ReLU (alpha_q = 0) is a max with zero.
LIC_TARGET_AVX2_FMA inline __m256i s16_leaky16(__m256i v, int alpha_q, int alpha_shift) {
  if (alpha_q == 0) return _mm256_max_epi16(v, _mm256_setzero_si256());
  const __m256i a = _mm256_set1_epi32(alpha_q);
  const __m256i round = _mm256_set1_epi32(alpha_shift > 0 ? 1 << (alpha_shift - 1) : 0);
  const __m128i sh = _mm_cvtsi32_si128(alpha_shift);
  // |v * alpha_q| <= 2^30: the product, its rounding constant and the shift fit int32
  const __m256i lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(v));
  const __m256i hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(v, 1));
  const __m256i plo = _mm256_sra_epi32(_mm256_add_epi32(_mm256_mullo_epi32(lo, a), round), sh);
  const __m256i phi = _mm256_sra_epi32(_mm256_add_epi32(_mm256_mullo_epi32(hi, a), round), sh);
  const __m256i neg = _mm256_permute4x64_epi64(_mm256_packs_epi32(plo, phi), 0xD8);
  return _mm256_blendv_epi8(v, neg, _mm256_cmpgt_epi16(_mm256_setzero_si256(), v));
}

}  // namespace x86
}  // namespace kern
}  // namespace lic

#endif
