// The quantised latent: integer symbols in channel planes, what a latent coder codes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lic::codec {

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
