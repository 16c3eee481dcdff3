// s16_gdn_finish__avx2: same contract and results as s16-gdn-finish/scalar.hpp, four
// elements at a time in 64-bit lanes. The square root and the quotient are estimated in
// double precision and then corrected with exact integer comparisons, so the results are
// the exact ones whatever the estimate's rounding.
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lic/kernels/s16-gdn-finish/scalar.hpp"

namespace lic {
namespace kern {
namespace x86 {

// Arithmetic shift right of signed 64-bit lanes by n (1..63): AVX2 has only the logical
// one, so flip the sign bit (an order-preserving map to unsigned), shift, and unbias.
LIC_TARGET_AVX2_FMA inline __m256i sra64(__m256i a, int n) {
  const __m256i sign = _mm256_set1_epi64x(static_cast<long long>(0x8000000000000000ull));
  const __m256i u = _mm256_srl_epi64(_mm256_xor_si256(a, sign), _mm_cvtsi32_si128(n));
  return _mm256_sub_epi64(u, _mm256_set1_epi64x(1LL << (63 - n)));
}

// Clamp signed 64-bit lanes to the int16 range.
LIC_TARGET_AVX2_FMA inline __m256i sat16_64(__m256i v) {
  const __m256i hi = _mm256_set1_epi64x(32767), lo = _mm256_set1_epi64x(-32768);
  v = _mm256_blendv_epi8(v, hi, _mm256_cmpgt_epi64(v, hi));
  return _mm256_blendv_epi8(v, lo, _mm256_cmpgt_epi64(lo, v));
}

}  // namespace x86

LIC_TARGET_AVX2_FMA inline void s16_gdn_finish__avx2(const std::int16_t* x,
                                                     const std::int32_t* norm, std::int16_t* y,
                                                     std::size_t n, int root_shift, int inverse,
                                                     int m) {
  const __m256i one = _mm256_set1_epi64x(1);
  const __m128i ks = _mm_cvtsi32_si128(root_shift);
  const __m256d scale = _mm256_set1_pd(static_cast<double>(std::int64_t(1) << root_shift));
  const __m256d pow_m = _mm256_set1_pd(static_cast<double>(std::int64_t(1) << m));
  const __m256i round_m = _mm256_set1_epi64x(m > 0 ? std::int64_t(1) << (m - 1) : 0);
  const __m128i m1 = _mm_cvtsi32_si128(m + 1);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m128i nv = _mm_loadu_si128(reinterpret_cast<const __m128i*>(norm + i));
    std::int64_t x4;
    std::memcpy(&x4, x + i, 8);
    const __m256i xv = _mm256_cvtepi16_epi64(_mm_cvtsi64_si128(x4));
    // r = isqrt(v), v = norm << k < 2^62: the double v is exact (an int32 times 2^k), sqrt
    // is correctly rounded, so the estimate is off by at most one.
    const __m256i v = _mm256_sll_epi64(_mm256_cvtepi32_epi64(nv), ks);
    const __m256d vd = _mm256_mul_pd(_mm256_cvtepi32_pd(nv), scale);
    // (clamped below 2^31 first: the root of v close to 2^62 rounds up to 2^31)
    const __m256d root = _mm256_min_pd(_mm256_sqrt_pd(vd), _mm256_set1_pd(2147483647.0));
    __m256i r = _mm256_cvtepi32_epi64(_mm256_cvttpd_epi32(root));
    r = _mm256_sub_epi64(r, _mm256_and_si256(_mm256_cmpgt_epi64(_mm256_mul_epu32(r, r), v), one));
    const __m256i r1 = _mm256_add_epi64(r, one);
    r = _mm256_add_epi64(r, _mm256_andnot_si256(_mm256_cmpgt_epi64(_mm256_mul_epu32(r1, r1), v), one));
    __m256i out;
    if (inverse) {
      // x * r < 2^46 in magnitude; then rs(., m)
      const __m256i prod = _mm256_add_epi64(_mm256_mul_epi32(xv, r), round_m);
      out = m > 0 ? x86::sra64(prod, m) : prod;
    } else {
      // c = floor(x 2^m / r + 1/2) estimated in double (x 2^m and r exact), then corrected
      // against num = x 2^(m+1) + r: the answer c satisfies 2rc <= num < 2r(c+1).
      const __m256d q = _mm256_div_pd(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(
                                                        _mm256_permutevar8x32_epi32(
                                                            xv, _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0)))),
                                                    pow_m),
                                      _mm256_cvtepi32_pd(_mm256_castsi256_si128(
                                          _mm256_permutevar8x32_epi32(
                                              r, _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0)))));
      const __m256d lim = _mm256_set1_pd(40000.0);
      const __m256d qc = _mm256_max_pd(_mm256_min_pd(_mm256_floor_pd(_mm256_add_pd(q, _mm256_set1_pd(0.5))), lim),
                                       _mm256_sub_pd(_mm256_setzero_pd(), lim));
      __m256i c = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(qc));
      const __m256i num = _mm256_add_epi64(_mm256_sll_epi64(xv, m1), r);
      const __m256i two_r = _mm256_add_epi64(r, r);
      const __m256i lhs = _mm256_slli_epi64(_mm256_mul_epi32(c, r), 1);
      c = _mm256_sub_epi64(c, _mm256_and_si256(_mm256_cmpgt_epi64(lhs, num), one));
      const __m256i lhs2 = _mm256_slli_epi64(_mm256_mul_epi32(c, r), 1);
      c = _mm256_add_epi64(c, _mm256_andnot_si256(_mm256_cmpgt_epi64(_mm256_add_epi64(lhs2, two_r), num), one));
      out = c;
    }
    out = x86::sat16_64(out);
    // the low 16 bits of each 64-bit lane, packed
    const __m256i lo32 = _mm256_permutevar8x32_epi32(out, _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0));
    const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(lo32), _mm256_castsi256_si128(lo32));
    const std::int64_t packed = _mm_cvtsi128_si64(w16);
    std::memcpy(y + i, &packed, 8);
  }
  s16_gdn_finish__scalar(x + i, norm + i, y + i, n - i, root_shift, inverse, m);
}

}  // namespace kern
}  // namespace lic

#endif
