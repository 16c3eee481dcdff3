// f32_vleaky_grad__avx2: y[i] = pos[i] ? g[i] : alpha * g[i] (y may equal g): same contract
// and results as f32-vleaky-grad/scalar.hpp.
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lic {
namespace kern {

LIC_TARGET_AVX2_FMA inline void f32_vleaky_grad__avx2(const std::uint8_t* pos, const float* g,
                                                     float* y, std::size_t n, float alpha) {
  const __m256 va = _mm256_set1_ps(alpha);
  const __m256i zero = _mm256_setzero_si256();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    long long bytes;  // 8 mask bytes, widened to 8 lanes
    std::memcpy(&bytes, pos + i, sizeof bytes);
    const __m256i m = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes));
    const __m256 off = _mm256_castsi256_ps(_mm256_cmpeq_epi32(m, zero));
    const __m256 v = _mm256_loadu_ps(g + i);
    _mm256_storeu_ps(y + i, _mm256_blendv_ps(v, _mm256_mul_ps(v, va), off));
  }
  for (; i < n; ++i) y[i] = pos[i] ? g[i] : alpha * g[i];
}

}  // namespace kern
}  // namespace lic

#endif
