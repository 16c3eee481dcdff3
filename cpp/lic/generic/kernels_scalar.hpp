// Scalar twins of every kernel: the reference the SIMD versions are tested against, and
// the fallback on CPUs without a SIMD version.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstring>

#include "lic/kernel_api.hpp"

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

inline void f32_leaky__scalar(const float* x, float* y, std::size_t n, float alpha) {
  for (std::size_t i = 0; i < n; ++i) y[i] = x[i] >= 0.0f ? x[i] : alpha * x[i];
}

inline void f32_add__scalar(const float* a, const float* b, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

inline void f32_square__scalar(const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = x[i] * x[i];
}

inline void f32_gdn_finish__scalar(const float* x, const float* norm, float* y, std::size_t n,
                                   int inverse) {
  if (inverse) {
    for (std::size_t i = 0; i < n; ++i) y[i] = x[i] * std::sqrt(norm[i]);
  } else {
    for (std::size_t i = 0; i < n; ++i) y[i] = x[i] / std::sqrt(norm[i]);
  }
}

inline KernelTable scalar_kernels() {
  KernelTable t{};
  t.isa = "scalar";
  t.igemm[0] = f32_igemm_x16__scalar<1>;
  t.igemm[1] = f32_igemm_x16__scalar<2>;
  t.igemm[2] = f32_igemm_x16__scalar<3>;
  t.igemm[3] = f32_igemm_x16__scalar<4>;
  t.igemm[4] = f32_igemm_x16__scalar<5>;
  t.igemm[5] = f32_igemm_x16__scalar<6>;
  t.leaky = f32_leaky__scalar;
  t.add = f32_add__scalar;
  t.square = f32_square__scalar;
  t.gdn_finish = f32_gdn_finish__scalar;
  return t;
}

}  // namespace kern
}  // namespace lic
