// The decoder half: bitstream bytes in, RGB out. Checks the container, the latent coder
// gives y_hat, x_hat = g_s(y_hat), cropped to the image size,
// pixel = floor(clamp(x_hat, 0, 1) * 255 + 0.5); with an int16 g_s (docs/int16.md) the
// same rule in exact integers on its last int16 tensor q at shift s:
// pixel = clamp(rs(q * 255, s), 0, 255). Holds no encoder network and does no file I/O
// (the programs in codec/programs/ read and write files).
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
#include "lic/kernels/s16-arith.hpp"
#include "lic/runtime.hpp"

namespace lic::codec {

struct DecodeResult {
  Image image;
  lic::Tensor y_hat;  // the de-quantised latent, HWC (for --dump-latent)
  size_t payload_size = 0;
};

class Decoder {
 public:
  // `multiple` is the matching g_a's downsampling factor; `ga_fingerprint` and
  // `gs_fingerprint` name the model's float g_a and g_s (both networks are part of the
  // fingerprint a bitstream carries; an int16 g_s keeps its float model's, see Encoder).
  Decoder(lic::Model g_s, std::unique_ptr<const LatentCoder> coder, uint32_t multiple,
          uint64_t ga_fingerprint, uint64_t gs_fingerprint)
      : g_s_(std::move(g_s)), coder_(std::move(coder)), multiple_(multiple) {
    if (multiple_ < 1 || multiple_ > kMaxMultiple) throw Error("invalid network multiple");
    fingerprint_ = model_fingerprint(ga_fingerprint, gs_fingerprint, coder_->fingerprint());
  }

  uint64_t fingerprint() const { return fingerprint_; }
  uint32_t multiple() const { return multiple_; }
  const lic::Model& synthesis() const { return g_s_; }
  const LatentCoder& coder() const { return *coder_; }

  // Checks the container (docs/bitstream.md: every check before anything is allocated).
  ParsedStream parse(const uint8_t* data, size_t size) const {
    return parse_bitstream(data, size, multiple_, static_cast<uint32_t>(coder_->channels()),
                           fingerprint_, coder_->mode());
  }

  // The whole image in one piece (images within the 1.0 limits; codec/tiled.hpp decodes
  // any size in tiles).
  DecodeResult decode(const uint8_t* data, size_t size, int threads) const {
    const ParsedStream p = parse(data, size);
    const StreamHeader& h = p.header;
    check_image_size(h.width, h.height, kMaxSideWhole, kMaxPixelsWhole);
    DecodeResult r;
    r.payload_size = p.payload_size;
    r.y_hat = coder_->decode(p.payload, p.payload_size, static_cast<int>(h.latent_h),
                             static_cast<int>(h.latent_w), threads);
    r.image.width = h.width;
    r.image.height = h.height;
    r.image.rgb.resize(static_cast<size_t>(h.width) * h.height * 3);
    if (g_s_.int16_output()) {
      const lic::QTensor q = g_s_.run_int16(r.y_hat, threads);
      check_cover(q.channels, q.height, q.width, h);
      for (uint32_t yy = 0; yy < h.height; ++yy)
        for (uint32_t xx = 0; xx < h.width; ++xx)
          for (int c = 0; c < 3; ++c)
            r.image.rgb[(static_cast<size_t>(yy) * h.width + xx) * 3 + c] =
                int16_to_byte(q.at(static_cast<int>(yy), static_cast<int>(xx), c), q.shift);
      return r;
    }
    const lic::Tensor x = g_s_.run(r.y_hat, threads);
    check_cover(x.channels, x.height, x.width, h);
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

  // docs/int16.md "Pixels": clamp(rs(q * 255, s), 0, 255), exactly.
  static uint8_t int16_to_byte(int16_t q, int shift) {
    const int64_t v = int64_t(q) * 255;
    const int64_t p = shift >= 0 ? lic::kern::round_shift(v, shift) : v * (int64_t(1) << -shift);
    return static_cast<uint8_t>(p < 0 ? 0 : p > 255 ? 255 : p);
  }

 private:
  static void check_cover(int channels, int height, int width, const StreamHeader& h) {
    if (channels != 3 || height < static_cast<int>(h.height) || width < static_cast<int>(h.width))
      throw Error("the synthesis network output does not cover the image");
  }

  lic::Model g_s_;
  std::unique_ptr<const LatentCoder> coder_;
  uint32_t multiple_;
  uint64_t fingerprint_ = 0;
};

}  // namespace lic::codec
