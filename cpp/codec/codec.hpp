// Image <-> bitstream: the transforms (lic runtime) around the latent coder.
//
// Encoder: pad the image to a multiple of the network's downsampling factor by repeating
// the last row/column (edge replication: no artificial edge to code), x = rgb / 255,
// y = g_a(x), q = round(y - offset), range-code q. Decoder: y_hat = q + offset,
// x_hat = g_s(y_hat), crop to the image size, pixel = floor(clamp(x_hat, 0, 1) * 255 + 0.5).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "codec/bitstream.hpp"
#include "codec/entropy_model.hpp"
#include "codec/image_io.hpp"
#include "codec/latent_coding.hpp"
#include "codec/range_coder.hpp"
#include "lic/runtime.hpp"

namespace lic::codec {

// What the generated source (lic2cpp.codegen) compiles into an encoder or a decoder.
struct Embedded {
  const uint8_t* network;  // g_a.licm for the encoder, g_s.licm for the decoder
  size_t network_size;
  const uint8_t* tables;  // entropy.lice
  size_t tables_size;
  uint32_t multiple;  // downsampling factor of g_a
  uint64_t ga_fingerprint, gs_fingerprint;
};

struct EncodeResult {
  std::vector<uint8_t> bitstream;
  Latent latent;
  CodeLength ideal;
  size_t payload_size = 0;
};

struct DecodeResult {
  Image image;
  Latent latent;
  size_t payload_size = 0;
};

class Codec {
 public:
  explicit Codec(const Embedded& e)
      : net_(lic::Model::from_bytes(e.network, e.network_size)),
        tables_(EntropyModel::from_bytes(e.tables, e.tables_size)),
        multiple_(e.multiple),
        fingerprint_(model_fingerprint(e.ga_fingerprint, e.gs_fingerprint, tables_.fingerprint)) {
    if (multiple_ < 1 || multiple_ > 1024) throw CodecError("invalid network multiple");
  }

  const EntropyModel& tables() const { return tables_; }
  uint64_t fingerprint() const { return fingerprint_; }

  EncodeResult encode(const Image& img, int threads) const {
    check_image_size(img.width, img.height);
    const int w = static_cast<int>(img.width), h = static_cast<int>(img.height);
    const int pw = round_up(w), ph = round_up(h);
    lic::Tensor x(ph, pw, 3);
    for (int yy = 0; yy < ph; ++yy) {
      const uint8_t* row = img.rgb.data() + static_cast<size_t>(std::min(yy, h - 1)) * w * 3;
      for (int xx = 0; xx < pw; ++xx)
        for (int c = 0; c < 3; ++c) x.at(yy, xx, c) = row[std::min(xx, w - 1) * 3 + c] / 255.0f;
    }
    const lic::Tensor y = net_.run(x, threads);
    if (y.height != ph / static_cast<int>(multiple_) || y.width != pw / static_cast<int>(multiple_))
      throw CodecError("the analysis network does not downsample by " + std::to_string(multiple_));
    EncodeResult r;
    r.latent = quantize(y.data.data(), y.channels, y.height, y.width, 1, static_cast<size_t>(y.channels), tables_);
    RangeEncoder enc;
    r.ideal = encode_latent(r.latent, tables_, enc);
    const std::vector<uint8_t> payload = enc.finish();
    r.payload_size = payload.size();
    StreamHeader head;
    head.width = img.width;
    head.height = img.height;
    head.channels = static_cast<uint32_t>(y.channels);
    head.latent_h = static_cast<uint32_t>(y.height);
    head.latent_w = static_cast<uint32_t>(y.width);
    head.fingerprint = fingerprint_;
    r.bitstream = write_bitstream(head, payload);
    return r;
  }

  DecodeResult decode(const std::vector<uint8_t>& data, int threads) const {
    const ParsedStream p = parse_bitstream(data.data(), data.size(), multiple_,
                                           static_cast<uint32_t>(tables_.num_channels()), fingerprint_);
    const StreamHeader& h = p.header;
    RangeDecoder dec(p.payload, p.payload_size);
    DecodeResult r;
    r.payload_size = p.payload_size;
    r.latent = decode_latent(dec, tables_, static_cast<int>(h.latent_h), static_cast<int>(h.latent_w));
    if (dec.bytes_read() < p.payload_size) throw CodecError("corrupt bitstream (unused payload bytes)");
    lic::Tensor y(r.latent.height, r.latent.width, r.latent.channels);
    y.data = dequantize_hwc(r.latent, tables_);
    const lic::Tensor x = net_.run(y, threads);
    if (x.channels != 3 || x.height < static_cast<int>(h.height) || x.width < static_cast<int>(h.width))
      throw CodecError("the synthesis network output does not cover the image");
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
  int round_up(int v) const {
    const int m = static_cast<int>(multiple_);
    return (v + m - 1) / m * m;
  }

  lic::Model net_;
  EntropyModel tables_;
  uint32_t multiple_;
  uint64_t fingerprint_;
};

}  // namespace lic::codec
