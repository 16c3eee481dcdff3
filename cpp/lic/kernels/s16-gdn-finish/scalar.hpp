// s16_gdn_finish__scalar: GDN's last step in fixed point (docs/int16.md): with
// r = isqrt(norm[i] << root_shift), inverse GDN gives y = sat16(rs(x * r, m)) and GDN gives
// y = sat16(floor((x * 2^(m+1) + r) / (2 r))). norm >= 1 and norm << root_shift < 2^62 (the
// model file guarantees both). y may equal x.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lic/kernels/s16-arith.hpp"

namespace lic {
namespace kern {

inline void s16_gdn_finish__scalar(const std::int16_t* x, const std::int32_t* norm,
                                   std::int16_t* y, std::size_t n, int root_shift, int inverse,
                                   int m) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t r = isqrt64(std::int64_t(norm[i]) << root_shift);
    const std::int64_t v = inverse ? round_shift(std::int64_t(x[i]) * r, m)
                                   : div_round_half_up(std::int64_t(x[i]) * (std::int64_t(1) << m), r);
    y[i] = static_cast<std::int16_t>(sat16(v));
  }
}

}  // namespace kern
}  // namespace lic
