// s16_vadd__scalar: S16_ADD, y[i] = sat16(rs((a[i] << up_a) + (b[i] << up_b), shift)) with
// up_a, up_b <= 15 and shift <= 16, so the sum fits int32 (docs/int16.md); y may equal a.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lic/kernels/s16-arith.hpp"

namespace lic {
namespace kern {

inline void s16_vadd__scalar(const std::int16_t* a, const std::int16_t* b, std::int16_t* y,
                             std::size_t n, int up_a, int up_b, int shift) {
  for (std::size_t i = 0; i < n; ++i)
    y[i] = static_cast<std::int16_t>(sat16(round_shift(
        std::int64_t(a[i]) * (std::int64_t(1) << up_a) +
            std::int64_t(b[i]) * (std::int64_t(1) << up_b), shift)));
}

}  // namespace kern
}  // namespace lic
