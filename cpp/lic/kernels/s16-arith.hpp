// The scalar int16 fixed-point arithmetic of docs/int16.md, shared by the s16 kernels'
// scalar twins (and by the few scalar steps of the int16 operators). Every function is
// defined for all inputs (no signed overflow), so the twins are safe to call on anything.
#pragma once

#include <cmath>
#include <cstdint>

namespace lic {
namespace kern {

// Arithmetic shift right (floor division by 2^n), portable for negative values.
inline std::int64_t floor_shift(std::int64_t a, int n) { return a >= 0 ? a >> n : ~(~a >> n); }

// rs(a, n) of docs/int16.md: (a + 2^(n-1)) >> n, round half up (0 <= n <= 62, |a| < 2^62).
inline std::int64_t round_shift(std::int64_t a, int n) {
  return n == 0 ? a : floor_shift(a + (std::int64_t(1) << (n - 1)), n);
}

inline std::int32_t sat16(std::int64_t v) {
  return static_cast<std::int32_t>(v < -32768 ? -32768 : v > 32767 ? 32767 : v);
}

// int32 addition modulo 2^32 (what the SIMD kernels do): defined even if it wraps, which a
// valid model never lets happen.
inline std::int32_t wrap_add(std::int32_t a, std::int32_t b) {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(a) + static_cast<std::uint32_t>(b));
}

// LeakyReLU's negative side: sat16(rs(v * alpha_q, alpha_shift)) (|v * alpha_q| <= 2^30).
inline std::int32_t s16_leaky_negative(std::int32_t v, int alpha_q, int alpha_shift) {
  return sat16(round_shift(std::int64_t(v) * alpha_q, alpha_shift));
}

// QUANTIZE: sat16(floor(x * 2^shift + 1/2)), NaN -> 0; exact in double.
inline std::int16_t quantize_value(float x, int shift) {
  if (std::isnan(x)) return 0;
  const double v = std::floor(std::ldexp(double(x), shift) + 0.5);
  return static_cast<std::int16_t>(v < -32768.0 ? -32768 : v > 32767.0 ? 32767 : int(v));
}

// floor(sqrt(v)) exactly, for 0 <= v < 2^62: a double estimate, corrected.
inline std::int64_t isqrt64(std::int64_t v) {
  std::int64_t r = static_cast<std::int64_t>(std::sqrt(static_cast<double>(v)));
  while (r > 0 && r * r > v) --r;
  while ((r + 1) * (r + 1) <= v) ++r;
  return r;
}

// floor((2 num + den) / (2 den)) for den > 0: num / den rounded half up (|num| < 2^62).
inline std::int64_t div_round_half_up(std::int64_t num, std::int64_t den) {
  const std::int64_t n = 2 * num + den, d = 2 * den;
  const std::int64_t q = n / d;  // truncates toward zero
  return (n % d != 0 && n < 0) ? q - 1 : q;
}

}  // namespace kern
}  // namespace lic
