// s16_igemm_x16__avx2<MR>: the AVX2 int16 implicit-GEMM micro-kernel (contract in
// lic/kernels/contracts.hpp). vpmaddwd multiplies the broadcast input pair (two channels of
// one pixel) by 8 columns' weight pairs and adds each pair into an int32; vpaddd
// accumulates. Integer sums are exact, so the bytes equal the scalar twin's.
#pragma once

#include "lic/kernels/x86/avx2.hpp"

#ifdef LIC_HAVE_X86_KERNELS

#include <cstdint>
#include <cstring>

#include "lic/kernels/contracts.hpp"

namespace lic {
namespace kern {

// 6x16 tile: 12 accumulators (8 int32 each) + 2 weight vectors + 1 broadcast.
template <int MR>
LIC_TARGET_AVX2_FMA inline void s16_igemm_x16__avx2(const S16IgemmArgs& p) {
  __m256i acc0[MR], acc1[MR];
  const __m256i bias0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.bias));
  const __m256i bias1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.bias + 8));
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    acc0[i] = bias0;
    acc1[i] = bias1;
  }
  const std::int16_t* w = p.w;
  const std::ptrdiff_t as = p.a_stride;
  const int full = p.kc / 2;
  for (int t = 0; t < p.ntaps; ++t) {
    const std::int16_t* a = p.a + p.taps[t];
    for (int q = 0; q < full; ++q, w += 2 * kNR) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + kNR));
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        // vpbroadcastd from memory: a load, no shuffle port
        const __m256i av = _mm256_broadcastd_epi32(_mm_loadu_si32(a + i * as + 2 * q));
        acc0[i] = _mm256_add_epi32(acc0[i], _mm256_madd_epi16(av, w0));
        acc1[i] = _mm256_add_epi32(acc1[i], _mm256_madd_epi16(av, w1));
      }
    }
    if (p.kc & 1) {  // the last channel alone, paired with a zero
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + kNR));
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m256i av = _mm256_set1_epi32(std::uint16_t(a[i * as + 2 * full]));
        acc0[i] = _mm256_add_epi32(acc0[i], _mm256_madd_epi16(av, w0));
        acc1[i] = _mm256_add_epi32(acc1[i], _mm256_madd_epi16(av, w1));
      }
      w += 2 * kNR;
    }
  }
  if (p.c32 != nullptr) {
    alignas(32) std::int32_t tmp[kNR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      std::int32_t* c = p.c32 + i * p.c_stride;
      if (p.nc == kNR) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), acc0[i]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 8), acc1[i]);
      } else {  // never write past nc
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), acc0[i]);
        _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8), acc1[i]);
        std::memcpy(c, tmp, sizeof(std::int32_t) * static_cast<std::size_t>(p.nc));
      }
    }
    return;
  }
  const __m128i sh = _mm_cvtsi32_si128(p.shift);
  alignas(32) std::int16_t tmp[kNR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    // shift, saturate to int16 (vpackssdw interleaves 128-bit lanes: vpermq restores order)
    const __m256i v = _mm256_permute4x64_epi64(
        _mm256_packs_epi32(_mm256_sra_epi32(acc0[i], sh), _mm256_sra_epi32(acc1[i], sh)), 0xD8);
    const __m256i y = p.act == kActLeaky ? x86::s16_leaky16(v, p.alpha_q, p.alpha_shift) : v;
    std::int16_t* c = p.c16 + i * p.c_stride;
    if (p.nc == kNR) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), y);
    } else {
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), y);
      std::memcpy(c, tmp, sizeof(std::int16_t) * static_cast<std::size_t>(p.nc));
    }
  }
}

}  // namespace kern
}  // namespace lic

#endif
