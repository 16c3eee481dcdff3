// latent_tool: codes latents with an entropy model and checks the exact round trip.
//
//   latent_tool TABLES.lice Y.npy [BAND_ROWS]
//   latent_tool TABLES.lice Y.npy --symbols Q.npy
// Y.npy is float32 [N, C, h, w] (as EntropyModel.estimate_bits takes); each item is coded
// as one payload (or, with BAND_ROWS, as one sub-stream per band of that many rows, as in
// bitstream 2.0), decoded again and compared. Prints one JSON line: the ideal code lengths
// (with contexts / plain tables) summed over the items, the payload bytes, and the bytes
// the decoders consumed. Used by the tests and by the coder-overhead measurement.
// With --symbols, writes the quantised symbols instead (float32 [N, C, h, w]), made from Y
// as it is (channel planes) and from its pixel-interleaved copy on 3 threads (the encoder's
// layout), which must agree.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
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
  const bool symbols = argc == 5 && std::string(argv[3]) == "--symbols";
  if (argc != 3 && argc != 4 && !symbols) {
    std::fprintf(stderr, "usage: latent_tool TABLES.lice Y.npy [BAND_ROWS | --symbols Q.npy]\n");
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
    if (symbols) {
      std::vector<float> out;
      for (size_t n = 0; n < static_cast<size_t>(shape[0]); ++n) {
        const float* item_y = y.data() + n * item;
        std::vector<float> hwc(item);
        for (size_t i = 0; i < item; ++i)
          hwc[(i % (static_cast<size_t>(h) * w)) * c + i / (static_cast<size_t>(h) * w)] = item_y[i];
        // An invalid value must give the same error both ways (the one naming the first bad
        // row's lowest channel, whichever thread met it).
        Latent planes, pixels;
        std::string planes_error, pixels_error;
        try {
          planes = quantize(item_y, c, h, w, static_cast<size_t>(h) * w, 1, model);
        } catch (const lic::Error& e) {
          planes_error = e.what();
        }
        try {
          pixels = quantize(hwc.data(), c, h, w, 1, static_cast<size_t>(c), model, 3);
        } catch (const lic::Error& e) {
          pixels_error = e.what();
        }
        if (planes_error != pixels_error)
          throw lic::Error("the two layouts fail differently: " + planes_error + " / " + pixels_error);
        if (!planes_error.empty()) throw lic::Error(planes_error);
        if (pixels.q != planes.q) throw lic::Error("the two layouts quantise differently");
        out.insert(out.end(), planes.q.begin(), planes.q.end());
      }
      lic::npy::write(argv[4], shape, out);
      return 0;
    }
    double bits_ctx = 0, bits_plain = 0;
    size_t payload = 0, slack = 0;
    for (size_t n = 0; n < static_cast<size_t>(shape[0]); ++n) {
      const Latent lat = quantize(y.data() + n * item, c, h, w, static_cast<size_t>(h) * w, 1, model);
      const int rows = argc == 4 ? std::max(1, std::atoi(argv[3])) : h;
      Latent back = lat;
      std::fill(back.q.begin(), back.q.end(), 0);
      for (int y0 = 0; y0 < h; y0 += rows) {
        const int y1 = std::min(h, y0 + rows);
        RangeEncoder enc;
        if (y0 == 0) check_latent(lat, model);
        const CodeLength len = encode_latent(lat, model, enc, y0, y1);
        const std::vector<uint8_t> bytes = enc.finish();
        bits_ctx += len.bits_ctx;
        bits_plain += len.bits_plain;
        payload += bytes.size();
        RangeDecoder dec(bytes.data(), bytes.size());
        decode_band(dec, model, back, y0, y1);
        if (dec.bytes_read() < bytes.size()) throw lic::Error("decoder left payload bytes unread");
        slack += dec.bytes_read() - bytes.size();
      }
      if (back.q != lat.q) throw lic::Error("round trip mismatch in item " + std::to_string(n));
    }
    std::printf("{\"items\": %zu, \"bits_ctx\": %.6f, \"bits_plain\": %.6f, \"payload_bytes\": %zu, "
                "\"virtual_zero_bytes\": %zu}\n", static_cast<size_t>(shape[0]), bits_ctx, bits_plain, payload, slack);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "latent_tool: error: %s\n", e.what());
    return 1;
  }
}
