// f32_igemm_x16__avx512f<MR>: the AVX-512 implicit-GEMM micro-kernel (same contract as
// f32-igemm/scalar.hpp, tiles of up to kMRAvx512 rows). One zmm accumulator per output
// pixel holds all 16 columns of the panel; each multiply-add takes its input value as an
// embedded broadcast from memory, so a reduction step is one weight load and MR FMAs.
// With 14 rows, 14 independent accumulators cover the FMA latency of both FMA units.
// Every output value is the same chain of FMAs in the same order as in the AVX2 kernel
// (16 lanes instead of 2 x 8), so the two give bit-identical results.
#pragma once

#include "lic/kernels/x86/avx512.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstddef>

#include "lic/kernels/contracts.hpp"

namespace lic {
namespace kern {

template <int MR>
LIC_TARGET_AVX512 inline void f32_igemm_x16__avx512f(const IgemmArgs& p) {
  // Columns past nc are neither read nor written (masked loads and stores).
  const __mmask16 cols = static_cast<__mmask16>((1u << p.nc) - 1u);
  __m512 acc[MR];
  if (!p.accumulate) {
    const __m512 bias = _mm512_loadu_ps(p.bias);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) acc[i] = bias;
  } else {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_maskz_loadu_ps(cols, p.c + i * p.c_stride);
  }
  const float* w = p.w;
  const std::ptrdiff_t as = p.a_stride;
  const int kc = p.kc;
  for (int t = 0; t < p.ntaps; ++t) {
    const float* a = p.a + p.taps[t];
#pragma GCC unroll 4
    for (int k = 0; k < kc; ++k, w += kNR) {
      const __m512 wv = _mm512_loadu_ps(w);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i * as + k]), wv, acc[i]);
    }
  }
  if (p.act == kActLeaky) {
    const __m512 alpha = _mm512_set1_ps(p.alpha);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) acc[i] = x86::leaky16(acc[i], alpha);
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(p.c + i * p.c_stride, cols, acc[i]);
}

// Two full panels at once (32 columns): per reduction step two weight loads, MR
// broadcasts and 2 * MR FMAs -- fewer loads per FMA than the 16-column tile (measured on
// one core with 25 taps of 128 channels: 160 GFLOP/s against 124). Same chain of FMAs for
// every output value as the 16-column kernels.
template <int MR>
LIC_TARGET_AVX512 inline void f32_igemm_x32__avx512f(const IgemmArgs& p) {
  __m512 acc0[MR], acc1[MR];
  if (!p.accumulate) {
    const __m512 bias0 = _mm512_loadu_ps(p.bias), bias1 = _mm512_loadu_ps(p.bias + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      acc0[i] = bias0;
      acc1[i] = bias1;
    }
  } else {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      acc0[i] = _mm512_loadu_ps(p.c + i * p.c_stride);
      acc1[i] = _mm512_loadu_ps(p.c + i * p.c_stride + 16);
    }
  }
  const float* w0 = p.w;
  const float* w1 = p.w + p.w_next;
  const std::ptrdiff_t as = p.a_stride;
  const int kc = p.kc;
  for (int t = 0; t < p.ntaps; ++t) {
    const float* a = p.a + p.taps[t];
#pragma GCC unroll 4
    for (int k = 0; k < kc; ++k, w0 += kNR, w1 += kNR) {
      const __m512 wv0 = _mm512_loadu_ps(w0), wv1 = _mm512_loadu_ps(w1);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const __m512 av = _mm512_set1_ps(a[i * as + k]);
        acc0[i] = _mm512_fmadd_ps(av, wv0, acc0[i]);
        acc1[i] = _mm512_fmadd_ps(av, wv1, acc1[i]);
      }
    }
  }
  if (p.act == kActLeaky) {
    const __m512 alpha = _mm512_set1_ps(p.alpha);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      acc0[i] = x86::leaky16(acc0[i], alpha);
      acc1[i] = x86::leaky16(acc1[i], alpha);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_ps(p.c + i * p.c_stride, acc0[i]);
    _mm512_storeu_ps(p.c + i * p.c_stride + 16, acc1[i]);
  }
}

}  // namespace kern
}  // namespace lic

#endif
