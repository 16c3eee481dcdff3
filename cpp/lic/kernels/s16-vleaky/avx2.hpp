// s16_vleaky__avx2: same contract and results as s16-vleaky/scalar.hpp.
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstddef>
#include <cstdint>

#include "lic/kernels/s16-vleaky/scalar.hpp"

namespace lic {
namespace kern {

LIC_TARGET_AVX2_FMA inline void s16_vleaky__avx2(const std::int16_t* x, std::int16_t* y,
                                                 std::size_t n, int alpha_q, int alpha_shift) {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i),
                        x86::s16_leaky16(v, alpha_q, alpha_shift));
  }
  s16_vleaky__scalar(x + i, y + i, n - i, alpha_q, alpha_shift);
}

}  // namespace kern
}  // namespace lic

#endif
