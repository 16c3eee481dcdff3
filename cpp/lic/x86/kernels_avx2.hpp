// AVX2+FMA versions of the kernels in lic/generic/kernels_scalar.hpp (same contracts).
// Compiled with a per-function target attribute, so one binary built for baseline x86-64
// carries them and lic/dispatch.hpp picks them only on CPUs that have AVX2 and FMA.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LIC_HAVE_X86_KERNELS 1

#include <immintrin.h>

#include <cstddef>
#include <cstring>

#include "lic/kernel_api.hpp"

#define LIC_AVX2 __attribute__((target("avx2,fma")))

namespace lic {
namespace kern {
namespace x86 {

LIC_AVX2 inline __m256 leaky8(__m256 v, __m256 alpha) {
  const __m256 neg = _mm256_mul_ps(v, alpha);
  // v >= 0 keeps v; negative or NaN takes alpha * v (as the scalar twin does).
  const __m256 keep = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ);
  return _mm256_blendv_ps(neg, v, keep);
}

// 6x16 register tile: 12 accumulators + 2 weight vectors + 1 broadcast = 15 of 16 ymm.
template <int MR>
LIC_AVX2 inline void f32_igemm_x16__avx2_fma(const IgemmArgs& p) {
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
      acc0[i] = leaky8(acc0[i], alpha);
      acc1[i] = leaky8(acc1[i], alpha);
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

LIC_AVX2 inline void f32_leaky__avx2(const float* x, float* y, std::size_t n, float alpha) {
  const __m256 va = _mm256_set1_ps(alpha);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, leaky8(_mm256_loadu_ps(x + i), va));
  for (; i < n; ++i) y[i] = x[i] >= 0.0f ? x[i] : alpha * x[i];
}

LIC_AVX2 inline void f32_add__avx2(const float* a, const float* b, float* y, std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
  for (; i < n; ++i) y[i] = a[i] + b[i];
}

LIC_AVX2 inline void f32_square__avx2(const float* x, float* y, std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(v, v));
  }
  for (; i < n; ++i) y[i] = x[i] * x[i];
}

// sqrt and div are correctly rounded in AVX as in scalar code: results equal the twin's.
LIC_AVX2 inline void f32_gdn_finish__avx2(const float* x, const float* norm, float* y,
                                          std::size_t n, int inverse) {
  std::size_t i = 0;
  if (inverse) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i),
                                            _mm256_sqrt_ps(_mm256_loadu_ps(norm + i))));
    for (; i < n; ++i) y[i] = x[i] * __builtin_sqrtf(norm[i]);
  } else {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, _mm256_div_ps(_mm256_loadu_ps(x + i),
                                            _mm256_sqrt_ps(_mm256_loadu_ps(norm + i))));
    for (; i < n; ++i) y[i] = x[i] / __builtin_sqrtf(norm[i]);
  }
}

// Fills `t` with the AVX2+FMA kernels; the caller has checked the CPU supports them.
inline void fill_avx2_fma(KernelTable& t) {
  t.isa = "avx2+fma";
  t.igemm[0] = f32_igemm_x16__avx2_fma<1>;
  t.igemm[1] = f32_igemm_x16__avx2_fma<2>;
  t.igemm[2] = f32_igemm_x16__avx2_fma<3>;
  t.igemm[3] = f32_igemm_x16__avx2_fma<4>;
  t.igemm[4] = f32_igemm_x16__avx2_fma<5>;
  t.igemm[5] = f32_igemm_x16__avx2_fma<6>;
  t.leaky = f32_leaky__avx2;
  t.add = f32_add__avx2;
  t.square = f32_square__avx2;
  t.gdn_finish = f32_gdn_finish__avx2;
}

inline bool cpu_has_avx2_fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

}  // namespace x86
}  // namespace kern
}  // namespace lic

#endif
