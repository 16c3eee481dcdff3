// What every AVX-512 kernel shares: the target attribute (AVX-512 F, plus the BW/DQ/VL
// extensions every AVX-512 CPU since Skylake-SP has; dispatch.hpp checks all four).
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#define LIC_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))

namespace lic {
namespace kern {
namespace x86 {

// v >= 0 keeps v; negative or NaN takes alpha * v (as the scalar twin does).
LIC_TARGET_AVX512 inline __m512 leaky16(__m512 v, __m512 alpha) {
  const __mmask16 keep = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ);
  return _mm512_mask_blend_ps(keep, _mm512_mul_ps(v, alpha), v);
}

}  // namespace x86
}  // namespace kern
}  // namespace lic

#endif
