// f32_vlincomb__avx2_fma: rows of linear combinations, 8 lanes at a time; same contract
// and results as f32-vlincomb/scalar.hpp (the same chain of FMAs per result).
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstddef>

#include "lic/kernels/contracts.hpp"
#include "lic/kernels/f32-vlincomb/scalar.hpp"

namespace lic {
namespace kern {

LIC_TARGET_AVX2_FMA inline void f32_vlincomb__avx2_fma(const LincombArgs& p) {
  const __m256 alpha = _mm256_set1_ps(p.alpha);
  for (int r = 0; r < p.rows; ++r) {
    const std::ptrdiff_t xo = std::ptrdiff_t(r) * p.x_stride;
    float* y = p.y + std::ptrdiff_t(r) * p.y_stride;
    std::size_t i = 0;
    for (; i + 8 <= p.n; i += 8) {
      __m256 acc = p.init ? _mm256_loadu_ps(p.init + i) : _mm256_setzero_ps();
      for (int j = 0; j < p.terms; ++j)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(p.coef[j]),
                              _mm256_loadu_ps(p.x[j] + xo + std::ptrdiff_t(i)), acc);
      if (p.act == kActLeaky) acc = x86::leaky8(acc, alpha);
      _mm256_storeu_ps(y + i, acc);
    }
    for (; i < p.n; ++i) y[i] = f32_vlincomb_one(p, xo, i);
  }
}

}  // namespace kern
}  // namespace lic

#endif
