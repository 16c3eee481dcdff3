// The encoder half: image -> bitstream. Pads the image to a multiple of the network's
// downsampling factor by repeating the last row/column (edge replication: no artificial
// edge to code), x = rgb / 255, y = g_a(x), then the latent coder makes the payload and
// the container wraps it. With RDOQ (codec/rdoq/rdoq.hpp; needs the decoder's g_s) the
// latent values are chosen for D + λR instead of rounded. No file I/O: the programs
// (codec/programs/) read and write.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/error.hpp"
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
  lic::Tensor y_hat;  // the de-quantised latent, HWC (for --dump-latent)
  CodeLength ideal;
  size_t payload_size = 0;
};

class Encoder {
 public:
  // `multiple` is g_a's downsampling factor; `ga_fingerprint` and `gs_fingerprint` name
  // the model's float g_a and g_s (both are part of the fingerprint a bitstream carries).
  // An int16 g_a (docs/int16.md) keeps its float model's fingerprints: its latent space is
  // the same, so its bitstreams decode with the float decoder and the other way round.
  Encoder(lic::Model g_a, std::unique_ptr<const LatentCoder> coder, uint32_t multiple,
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
  const lic::Model& analysis() const { return g_a_; }

  // The whole image in one piece (images within the 1.0 limits; codec/tiled.hpp runs g_a
  // in tiles for any size). rdoq.lambda > 0 chooses the latent by RDOQ (report: what it
  // did), else plain rounding.
  EncodeResult encode(const Image& img, int threads, const RdoqOptions& rdoq = {},
                      RdoqReport* report = nullptr) const {
    check_image_size(img.width, img.height, kMaxSideWhole, kMaxPixelsWhole);
    const lic::Tensor x = to_tensor(img);
    return encode_latent(img.width, img.height, g_a_.run(x, threads), threads, &x, rdoq, report);
  }

  // Why RDOQ cannot run with this encoder ("" when it can).
  std::string rdoq_refusal() const {
    if (!coder_->rate())
      return "RDOQ needs the context-table model: coding mode " + std::to_string(coder_->mode()) +
             " (hyperprior) has no RDOQ";
    if (!lazy_) return "RDOQ needs the synthesis transform (this encoder was built without it)";
    return "";
  }

  // Codes y = g_a(x) of a width x height image into a bitstream. RDOQ (rdoq.lambda > 0)
  // needs x, the padded input image g_a ran on.
  EncodeResult encode_latent(uint32_t width, uint32_t height, const lic::Tensor& y, int threads,
                             const lic::Tensor* x = nullptr, const RdoqOptions& rdoq = {},
                             RdoqReport* report = nullptr) const {
    check_image_size(width, height);
    const int m = static_cast<int>(multiple_);
    if (y.height != round_up(static_cast<int>(height)) / m ||
        y.width != round_up(static_cast<int>(width)) / m)
      throw Error("the analysis network does not downsample by " + std::to_string(multiple_));
    EncodedLatent lat;
    if (rdoq.lambda > 0) {
      const std::string refusal = rdoq_refusal();
      if (!refusal.empty()) throw Error(refusal);
      if (x == nullptr) throw Error("RDOQ needs the input image");
      const Synthesis& s = synthesis();
      const Rdoq search(*s.g_s, *coder_, s.decoder_net.get());
      const Latent q = search.run(*x, static_cast<int>(width), static_cast<int>(height), y, rdoq,
                                  threads, report);
      lat = coder_->encode_symbols(q);
    } else {
      lat = coder_->encode(y, threads);
    }
    EncodeResult r;
    r.payload_size = lat.payload.size();
    r.ideal = lat.ideal;
    r.y_hat = std::move(lat.y_hat);
    StreamHeader head;
    head.width = width;
    head.height = height;
    head.channels = static_cast<uint32_t>(y.channels);
    head.latent_h = static_cast<uint32_t>(y.height);
    head.latent_w = static_cast<uint32_t>(y.width);
    head.mode = coder_->mode();
    head.fingerprint = fingerprint_;
    r.bitstream = write_bitstream(head, lat.payload);
    return r;
  }

 private:
  int round_up(int v) const {
    const int m = static_cast<int>(multiple_);
    return (v + m - 1) / m * m;
  }

  // x = rgb / 255, padded to a multiple of the downsampling factor by edge replication.
  lic::Tensor to_tensor(const Image& img) const {
    const int w = static_cast<int>(img.width), h = static_cast<int>(img.height);
    const int pw = round_up(w), ph = round_up(h);
    lic::Tensor x(ph, pw, 3);
    for (int yy = 0; yy < ph; ++yy) {
      const uint8_t* row = img.rgb.data() + static_cast<size_t>(std::min(yy, h - 1)) * w * 3;
      for (int xx = 0; xx < pw; ++xx)
        for (int c = 0; c < 3; ++c) x.at(yy, xx, c) = row[std::min(xx, w - 1) * 3 + c] / 255.0f;
    }
    return x;
  }

  lic::Model g_a_;
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
