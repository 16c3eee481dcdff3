// The seam between the transforms and the entropy coding: a LatentCoder turns the analysis
// transform's output into a payload and a payload back into the synthesis transform's
// input. Today's implementation is the context-table model (entropy/context_coder.hpp); a
// hyperprior model implements the same interface (it runs its own h_a/h_s inside encode
// and decode, hence `threads`), and the encoder and decoder halves do not change.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "codec/core/latent.hpp"
#include "lic/tensor.hpp"

namespace lic::codec {

struct EncodedLatent {
  std::vector<uint8_t> payload;
  CodeLength ideal;    // ideal code lengths of the payload (encoder --stats)
  lic::Tensor y_hat;   // the de-quantised latent the decoder will see, HWC
};

class LatentCoder {
 public:
  virtual ~LatentCoder() = default;

  // The bitstream's coding-mode byte for payloads of this coder (codec/core/bitstream.hpp).
  virtual uint8_t mode() const = 0;
  // Fingerprint of the coder's tables (and networks), part of the codec fingerprint.
  virtual uint64_t fingerprint() const = 0;
  // Latent channels the coder expects.
  virtual int channels() const = 0;

  // Quantises and codes y, the analysis transform's output (HWC).
  virtual EncodedLatent encode(const lic::Tensor& y, int threads) const = 0;
  // Decodes a payload into the de-quantised latent (HWC, height x width x channels());
  // a corrupt payload is lic::Error.
  virtual lic::Tensor decode(const uint8_t* payload, size_t size, int height, int width,
                             int threads) const = 0;
};

}  // namespace lic::codec
