// The codec halves built from the embedded networks and tables (codec/capi/embedded.hpp).
#pragma once

#include <cstring>
#include <memory>
#include <utility>

#include "codec/capi/embedded.hpp"
#include "codec/decoder.hpp"
#include "codec/encoder.hpp"
#include "codec/entropy/context_coder.hpp"
#include "codec/entropy/hyper_coder.hpp"
#include "codec/tiled.hpp"
#include "lic/gradient.hpp"
#include "lic/runtime.hpp"

namespace lic::codec {

// The coder named by the embedded tables: a hyperprior coder for `.lich` tables (with the
// encoder's h_a), else the context-table model of a `.lice` file.
inline std::unique_ptr<const LatentCoder> make_latent_coder(const Embedded& e) {
  if (e.tables_size >= 4 && std::memcmp(e.tables, "LICH", 4) == 0)
    return std::make_unique<HyperpriorCoder>(e.tables, e.tables_size, e.aux_network,
                                             e.aux_network_size);
  return ContextTableCoder::from_bytes(e.tables, e.tables_size);
}

inline std::unique_ptr<const TiledEncoder> make_encoder(const Embedded& e) {
  lic::Model g_a = lic::Model::from_embedded(e.network, e.network_size);
  Encoder enc(std::move(g_a), make_latent_coder(e), e.multiple, e.ga_fingerprint, e.gs_fingerprint);
  if (e.synthesis)  // for RDOQ: the float g_s, and the decoder's own network when another
    enc.set_synthesis([e] {
      Encoder::Synthesis s;
      s.g_s = std::make_shared<const lic::Gradient>(
          lic::Gradient::from_bytes(e.synthesis, e.synthesis_size));
      if (e.decoder_network)
        s.decoder_net = std::make_shared<const lic::Model>(
            lic::Model::from_embedded(e.decoder_network, e.decoder_network_size));
      return s;
    });
  return std::make_unique<const TiledEncoder>(std::move(enc),
                                              NetGeometry::from_bytes(e.network, e.network_size));
}

inline std::unique_ptr<const TiledDecoder> make_decoder(const Embedded& e) {
  lic::Model g_s = lic::Model::from_embedded(e.network, e.network_size);
  return std::make_unique<const TiledDecoder>(
      Decoder(std::move(g_s), make_latent_coder(e), e.multiple, e.ga_fingerprint, e.gs_fingerprint),
      NetGeometry::from_bytes(e.network, e.network_size));
}

}  // namespace lic::codec
