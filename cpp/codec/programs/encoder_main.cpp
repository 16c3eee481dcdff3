// encoder IN.(png|ppm) OUT.bin [--threads N] [--dump-latent Y.npy] [--stats]
#include <cstdio>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "codec/io/image_file.hpp"
#include "codec/programs/cli.hpp"

using namespace lic::codec;

int main(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    std::printf(
        "usage: encoder IN.(png|ppm) OUT.bin [--threads N] [--dump-latent Y.npy] [--stats]\n"
        "Compresses an 8-bit RGB image (PNG or binary PPM, up to %u pixels a side and %llu\n"
        "pixels) with the network and entropy tables built into this program.\n"
        "  --threads N          threads for the analysis transform (default 1)\n"
        "  --dump-latent Y.npy  also write the de-quantised latent, float32 (h, w, C)\n"
        "  --stats              print one JSON line: sizes and ideal code lengths\n",
        kMaxSide, static_cast<unsigned long long>(kMaxPixels));
    return 0;
  }
  try {
    const Args args = parse_args(argc, argv, true);
    if (args.positional.size() != 2) throw lic::Error("usage: encoder IN.(png|ppm) OUT.bin (see --help)");
    const Encoder encoder = make_encoder(embedded());
    const Image img = read_image(args.positional[0]);
    const EncodeResult r = encoder.encode(img, args.threads);
    lic::write_file_atomic(args.positional[1], r.bitstream);
    if (!args.dump_latent.empty()) dump_latent(args.dump_latent, r.y_hat);
    if (args.stats) {
      const double pixels = static_cast<double>(img.width) * img.height;
      std::printf(
          "{\"width\": %u, \"height\": %u, \"bytes\": %zu, \"header_bytes\": %zu, \"payload_bytes\": %zu, "
          "\"ideal_bits\": %.6f, \"ideal_bits_plain\": %.6f, \"payload_bits\": %zu, "
          "\"coder_overhead_pct\": %.5f, \"bpp\": %.6f}\n",
          img.width, img.height, r.bitstream.size(), kStreamHeaderSize, r.payload_size, r.ideal.bits_ctx,
          r.ideal.bits_plain, r.payload_size * 8,
          r.ideal.bits_ctx > 0 ? 100.0 * (r.payload_size * 8.0 - r.ideal.bits_ctx) / r.ideal.bits_ctx : 0.0,
          r.bitstream.size() * 8.0 / pixels);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "encoder: error: %s\n", e.what());
    return 1;
  }
}
