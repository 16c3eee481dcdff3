// libFuzzer target: the .lice entropy-table reader and the range coder over any tables it
// accepts.
//
// Each input is read as it is and repaired (body size and fingerprint recomputed, so
// mutations reach the channel records and probability tables). Tables that load must code
// losslessly: a latent drawn from the input (most probable values, in-range symbols,
// escapes up to the largest codable magnitude, all-mpv channels) is encoded, decoded back
// bit for bit, and the decoder must use up exactly the payload.
#include <cstddef>
#include <cstdint>
#include <random>

#include "codec/entropy/context_coder.hpp"
#include "fuzz_common.hpp"

namespace {

using lic::codec::ContextTables;
using lic::codec::Latent;

Latent latent_for(const ContextTables& m, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  Latent lat;
  lat.channels = m.num_channels();
  lat.height = 1 + static_cast<int>(rng() % 3);
  lat.width = 1 + static_cast<int>(rng() % 4);
  lat.q.resize(static_cast<std::size_t>(lat.channels) * lat.height * lat.width);
  const std::int64_t max_abs = lic::codec::kMaxAbsSymbol - 1;
  for (int c = 0; c < lat.channels; ++c) {
    const auto& ch = m.channels[static_cast<std::size_t>(c)];
    const bool flat = rng() % 4 == 0;  // a channel of mpv only: coded by its flag alone
    for (int i = 0; i < lat.height * lat.width; ++i) {
      std::int64_t v = ch.mpv;
      switch (flat ? 0 : rng() % 5) {
        case 1: v = ch.lo + static_cast<std::int64_t>(rng() % ch.nsym); break;
        case 2: v = ch.lo - 1 - static_cast<std::int64_t>(rng() % 1000); break;  // escapes
        case 3: v = ch.lo + ch.nsym + static_cast<std::int64_t>(rng() % 1000); break;
        case 4: v = (rng() % 2 ? max_abs : -max_abs) - static_cast<std::int64_t>(rng() % 3); break;
        default: break;
      }
      if (v > max_abs) v = max_abs;
      if (v < -max_abs) v = -max_abs;
      lat.q[static_cast<std::size_t>(c) * lat.height * lat.width + i] = static_cast<std::int32_t>(v);
    }
  }
  return lat;
}

void attempt(const std::uint8_t* data, std::size_t size) {
  ContextTables m;
  try {
    m = ContextTables::from_bytes(data, size);
  } catch (const lic::Error&) {
    return;
  }
  const Latent lat = latent_for(m, m.fingerprint);
  lic::codec::RangeEncoder enc;
  lic::codec::encode_latent(lat, m, enc);
  const std::vector<std::uint8_t> payload = enc.finish();
  lic::codec::RangeDecoder dec(payload.data(), payload.size());
  Latent back;
  try {
    back = lic::codec::decode_latent(dec, m, lat.height, lat.width);
  } catch (const lic::Error&) {
    fuzz::fail("a payload the encoder wrote does not decode");
  }
  if (back.q != lat.q) fuzz::fail("decoded latent differs from the encoded one");
  if (dec.bytes_read() < payload.size()) fuzz::fail("decoder left payload bytes unused");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  attempt(data, size);
  const fuzz::Bytes b = fuzz::repaired_24(data, size);
  attempt(b.data(), b.size());
  return 0;
}
