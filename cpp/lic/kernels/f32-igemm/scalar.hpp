// f32_igemm_x16__scalar<MR>: the scalar twin of the implicit-GEMM micro-kernel (contract in
// lic/kernels/contracts.hpp): the reference of the SIMD versions and the fallback.
#pragma once

#include "lic/kernels/contracts.hpp"

namespace lic {
namespace kern {

template <int MR>
inline void f32_igemm_x16__scalar(const IgemmArgs& p) {
  float acc[MR][kNR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kNR; ++j)
      acc[i][j] = !p.accumulate ? p.bias[j] : j < p.nc ? p.c[i * p.c_stride + j] : 0.0f;
  const float* w = p.w;
  for (int t = 0; t < p.ntaps; ++t) {
    const float* a = p.a + p.taps[t];
    for (int k = 0; k < p.kc; ++k, w += kNR) {
      for (int i = 0; i < MR; ++i) {
        const float av = a[i * p.a_stride + k];
        for (int j = 0; j < kNR; ++j) acc[i][j] += av * w[j];
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* c = p.c + i * p.c_stride;
    for (int j = 0; j < p.nc; ++j) {
      const float v = acc[i][j];
      c[j] = (p.act == kActLeaky && !(v >= 0.0f)) ? p.alpha * v : v;
    }
  }
}

}  // namespace kern
}  // namespace lic
