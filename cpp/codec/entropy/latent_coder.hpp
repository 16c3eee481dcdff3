// The seam between the transforms and the entropy coding: a LatentCoder turns the analysis
// transform's output into a payload and a payload back into the synthesis transform's
// input. Today's implementation is the context-table model (entropy/context_coder.hpp); a
// hyperprior model implements the same interface (it runs its own h_a/h_s inside encode
// and decode, hence `threads`), and the encoder and decoder halves do not change.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "base/error.hpp"
#include "codec/core/bitstream.hpp"
#include "codec/core/latent.hpp"
#include "lic/tensor.hpp"

namespace lic::codec {

// The exact code length of a latent under a coder's model, for RDOQ (codec/rdoq/).
class LatentRate {
 public:
  virtual ~LatentRate() = default;
  // Ideal code length (bits) of the payload that codes q in bands of `band_rows` latent rows
  // (bitstream 2.0; 0 or at least the height: one band).
  virtual double bits(const Latent& q, int band_rows) const = 0;
  // delta[i] = bits(q with q.q[i] + step) - bits(q), for every latent i changed alone.
  virtual void step_deltas(const Latent& q, int step, int band_rows,
                           std::vector<double>& delta) const = 0;
};

struct EncodedLatent {
  std::vector<uint8_t> payload;
  CodeLength ideal;    // ideal code lengths of the payload (encoder --stats)
  lic::Tensor y_hat;   // the de-quantised latent the decoder will see, HWC
};

// The latent coded in bands (bitstream 2.0): one sub-stream per band of rows.
struct EncodedBands {
  std::vector<std::vector<uint8_t>> substreams;
  CodeLength ideal;
  lic::Tensor y_hat;  // only when asked for
};

class LatentCoder {
 public:
  static constexpr const char* kNoRdoq = "RDOQ is not supported by this latent coder";
  virtual ~LatentCoder() = default;

  // The bitstream's coding-mode byte for payloads of this coder (codec/core/bitstream.hpp).
  virtual uint8_t mode() const = 0;
  // Fingerprint of the coder's tables (and networks), part of the codec fingerprint.
  virtual uint64_t fingerprint() const = 0;
  // Latent channels the coder expects.
  virtual int channels() const = 0;

  // Quantises and codes y, the analysis transform's output (HWC).
  virtual EncodedLatent encode(const lic::Tensor& y, int threads) const = 0;
  // What RDOQ needs: the plain quantisation of y, the de-quantised latent the decoder sees
  // for given symbols, coding given symbols (in bands of `band_rows` latent rows, as
  // encode_bands() codes a quantised y), and the exact rate model. A coder without an
  // exact rate model returns nullptr from rate() and RDOQ is refused.
  // (A hyperprior coder has none of these: its rate depends on the side information.)
  virtual const LatentRate* rate() const { return nullptr; }
  virtual Latent quantize(const lic::Tensor& /*y*/) const { throw Error(kNoRdoq); }
  virtual lic::Tensor dequantize(const Latent& /*q*/) const { throw Error(kNoRdoq); }
  virtual EncodedBands encode_symbols(const Latent& /*q*/, int /*band_rows*/, int /*threads*/,
                                      bool /*want_y_hat*/) const {
    throw Error(kNoRdoq);
  }

  // Decodes a payload into the de-quantised latent (HWC, height x width x channels());
  // a corrupt payload is lic::Error.
  virtual lic::Tensor decode(const uint8_t* payload, size_t size, int height, int width,
                             int threads) const = 0;

  // Whether the coder codes the latent in bands of rows (bitstream 2.0; the context-table
  // coder). Others code it as one payload whatever band height is asked for.
  virtual bool codes_bands() const { return false; }
  // Codes y in bands of `band_rows` latent rows (y is taken by value: a coder may free it
  // once quantised); y_hat is returned only when `want_y_hat`.
  virtual EncodedBands encode_bands(lic::Tensor y, int /*band_rows*/, int threads,
                                    bool want_y_hat) const {
    EncodedLatent e = encode(y, threads);
    EncodedBands r;
    r.substreams.push_back(std::move(e.payload));
    r.ideal = e.ideal;
    if (want_y_hat) r.y_hat = std::move(e.y_hat);
    return r;
  }
  // Decodes the sub-streams of a payload (ParsedStream::substreams) into y_hat. The caller
  // works at once; threads beyond it join only once helpers_may_start() says their cores
  // are free (the decoder's g_s may still be being packed on them). A coder that cannot
  // wait for them runs on the caller alone while they are not.
  virtual lic::Tensor decode_bands(const std::vector<Substream>& substreams, int /*band_rows*/,
                                   int height, int width, int threads,
                                   const std::function<bool()>& helpers_may_start) const {
    if (substreams.size() != 1) throw Error("corrupt bitstream (this coding mode has no bands)");
    return decode(substreams[0].data, substreams[0].size, height, width,
                  helpers_may_start() ? threads : 1);
  }
};

}  // namespace lic::codec
