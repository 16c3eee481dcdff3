// f32_vleaky_grad__scalar: y[i] = pos[i] ? g[i] : alpha * g[i] (y may equal g), the
// gradient through a leaky ReLU whose input was positive where pos[i] != 0; the reference
// of the SIMD versions and the fallback.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lic {
namespace kern {

inline void f32_vleaky_grad__scalar(const std::uint8_t* pos, const float* g, float* y,
                                    std::size_t n, float alpha) {
  for (std::size_t i = 0; i < n; ++i) y[i] = pos[i] ? g[i] : alpha * g[i];
}

}  // namespace kern
}  // namespace lic
