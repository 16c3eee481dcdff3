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

// Four vectors (32 results) at a time, as the AVX-512 kernel: four independent FMA chains
// hide the FMA latency that one chain per 8 results waited on (each result's chain is
// unchanged). One vector at a time, the Winograd transforms' 2-term rows ran at ~2 G
// results/s from L2, and paired rows (docs/runtime.md#row-pairs) lost their gain in them.
LIC_TARGET_AVX2_FMA inline void f32_vlincomb__avx2_fma(const LincombArgs& p) {
  const __m256 alpha = _mm256_set1_ps(p.alpha);
  const float* const* x = p.x;
  const int terms = p.terms;
  for (int r = 0; r < p.rows; ++r) {
    const std::ptrdiff_t xo = std::ptrdiff_t(r) * p.x_stride;
    float* y = p.y + std::ptrdiff_t(r) * p.y_stride;
    std::size_t i = 0;
    for (; i + 32 <= p.n; i += 32) {
      __m256 a0, a1, a2, a3;
      if (p.init) {
        a0 = _mm256_loadu_ps(p.init + i);
        a1 = _mm256_loadu_ps(p.init + i + 8);
        a2 = _mm256_loadu_ps(p.init + i + 16);
        a3 = _mm256_loadu_ps(p.init + i + 24);
      } else {
        a0 = a1 = a2 = a3 = _mm256_setzero_ps();
      }
      for (int j = 0; j < terms; ++j) {
        const __m256 c = _mm256_set1_ps(p.coef[j]);
        const float* s = x[j] + xo + std::ptrdiff_t(i);
        a0 = _mm256_fmadd_ps(c, _mm256_loadu_ps(s), a0);
        a1 = _mm256_fmadd_ps(c, _mm256_loadu_ps(s + 8), a1);
        a2 = _mm256_fmadd_ps(c, _mm256_loadu_ps(s + 16), a2);
        a3 = _mm256_fmadd_ps(c, _mm256_loadu_ps(s + 24), a3);
      }
      if (p.act == kActLeaky) {
        a0 = x86::leaky8(a0, alpha);
        a1 = x86::leaky8(a1, alpha);
        a2 = x86::leaky8(a2, alpha);
        a3 = x86::leaky8(a3, alpha);
      }
      _mm256_storeu_ps(y + i, a0);
      _mm256_storeu_ps(y + i + 8, a1);
      _mm256_storeu_ps(y + i + 16, a2);
      _mm256_storeu_ps(y + i + 24, a3);
    }
    for (; i + 8 <= p.n; i += 8) {
      __m256 acc = p.init ? _mm256_loadu_ps(p.init + i) : _mm256_setzero_ps();
      for (int j = 0; j < terms; ++j)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(p.coef[j]), _mm256_loadu_ps(x[j] + xo + std::ptrdiff_t(i)), acc);
      if (p.act == kActLeaky) acc = x86::leaky8(acc, alpha);
      _mm256_storeu_ps(y + i, acc);
    }
    for (; i < p.n; ++i) y[i] = f32_vlincomb_one(p, xo, i);
  }
}

}  // namespace kern
}  // namespace lic

#endif
