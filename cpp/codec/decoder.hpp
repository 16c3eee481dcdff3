// The decoder half: bitstream bytes in, RGB out. Checks the container, the latent coder
// gives y_hat, x_hat = g_s(y_hat), cropped to the image size,
// pixel = floor(clamp(x_hat, 0, 1) * 255 + 0.5); with an int16 g_s (docs/int16.md) the
// same rule in exact integers on its last int16 tensor q at shift s:
// pixel = clamp(rs(q * 255, s), 0, 255). Holds no encoder network and does no file I/O
// (the programs in codec/programs/ read and write files). A chain g_s (every CompressAI
// transform) streams: its output is made band by band of rows and turned into pixels as it
// comes (lic/stream.hpp), with no whole-image float tensor.
#pragma once

#include <algorithm>
#include <cstring>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "base/profile.hpp"
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
  // g_s may still be being packed on another thread (codec/capi/halves.hpp): synthesis()
  // waits for it, so the entropy decoding before it overlaps the packing.
  Decoder(lic::PendingModel g_s, std::unique_ptr<const LatentCoder> coder, uint32_t multiple,
          uint64_t ga_fingerprint, uint64_t gs_fingerprint)
      : g_s_(std::move(g_s)), coder_(std::move(coder)), multiple_(multiple) {
    if (multiple_ < 1 || multiple_ > kMaxMultiple) throw Error("invalid network multiple");
    fingerprint_ = model_fingerprint(ga_fingerprint, gs_fingerprint, coder_->fingerprint());
  }

  uint64_t fingerprint() const { return fingerprint_; }
  uint32_t multiple() const { return multiple_; }
  const lic::Model& synthesis() const { return g_s_.get(); }

  // Whether g_s is still being packed on threads of its own: the threads that share the
  // entropy decoding with the caller join it only once it is not (beside the packers they
  // made three threads on two cores: the two-thread entropy decoding of kodim07 took
  // 7.5-14 ms against 5.6-6.0 on one).
  bool g_s_being_packed() const { return g_s_.being_packed(); }
  const LatentCoder& coder() const { return *coder_; }

  // Checks the container (docs/bitstream.md: every check before anything is allocated).
  ParsedStream parse(const uint8_t* data, size_t size) const {
    return parse_bitstream(data, size, multiple_, static_cast<uint32_t>(coder_->channels()),
                           fingerprint_, coder_->mode());
  }

  // The de-quantised latent y_hat of a parsed stream (its bands decoded in parallel; the
  // threads beside the caller join once g_s is packed).
  lic::Tensor latent(const ParsedStream& p, int threads) const {
    lic::ProfileScope entropy("decoder: entropy decoding");
    return coder_->decode_bands(p.substreams, static_cast<int>(p.header.band_rows),
                                static_cast<int>(p.header.latent_h),
                                static_cast<int>(p.header.latent_w), threads,
                                [this] { return !g_s_being_packed(); });
  }

  // The whole image in one piece (images within the 1.0 limits; codec/tiled.hpp decodes
  // any size in tiles).
  DecodeResult decode(const uint8_t* data, size_t size, int threads) const {
    const ParsedStream p = parse(data, size);
    const StreamHeader& h = p.header;
    check_image_size(h.width, h.height, kMaxSideWhole, kMaxPixelsWhole);
    DecodeResult r;
    r.payload_size = p.payload_size;
    r.y_hat = latent(p, threads);
    r.image.width = h.width;
    r.image.height = h.height;
    r.image.rgb.resize(static_cast<size_t>(h.width) * h.height * 3);
    lic::ProfileScope synthesis("decoder: g_s and pixels");
    synthesize(r.y_hat, 0, 0, h.width, h.height, threads,
               [&](uint32_t y) { return r.image.rgb.data() + static_cast<size_t>(y) * h.width * 3; });
    return r;
  }

  // Pixels [x0, x0 + width) x [y0, y0 + height) of g_s(y) (y: a window of the latent whose
  // output starts at pixel (0, 0) of that region's frame, i.e. the caller offsets), each row
  // y (0-based within the region) written at row_at(y). Float g_s: in streamed bands.
  template <class RowAt>
  void synthesize(const lic::Tensor& y, uint32_t x0, uint32_t y0, uint32_t width, uint32_t height,
                  int threads, RowAt row_at) const {
    const size_t n = static_cast<size_t>(width) * 3;
    if (synthesis().int16_output()) {
      const lic::QTensor q = synthesis().run_int16(y, threads);
      check_cover(q.channels, q.height, q.width, x0 + width, y0 + height);
      for (uint32_t yy = 0; yy < height; ++yy) {
        const int16_t* src = q.data.data() + (static_cast<size_t>(y0 + yy) * q.width + x0) * 3;
        uint8_t* dst = row_at(yy);
        for (size_t i = 0; i < n; ++i) dst[i] = int16_to_byte(src[i], q.shift);
      }
      return;
    }
    const size_t in_row = static_cast<size_t>(y.width) * y.channels;
    const lic::RowSource source = [&](int r0, int r1, const lic::RowOut& dst) {
      for (int r = r0; r < r1; ++r)
        std::memcpy(dst.row(r), y.data.data() + static_cast<size_t>(r) * in_row, in_row * sizeof(float));
    };
    synthesize_rows(y.height, y.width, source, x0, y0, width, height, threads, row_at);
  }

  // As synthesize() for a float g_s whose lh x lw input rows `source` makes on demand.
  template <class RowAt>
  void synthesize_rows(int lh, int lw, const lic::RowSource& source, uint32_t x0, uint32_t y0,
                       uint32_t width, uint32_t height, int threads, RowAt row_at) const {
    const size_t n = static_cast<size_t>(width) * 3;
    int oh = 0, ow = 0;
    synthesis().output_size(lh, lw, oh, ow);
    check_cover(synthesis().out_channels(), oh, ow, x0 + width, y0 + height);
    // Only the rows and columns inside the region are kept.
    const lic::RowSink sink = [&](int r0, int r1, const lic::RowOut& rows) {
      const int a = std::max(r0, static_cast<int>(y0));
      const int b = std::min(r1, static_cast<int>(y0 + height));
      for (int r = a; r < b; ++r) {
        const float* in = rows.row(r) + static_cast<size_t>(x0) * 3;
        uint8_t* out = row_at(static_cast<uint32_t>(r) - y0);
        for (size_t i = 0; i < n; ++i) out[i] = to_byte(in[i]);
      }
    };
    synthesis().run_rows(lh, lw, source, sink, threads);
  }

  // floor(v * 255 + 0.5) clamped to [0, 255] (NaN: 0). Inside (0, 1) the sum is positive,
  // so truncation is the floor: no call to floor() (a libm call without SSE4.1), and the
  // loop over a row vectorises.
  static uint8_t to_byte(float v) {
    const float c = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f;  // also NaN -> 0
    return static_cast<uint8_t>(static_cast<int>(c * 255.0f + 0.5f));
  }

  // docs/int16.md "Pixels": clamp(rs(q * 255, s), 0, 255), exactly.
  static uint8_t int16_to_byte(int16_t q, int shift) {
    const int64_t v = int64_t(q) * 255;
    const int64_t p = shift >= 0 ? lic::kern::round_shift(v, shift) : v * (int64_t(1) << -shift);
    return static_cast<uint8_t>(p < 0 ? 0 : p > 255 ? 255 : p);
  }

 private:
  static void check_cover(int channels, int height, int width, uint32_t need_w, uint32_t need_h) {
    if (channels != 3 || height < static_cast<int>(need_h) || width < static_cast<int>(need_w))
      throw Error("the synthesis network output does not cover the image");
  }

  lic::PendingModel g_s_;
  std::unique_ptr<const LatentCoder> coder_;
  uint32_t multiple_;
  uint64_t fingerprint_ = 0;
};

}  // namespace lic::codec
