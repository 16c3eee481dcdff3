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

// Four vectors at a time, the terms' coefficients and row pointers held in registers or on
// the stack: with the term loop around single vectors the combinations of the Winograd
// transforms ran at ~2 G results/s from L2 (the chains of FMAs did not overlap enough).
LIC_TARGET_AVX2_FMA inline void f32_vlincomb__avx2_fma(const LincombArgs& p) {
  constexpr int kMaxTerms = 48;
  if (p.terms > kMaxTerms) return f32_vlincomb__scalar(p);
  const __m256 alpha = _mm256_set1_ps(p.alpha);
  __m256 coef[kMaxTerms];
  for (int j = 0; j < p.terms; ++j) coef[j] = _mm256_set1_ps(p.coef[j]);
  const float* x[kMaxTerms];
  const bool leaky = p.act == kActLeaky;
  for (int r = 0; r < p.rows; ++r) {
    const std::ptrdiff_t xo = std::ptrdiff_t(r) * p.x_stride;
    for (int j = 0; j < p.terms; ++j) x[j] = p.x[j] + xo;
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
      for (int j = 0; j < p.terms; ++j) {
        const float* xj = x[j] + i;
        a0 = _mm256_fmadd_ps(coef[j], _mm256_loadu_ps(xj), a0);
        a1 = _mm256_fmadd_ps(coef[j], _mm256_loadu_ps(xj + 8), a1);
        a2 = _mm256_fmadd_ps(coef[j], _mm256_loadu_ps(xj + 16), a2);
        a3 = _mm256_fmadd_ps(coef[j], _mm256_loadu_ps(xj + 24), a3);
      }
      if (leaky) {
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
      for (int j = 0; j < p.terms; ++j)
        acc = _mm256_fmadd_ps(coef[j], _mm256_loadu_ps(x[j] + i), acc);
      if (leaky) acc = x86::leaky8(acc, alpha);
      _mm256_storeu_ps(y + i, acc);
    }
    for (; i < p.n; ++i) y[i] = f32_vlincomb_one(p, xo, i);
  }
}

}  // namespace kern
}  // namespace lic

#endif
