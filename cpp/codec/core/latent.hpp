// The quantised latent: integer symbols in channel planes, what a latent coder codes.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace lic::codec {

// nearbyint(d) as an int32 (rounding to nearest, ties to even: the default mode, and numpy's
// rint that the Python side quantises with) for |d| < 2^31; INT32_MIN for anything else
// and NaN, as x86's cvtss2si gives (callers check the range first or after). On x86-64 one
// instruction (cvtss2si rounds as MXCSR says); nearbyint itself is a libm call there
// without SSE4.1, and one call per latent value was most of the encoder's quantisation
// (docs/performance.md).
inline int32_t round_to_int32(float d) {
#if defined(__SSE2__)
  return _mm_cvtss_si32(_mm_set_ss(d));
#else
  return std::fabs(d) < 2147483648.0f ? static_cast<int32_t>(std::nearbyint(d)) : INT32_MIN;
#endif
}

// q[(c * h + y) * w + x].
struct Latent {
  int channels = 0, height = 0, width = 0;
  std::vector<int32_t> q;
  int32_t at(int c, int y, int x) const {
    return q[(static_cast<size_t>(c) * height + y) * width + x];
  }
};

// Ideal code lengths of a coded latent (what `encoder --stats` reports).
struct CodeLength {
  double bits_ctx = 0;    // ideal bits under the coder's own model (flags, escapes included)
  double bits_plain = 0;  // ideal bits under a context-free reference model
};

}  // namespace lic::codec
