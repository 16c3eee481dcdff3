// The decoder half: bitstream bytes in, RGB out. Checks the container, the latent coder
// gives y_hat, x_hat = g_s(y_hat), cropped to the image size,
// pixel = floor(clamp(x_hat, 0, 1) * 255 + 0.5). Holds no encoder network and does no
// file I/O (the programs in codec/programs/ read and write files).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "codec/core/bitstream.hpp"
#include "codec/core/image.hpp"
#include "codec/entropy/latent_coder.hpp"
#include "lic/runtime.hpp"

namespace lic::codec {

struct DecodeResult {
  Image image;
  lic::Tensor y_hat;  // the de-quantised latent, HWC (for --dump-latent)
  size_t payload_size = 0;
};

class Decoder {
 public:
  // `multiple` is the matching g_a's downsampling factor, `ga_fingerprint` its fingerprint
  // (both networks are part of the fingerprint a bitstream carries).
  Decoder(lic::Model g_s, std::unique_ptr<const LatentCoder> coder, uint32_t multiple,
          uint64_t ga_fingerprint)
      : g_s_(std::move(g_s)), coder_(std::move(coder)), multiple_(multiple) {
    if (multiple_ < 1 || multiple_ > kMaxMultiple) throw Error("invalid network multiple");
    fingerprint_ = model_fingerprint(ga_fingerprint, g_s_.fingerprint(), coder_->fingerprint());
  }

  uint64_t fingerprint() const { return fingerprint_; }

  DecodeResult decode(const uint8_t* data, size_t size, int threads) const {
    const ParsedStream p =
        parse_bitstream(data, size, multiple_, static_cast<uint32_t>(coder_->channels()),
                        fingerprint_, coder_->mode());
    const StreamHeader& h = p.header;
    DecodeResult r;
    r.payload_size = p.payload_size;
    r.y_hat = coder_->decode(p.payload, p.payload_size, static_cast<int>(h.latent_h),
                             static_cast<int>(h.latent_w), threads);
    const lic::Tensor x = g_s_.run(r.y_hat, threads);
    if (x.channels != 3 || x.height < static_cast<int>(h.height) ||
        x.width < static_cast<int>(h.width))
      throw Error("the synthesis network output does not cover the image");
    r.image.width = h.width;
    r.image.height = h.height;
    r.image.rgb.resize(static_cast<size_t>(h.width) * h.height * 3);
    for (uint32_t yy = 0; yy < h.height; ++yy)
      for (uint32_t xx = 0; xx < h.width; ++xx)
        for (int c = 0; c < 3; ++c)
          r.image.rgb[(static_cast<size_t>(yy) * h.width + xx) * 3 + c] =
              to_byte(x.at(static_cast<int>(yy), static_cast<int>(xx), c));
    return r;
  }

  static uint8_t to_byte(float v) {
    if (!(v > 0.0f)) return 0;  // also NaN
    if (v >= 1.0f) return 255;
    return static_cast<uint8_t>(std::floor(v * 255.0f + 0.5f));
  }

 private:
  lic::Model g_s_;
  std::unique_ptr<const LatentCoder> coder_;
  uint32_t multiple_;
  uint64_t fingerprint_ = 0;
};

}  // namespace lic::codec
