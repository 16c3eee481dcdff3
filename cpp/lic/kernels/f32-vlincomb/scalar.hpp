// f32_vlincomb__scalar: rows of linear combinations (contract in lic/kernels/contracts.hpp,
// LincombArgs); the reference of the SIMD versions and the fallback. Each result is one
// chain of fused multiply-adds (std::fma), as in the SIMD versions, so all levels agree
// bit for bit.
#pragma once

#include <cmath>
#include <cstddef>

#include "lic/kernels/contracts.hpp"

namespace lic {
namespace kern {

// Result i of the row whose inputs start xo floats into each term (the SIMD versions'
// tails use it too).
inline float f32_vlincomb_one(const LincombArgs& p, std::ptrdiff_t xo, std::size_t i) {
  float acc = p.init ? p.init[i] : 0.0f;
  for (int j = 0; j < p.terms; ++j) acc = std::fma(p.coef[j], p.x[j][xo + std::ptrdiff_t(i)], acc);
  if (p.act == kActLeaky && !(acc >= 0.0f)) acc *= p.alpha;
  return acc;
}

inline void f32_vlincomb__scalar(const LincombArgs& p) {
  for (int r = 0; r < p.rows; ++r) {
    const std::ptrdiff_t xo = std::ptrdiff_t(r) * p.x_stride;
    float* y = p.y + std::ptrdiff_t(r) * p.y_stride;
    for (std::size_t i = 0; i < p.n; ++i) y[i] = f32_vlincomb_one(p, xo, i);
  }
}

}  // namespace kern
}  // namespace lic
