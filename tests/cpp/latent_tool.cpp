// latent_tool: codes latents with an entropy model and checks the exact round trip.
//
//   latent_tool TABLES.lice Y.npy
// Y.npy is float32 [N, C, h, w] (as EntropyModel.estimate_bits takes); each item is coded
// as one payload, decoded again and compared. Prints one JSON line: the ideal code lengths
// (with contexts / plain tables) summed over the items, the payload bytes, and the bytes
// the decoders consumed. Used by the tests and by the coder-overhead measurement.
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/npy.hpp"
#include "codec/core/range_coder.hpp"
#include "codec/entropy/context_coder.hpp"
#include "codec/entropy/context_tables.hpp"

using namespace lic::codec;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: latent_tool TABLES.lice Y.npy\n");
    return 2;
  }
  try {
    const std::vector<uint8_t> tables = lic::read_file(argv[1]);
    const ContextTables model = ContextTables::from_bytes(tables.data(), tables.size());
    const lic::npy::Array arr = lic::npy::read(argv[2]);
    const std::vector<long long>& shape = arr.shape;
    const std::vector<float>& y = arr.data;
    if (shape.size() != 4 || shape[0] == 0 || shape[2] == 0 || shape[3] == 0 ||
        shape[1] > (1 << 20) || shape[2] > (1 << 20) || shape[3] > (1 << 20))
      throw lic::Error("Y.npy must be [N, C, h, w]");
    const int c = static_cast<int>(shape[1]), h = static_cast<int>(shape[2]), w = static_cast<int>(shape[3]);
    const size_t item = static_cast<size_t>(c) * h * w;
    double bits_ctx = 0, bits_plain = 0;
    size_t payload = 0, slack = 0;
    for (size_t n = 0; n < static_cast<size_t>(shape[0]); ++n) {
      const Latent lat = quantize(y.data() + n * item, c, h, w, static_cast<size_t>(h) * w, 1, model);
      RangeEncoder enc;
      const CodeLength len = encode_latent(lat, model, enc);
      const std::vector<uint8_t> bytes = enc.finish();
      bits_ctx += len.bits_ctx;
      bits_plain += len.bits_plain;
      payload += bytes.size();
      RangeDecoder dec(bytes.data(), bytes.size());
      const Latent back = decode_latent(dec, model, h, w);
      if (back.q != lat.q) throw lic::Error("round trip mismatch in item " + std::to_string(n));
      if (dec.bytes_read() < bytes.size()) throw lic::Error("decoder left payload bytes unread");
      slack += dec.bytes_read() - bytes.size();
    }
    std::printf("{\"items\": %zu, \"bits_ctx\": %.6f, \"bits_plain\": %.6f, \"payload_bytes\": %zu, "
                "\"virtual_zero_bytes\": %zu}\n", static_cast<size_t>(shape[0]), bits_ctx, bits_plain, payload, slack);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "latent_tool: error: %s\n", e.what());
    return 1;
  }
}
