// s16_igemm_x16__scalar<MR>: the scalar twin of the int16 implicit-GEMM micro-kernel
// (contract in lic/kernels/contracts.hpp, arithmetic in docs/int16.md): the reference of
// the SIMD versions and the fallback. Sums are exact int32 (a model file's worst-case rule
// guarantees that no partial sum overflows), so every version gives the same bytes.
#pragma once

#include <cstdint>

#include "lic/kernels/contracts.hpp"
#include "lic/kernels/s16-arith.hpp"

namespace lic {
namespace kern {

// The int16 store of an accumulator: sat16(acc >> shift) (the rounding constant is in the
// bias), then the activation.
inline std::int16_t s16_requantize(std::int32_t acc, int shift, int act, int alpha_q,
                                   int alpha_shift) {
  std::int32_t v = sat16(floor_shift(acc, shift));
  if (act == kActLeaky && v < 0) v = s16_leaky_negative(v, alpha_q, alpha_shift);
  return static_cast<std::int16_t>(v);
}

template <int MR>
inline void s16_igemm_x16__scalar(const S16IgemmArgs& p) {
  std::int32_t acc[MR][kNR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kNR; ++j) acc[i][j] = p.bias[j];
  const int pairs = (p.kc + 1) / 2;
  const std::int16_t* w = p.w;
  for (int t = 0; t < p.ntaps; ++t) {
    const std::int16_t* a = p.a + p.taps[t];
    for (int q = 0; q < pairs; ++q, w += 2 * kNR) {
      const int k = 2 * q;
      for (int i = 0; i < MR; ++i) {
        const std::int32_t a0 = a[i * p.a_stride + k];
        const std::int32_t a1 = k + 1 < p.kc ? a[i * p.a_stride + k + 1] : 0;
        // vpmaddwd's pair sum, then the accumulation, both modulo 2^32
        for (int j = 0; j < kNR; ++j)
          acc[i][j] = wrap_add(acc[i][j], wrap_add(a0 * w[2 * j], a1 * w[2 * j + 1]));
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    if (p.c32 != nullptr) {
      for (int j = 0; j < p.nc; ++j) p.c32[i * p.c_stride + j] = acc[i][j];
    } else {
      for (int j = 0; j < p.nc; ++j)
        p.c16[i * p.c_stride + j] =
            s16_requantize(acc[i][j], p.shift, p.act, p.alpha_q, p.alpha_shift);
    }
  }
}

}  // namespace kern
}  // namespace lic
