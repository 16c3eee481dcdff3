// decoder IN.bin OUT.(png|ppm) [--threads N] [--dump-latent Y.npy]
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
        "usage: decoder IN.bin OUT.(png|ppm) [--threads N] [--dump-latent Y.npy]\n"
        "Decompresses a bitstream made by the matching encoder; the output format follows the\n"
        "extension. Prints the bits per pixel.\n"
        "  --threads N          threads for the synthesis transform (default 1)\n"
        "  --dump-latent Y.npy  also write the de-quantised latent, float32 (h, w, C)\n");
    return 0;
  }
  try {
    const Args args = parse_args(argc, argv, false);
    if (args.positional.size() != 2) throw lic::Error("usage: decoder IN.bin OUT.(png|ppm) (see --help)");
    const std::string& out = args.positional[1];
    if (!lic::ends_with_ci(out, ".png") && !lic::ends_with_ci(out, ".ppm"))
      throw lic::Error("output file " + out + " must end in .png or .ppm");
    const Decoder decoder = make_decoder(embedded());
    const std::vector<uint8_t> data = lic::read_file(args.positional[0]);
    const DecodeResult r = decoder.decode(data.data(), data.size(), args.threads);
    write_image(out, r.image);
    if (!args.dump_latent.empty()) dump_latent(args.dump_latent, r.y_hat);
    const double bpp = data.size() * 8.0 / (static_cast<double>(r.image.width) * r.image.height);
    std::printf("%ux%u, %zu bytes, %.6f bpp\n", r.image.width, r.image.height, data.size(), bpp);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decoder: error: %s\n", e.what());
    return 1;
  }
}
