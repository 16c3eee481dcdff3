// The codec halves built from the embedded networks and tables (codec/capi/embedded.hpp).
#pragma once

#include <cstring>
#include <memory>
#include <utility>

#include "base/profile.hpp"
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

// The embedded network, parsed once for both the runtime and the tiling geometry. Its
// content hash is not verified: the bytes are part of the program, checked when it was
// built (verifying them cost 7 ms of a 140 ms decode).
inline lic::ModelDesc embedded_network(const Embedded& e) {
  return lic::parse_model(e.network, e.network_size, /*verify_hash=*/false);
}

inline std::unique_ptr<const TiledEncoder> make_encoder(const Embedded& e, int threads) {
  lic::ProfileScope scope("encoder: parsing");
  lic::ModelDesc desc = embedded_network(e);
  NetGeometry geometry(desc);
  // Packing starts (on a thread of its own with 2+ threads) before the tables are read.
  lic::PendingModel model = lic::PendingModel::start(std::move(desc), threads, "encoder: loading");
  Encoder enc(std::move(model), make_latent_coder(e), e.multiple,
              e.ga_fingerprint, e.gs_fingerprint);
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
  return std::make_unique<const TiledEncoder>(std::move(enc), std::move(geometry));
}

inline std::unique_ptr<const TiledDecoder> make_decoder(const Embedded& e, int threads) {
  lic::ProfileScope scope("decoder: parsing");
  lic::ModelDesc desc = embedded_network(e);
  NetGeometry geometry(desc);
  lic::PendingModel model = lic::PendingModel::start(std::move(desc), threads, "decoder: loading");
  return std::make_unique<const TiledDecoder>(
      Decoder(std::move(model), make_latent_coder(e), e.multiple, e.ga_fingerprint, e.gs_fingerprint),
      std::move(geometry));
}

}  // namespace lic::codec
