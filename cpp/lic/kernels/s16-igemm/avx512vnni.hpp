// s16_igemm_x16__avx512vnni<MR>: the AVX-512 VNNI int16 implicit-GEMM micro-kernel (contract
// in lic/kernels/contracts.hpp). One zmm holds the 16 columns' int32 sums of a row;
// vpdpwssd multiplies the broadcast input pair by the 16 columns' weight pairs and adds
// both products into the sums in one instruction (modulo 2^32 like vpmaddwd + vpaddd, so
// the bytes equal the scalar twin's and the AVX2 kernel's).
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstdint>
#include <cstring>

#include "lic/kernels/contracts.hpp"

#define LIC_TARGET_AVX512_VNNI \
  __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))

namespace lic {
namespace kern {

// GCC 12's avx512fintrin.h builds _mm512_broadcastd_epi32 from an "undefined" vector and
// then warns about it (-Wmaybe-uninitialized): a false positive in the header, silenced here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// (vpdpwssd multiplies its two sources pairwise: which one holds the weights is free, so
// the broadcast input goes last, where it can be a memory operand.)
// Two sets of MR accumulators (even and odd channel pairs), summed at the end: vpdpwssd's
// latency is several cycles, and one set alone leaves MR independent chains (integer sums:
// the split does not change the result).
template <int MR>
LIC_TARGET_AVX512_VNNI inline void s16_igemm_x16__avx512vnni(const S16IgemmArgs& p) {
  __m512i acc[MR], odd[MR];
  const __m512i bias = _mm512_loadu_si512(p.bias);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    acc[i] = bias;
    odd[i] = _mm512_setzero_si512();
  }
  const std::int16_t* w = p.w;
  const std::ptrdiff_t as = p.a_stride;
  const int full = p.kc / 2;
  for (int t = 0; t < p.ntaps; ++t) {
    const std::int16_t* a = p.a + p.taps[t];
    int q = 0;
    for (; q + 2 <= full; q += 2, w += 4 * kNR) {
      const __m512i w0 = _mm512_loadu_si512(w);
      const __m512i w1 = _mm512_loadu_si512(w + 2 * kNR);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        // broadcast straight from memory (vpbroadcastd m32 / {1to16}: a load, no shuffle)
        const std::int16_t* ai = a + i * as + 2 * q;
        acc[i] = _mm512_dpwssd_epi32(acc[i], w0, _mm512_broadcastd_epi32(_mm_loadu_si32(ai)));
        odd[i] = _mm512_dpwssd_epi32(odd[i], w1, _mm512_broadcastd_epi32(_mm_loadu_si32(ai + 2)));
      }
    }
    for (; q < full; ++q, w += 2 * kNR) {
      const __m512i wv = _mm512_loadu_si512(w);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i)
        acc[i] = _mm512_dpwssd_epi32(acc[i], wv,
                                     _mm512_broadcastd_epi32(_mm_loadu_si32(a + i * as + 2 * q)));
    }
    if (p.kc & 1) {  // the last channel alone, paired with a zero
      const __m512i wv = _mm512_loadu_si512(w);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i)
        acc[i] = _mm512_dpwssd_epi32(acc[i], _mm512_set1_epi32(std::uint16_t(a[i * as + 2 * full])), wv);
      w += 2 * kNR;
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_add_epi32(acc[i], odd[i]);
  const __mmask16 cols = static_cast<__mmask16>((1u << p.nc) - 1u);
  if (p.c32 != nullptr) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) _mm512_mask_storeu_epi32(p.c32 + i * p.c_stride, cols, acc[i]);
    return;
  }
  const __m512i sh = _mm512_set1_epi32(p.shift);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    // shift, saturate to int16 (vpmovsdw), then the activation on the 16 int16 lanes
    const __m256i v = _mm512_mask_cvtsepi32_epi16(_mm256_setzero_si256(), 0xFFFF,
                                                  _mm512_maskz_srav_epi32(0xFFFF, acc[i], sh));
    const __m256i y = p.act == kActLeaky ? x86::s16_leaky16(v, p.alpha_q, p.alpha_shift) : v;
    _mm256_mask_storeu_epi16(p.c16 + i * p.c_stride, cols, y);
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace kern
}  // namespace lic

#endif
