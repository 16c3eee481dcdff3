// The encoder half: image -> bitstream. Pads the image to a multiple of the network's
// downsampling factor by repeating the last row/column (edge replication: no artificial
// edge to code), x = rgb / 255, y = g_a(x), then the latent coder makes the payload (in
// bands of latent rows, bitstream 2.0, when the coder has them) and the container wraps
// it. With RDOQ (codec/rdoq/rdoq.hpp; needs the decoder's g_s) the latent values are
// chosen for D + λR instead of rounded, then coded the same way. No file I/O: the
// programs (codec/programs/) read and write.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "base/profile.hpp"
#include "codec/core/bitstream.hpp"
#include "codec/core/image.hpp"
#include "codec/core/latent.hpp"
#include "codec/entropy/latent_coder.hpp"
#include "codec/rdoq/rdoq.hpp"
#include "lic/gradient.hpp"
#include "lic/runtime.hpp"

namespace lic::codec {

struct EncodeResult {
  std::vector<uint8_t> bitstream;
  lic::Tensor y_hat;  // the de-quantised latent, HWC (for --dump-latent; empty unless asked)
  CodeLength ideal;
  size_t payload_size = 0;  // sub-stream table included
  size_t bands = 0;
  uint32_t latent_h = 0, latent_w = 0, channels = 0;
};

// How the latent is coded: latent rows per band (bitstream 2.0; at least the latent height
// gives one band, a 1.x stream), whether y_hat is wanted back, and how its values are
// chosen: rounded, or by RDOQ when rdoq.lambda > 0 (rdoq_report, when set: what it did).
struct CodingOptions {
  int band_rows = static_cast<int>(kDefaultBandRows);
  bool keep_latent = true;
  RdoqOptions rdoq;
  RdoqReport* rdoq_report = nullptr;
};

inline void check_band_rows(long long band_rows) {
  if (band_rows < 1 || band_rows > static_cast<long long>(kMaxBandRows))
    throw Error("band height must be 1 to " + std::to_string(kMaxBandRows) + " latent rows");
}

class Encoder {
 public:
  // `multiple` is g_a's downsampling factor; `ga_fingerprint` and `gs_fingerprint` name
  // the model's float g_a and g_s (both are part of the fingerprint a bitstream carries).
  // An int16 g_a (docs/int16.md) keeps its float model's fingerprints: its latent space is
  // the same, so its bitstreams decode with the float decoder and the other way round.
  // g_a may still be being packed on another thread (codec/capi/halves.hpp): analysis()
  // waits for it, so the caller can read its image meanwhile.
  Encoder(lic::PendingModel g_a, std::unique_ptr<const LatentCoder> coder, uint32_t multiple,
          uint64_t ga_fingerprint, uint64_t gs_fingerprint)
      : g_a_(std::move(g_a)), coder_(std::move(coder)), multiple_(multiple) {
    if (multiple_ < 1 || multiple_ > kMaxMultiple) throw Error("invalid network multiple");
    fingerprint_ = model_fingerprint(ga_fingerprint, gs_fingerprint, coder_->fingerprint());
    gs_fingerprint_ = gs_fingerprint;
  }

  // What RDOQ needs besides g_a: the model's float synthesis transform (its gradient, and
  // its output as the decoded image), and the network the decoder runs instead when that
  // is not the float g_s (an int16 g_s, docs/int16.md: RDOQ then measures the distortion
  // of that decoder's exact output).
  struct Synthesis {
    std::shared_ptr<const lic::Gradient> g_s;
    std::shared_ptr<const lic::Model> decoder_net;  // null: the decoder runs g_s itself
  };
  // `load` makes them on the first RDOQ encode (loading g_s and building its backward
  // operators cost time and memory that plain encoding does not need).
  void set_synthesis(std::function<Synthesis()> load) {
    lazy_ = std::make_shared<Lazy>();
    lazy_->load = std::move(load);
  }
  bool has_synthesis() const { return lazy_ != nullptr; }

  uint64_t fingerprint() const { return fingerprint_; }
  uint32_t multiple() const { return multiple_; }
  const lic::Model& analysis() const { return g_a_.get(); }
  const LatentCoder& coder() const { return *coder_; }

  // The whole image in one piece (images within the 1.0 limits; codec/tiled.hpp runs g_a
  // in tiles for any size).
  EncodeResult encode(const Image& img, int threads, const CodingOptions& opt = {}) const {
    return encode_rows(img.rgb.data(), img.width, img.height, size_t(img.width) * 3, threads, opt);
  }

  // Why RDOQ cannot run with this encoder ("" when it can).
  std::string rdoq_refusal() const {
    if (!coder_->rate())
      return "RDOQ needs the context-table model: coding mode " + std::to_string(coder_->mode()) +
             " (hyperprior) has no RDOQ";
    if (!lazy_) return "RDOQ needs the synthesis transform (this encoder was built without it)";
    return "";
  }

  // As encode(), for width x height pixels with row y at rgb + y * stride. A chain g_a
  // (every CompressAI transform) reads the image row by row: no whole-image float tensor.
  // RDOQ (opt.rdoq.lambda > 0) compares decoded images with x, so it makes x whole.
  EncodeResult encode_rows(const uint8_t* rgb, uint32_t width, uint32_t height, size_t stride,
                           int threads, const CodingOptions& opt = {}) const {
    check_band_rows(opt.band_rows);
    check_image_size(width, height, kMaxSideWhole, kMaxPixelsWhole);
    const int m = static_cast<int>(multiple_);
    const int w = static_cast<int>(width), h = static_cast<int>(height);
    const int pw = round_up(w), ph = round_up(h);
    int oh = 0, ow = 0;
    analysis().output_size(ph, pw, oh, ow);
    if (oh != ph / m || ow != pw / m)
      throw Error("the analysis network does not downsample by " + std::to_string(multiple_));
    // x = rgb / 255, padded to a multiple of the downsampling factor by edge replication.
    auto pad_row = [&](int yy, float* out) {
      const uint8_t* row = rgb + static_cast<size_t>(std::min(yy, h - 1)) * stride;
      for (int xx = 0; xx < pw; ++xx)
        for (int c = 0; c < 3; ++c) out[xx * 3 + c] = row[std::min(xx, w - 1) * 3 + c] / 255.0f;
    };
    if (opt.rdoq.lambda > 0) {
      const std::string refusal = rdoq_refusal();  // before g_a runs
      if (!refusal.empty()) throw Error(refusal);
      lic::Tensor x(ph, pw, 3);
      for (int yy = 0; yy < ph; ++yy) pad_row(yy, x.data.data() + static_cast<size_t>(yy) * pw * 3);
      lic::Tensor y;
      {
        lic::ProfileScope profile("encoder: g_a");
        y = analysis().run(x, threads);
      }
      return encode_latent(width, height, std::move(y), threads, opt, &x);
    }
    const lic::RowSource source = [&](int r0, int r1, const lic::RowOut& dst) {
      for (int yy = r0; yy < r1; ++yy) pad_row(yy, dst.row(yy));
    };
    lic::Tensor y(oh, ow, analysis().out_channels());
    const lic::RowSink sink = [&](int r0, int r1, const lic::RowOut& rows) {
      const size_t row = static_cast<size_t>(ow) * y.channels;
      for (int yy = r0; yy < r1; ++yy)
        std::memcpy(y.data.data() + static_cast<size_t>(yy) * row, rows.row(yy), row * sizeof(float));
    };
    {
      lic::ProfileScope profile("encoder: g_a");
      analysis().run_rows(ph, pw, source, sink, threads);
    }
    return encode_latent(width, height, std::move(y), threads, opt);
  }

  // Codes y = g_a(x) of a width x height image into a bitstream. RDOQ (opt.rdoq.lambda > 0)
  // needs x, the padded input image g_a ran on.
  EncodeResult encode_latent(uint32_t width, uint32_t height, lic::Tensor y, int threads,
                             const CodingOptions& opt = {}, const lic::Tensor* x = nullptr) const {
    check_band_rows(opt.band_rows);
    check_image_size(width, height);
    const int m = static_cast<int>(multiple_);
    if (y.height != round_up(static_cast<int>(height)) / m ||
        y.width != round_up(static_cast<int>(width)) / m)
      throw Error("the analysis network does not downsample by " + std::to_string(multiple_));
    // One band of every row at most (then a 1.x stream); coders without bands code one.
    const int rows = coder_->codes_bands() ? std::min(opt.band_rows, y.height) : y.height;
    // The RDOQ search first: it needs y whole, and the coder may free y as it quantises. Its
    // rate is that of the bands the latent is coded in.
    Latent chosen;
    if (opt.rdoq.lambda > 0) {
      const std::string refusal = rdoq_refusal();
      if (!refusal.empty()) throw Error(refusal);
      if (x == nullptr) throw Error("RDOQ needs the input image");
      const Synthesis& s = synthesis();
      const Rdoq search(*s.g_s, *coder_, s.decoder_net.get());
      lic::ProfileScope rdoq("encoder: RDOQ");
      RdoqOptions ro = opt.rdoq;
      ro.band_rows = rows;
      chosen = search.run(*x, static_cast<int>(width), static_cast<int>(height), y, ro, threads,
                          opt.rdoq_report);
    }
    lic::ProfileScope coding("encoder: entropy coding");
    StreamHeader head;
    head.width = width;
    head.height = height;
    head.channels = static_cast<uint32_t>(y.channels);
    head.latent_h = static_cast<uint32_t>(y.height);
    head.latent_w = static_cast<uint32_t>(y.width);
    head.mode = coder_->mode();
    head.fingerprint = fingerprint_;
    head.band_rows = static_cast<uint32_t>(rows);
    EncodedBands lat = opt.rdoq.lambda > 0
                           ? coder_->encode_symbols(chosen, rows, threads, opt.keep_latent)
                           : coder_->encode_bands(std::move(y), rows, threads, opt.keep_latent);
    EncodeResult r;
    r.bands = lat.substreams.size();
    r.latent_h = head.latent_h;
    r.latent_w = head.latent_w;
    r.channels = head.channels;
    r.ideal = lat.ideal;
    r.y_hat = std::move(lat.y_hat);
    r.bitstream = write_bitstream(head, lat.substreams);
    r.payload_size = r.bitstream.size() - kStreamHeaderSize;
    return r;
  }

 private:
  int round_up(int v) const {
    const int m = static_cast<int>(multiple_);
    return (v + m - 1) / m * m;
  }

  lic::PendingModel g_a_;
  std::unique_ptr<const LatentCoder> coder_;
  uint32_t multiple_;
  uint64_t fingerprint_ = 0;
  uint64_t gs_fingerprint_ = 0;
  struct Lazy {
    std::once_flag once;
    std::function<Synthesis()> load;
    Synthesis made;
  };
  std::shared_ptr<Lazy> lazy_;  // a pointer: the encoder stays movable

  const Synthesis& synthesis() const {
    std::call_once(lazy_->once, [this] {  // a throw leaves it to be tried again
      Synthesis s = lazy_->load();
      if (!s.g_s || s.g_s->model().fingerprint() != gs_fingerprint_)
        throw Error("RDOQ: the synthesis transform is not the decoder's");
      lazy_->made = std::move(s);
    });
    return lazy_->made;
  }
};

}  // namespace lic::codec
