// f32_igemm_x16__avx2_fma<MR>: the AVX2+FMA implicit-GEMM micro-kernel (same contract as
// f32-igemm/scalar.hpp; results differ from it only by FMA's single rounding).
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstddef>
#include <cstring>

#include "lic/kernels/contracts.hpp"

namespace lic {
namespace kern {

// 6x16 register tile: 12 accumulators + 2 weight vectors + 1 broadcast = 15 of 16 ymm.
template <int MR>
LIC_TARGET_AVX2_FMA inline void f32_igemm_x16__avx2_fma(const IgemmArgs& p) {
  __m256 acc0[MR], acc1[MR];
  if (!p.accumulate) {
    const __m256 bias0 = _mm256_loadu_ps(p.bias);
    const __m256 bias1 = _mm256_loadu_ps(p.bias + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      acc0[i] = bias0;
      acc1[i] = bias1;
    }
  } else if (p.nc == kNR) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      acc0[i] = _mm256_loadu_ps(p.c + i * p.c_stride);
      acc1[i] = _mm256_loadu_ps(p.c + i * p.c_stride + 8);
    }
  } else {
    // Tail columns: never read past nc (the memory there may belong to someone else).
    alignas(32) float tmp[kNR] = {};
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      std::memcpy(tmp, p.c + i * p.c_stride, sizeof(float) * static_cast<std::size_t>(p.nc));
      acc0[i] = _mm256_load_ps(tmp);
      acc1[i] = _mm256_load_ps(tmp + 8);
    }
  }
  const float* w = p.w;
  const std::ptrdiff_t as = p.a_stride;
  const int kc = p.kc;
  for (int t = 0; t < p.ntaps; ++t) {
    const float* a = p.a + p.taps[t];
    for (int k = 0; k < kc; ++k, w += kNR) {
      const __m256 w0 = _mm256_loadu_ps(w);
      const __m256 w1 = _mm256_loadu_ps(w + 8);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m256 av = _mm256_broadcast_ss(a + i * as + k);
        acc0[i] = _mm256_fmadd_ps(av, w0, acc0[i]);
        acc1[i] = _mm256_fmadd_ps(av, w1, acc1[i]);
      }
    }
  }
  if (p.act == kActLeaky) {
    const __m256 alpha = _mm256_set1_ps(p.alpha);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      acc0[i] = x86::leaky8(acc0[i], alpha);
      acc1[i] = x86::leaky8(acc1[i], alpha);
    }
  }
  if (p.nc == kNR) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      _mm256_storeu_ps(p.c + i * p.c_stride, acc0[i]);
      _mm256_storeu_ps(p.c + i * p.c_stride + 8, acc1[i]);
    }
  } else {
    // Tail columns: spill the tile and copy only the valid part (never write past nc).
    alignas(32) float tmp[kNR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      _mm256_store_ps(tmp, acc0[i]);
      _mm256_store_ps(tmp + 8, acc1[i]);
      std::memcpy(p.c + i * p.c_stride, tmp, sizeof(float) * static_cast<std::size_t>(p.nc));
    }
  }
}

}  // namespace kern
}  // namespace lic

#endif
