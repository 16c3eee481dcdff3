// f32_vleaky__avx2: y[i] = x[i] >= 0 ? x[i] : alpha * x[i] (y may equal x): same contract
// and results as f32-vleaky/scalar.hpp.
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstddef>

namespace lic {
namespace kern {

LIC_TARGET_AVX2_FMA inline void f32_vleaky__avx2(const float* x, float* y, std::size_t n,
                                                float alpha) {
  const __m256 va = _mm256_set1_ps(alpha);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, x86::leaky8(_mm256_loadu_ps(x + i), va));
  for (; i < n; ++i) y[i] = x[i] >= 0.0f ? x[i] : alpha * x[i];
}

}  // namespace kern
}  // namespace lic

#endif
