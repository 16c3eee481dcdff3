// What every AVX2 kernel shares: the target attribute and a few vector helpers. Kernels
// are compiled with a per-function target attribute, so one binary built for baseline
// x86-64 carries them and dispatch.hpp picks them only on CPUs that have AVX2 and FMA.
// LIC_HAVE_X86_KERNELS is defined where they can be compiled (x86-64, GCC or Clang).
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LIC_HAVE_X86_KERNELS 1

#include <immintrin.h>

#define LIC_TARGET_AVX2_FMA __attribute__((target("avx2,fma")))

namespace lic {
namespace kern {
namespace x86 {

// v >= 0 keeps v; negative or NaN takes alpha * v (as the scalar twin does).
LIC_TARGET_AVX2_FMA inline __m256 leaky8(__m256 v, __m256 alpha) {
  const __m256 neg = _mm256_mul_ps(v, alpha);
  const __m256 keep = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ);
  return _mm256_blendv_ps(neg, v, keep);
}

}  // namespace x86
}  // namespace kern
}  // namespace lic

#endif
