// encoder IN.(png|ppm) OUT.bin [--threads N] [--max-memory SIZE] [--band-rows R]
//         [--rdoq LAMBDA] [--rdoq-sweeps N] [--dump-latent Y.npy] [--stats]
// A thin user of the codec's C interface (codec/capi/lic2cpp.h).
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "base/file.hpp"
#include "codec/io/image_file.hpp"
#include "codec/programs/cli.hpp"

using namespace lic::codec;

namespace {

// Sub-streams of a bitstream (docs/bitstream.md): 2.0 streams hold ceil(latent_h /
// band_rows), 1.x streams one.
unsigned bands_of(const uint8_t* b, size_t size) {
  if (size < 24 || b[4] < 2) return 1;
  const unsigned latent_h = b[18] | b[19] << 8, rows = b[22] | b[23] << 8;
  return rows ? (latent_h + rows - 1) / rows : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    std::printf(
        "usage: encoder IN.(png|ppm) OUT.bin [--threads N] [--max-memory SIZE] [--band-rows R]\n"
        "               [--rdoq LAMBDA] [--rdoq-sweeps N] [--dump-latent Y.npy] [--stats]\n"
        "Compresses an 8-bit RGB image (PNG or binary PPM, up to %u pixels a side and %llu\n"
        "pixels) with the network and entropy tables built into this program.\n"
        "  --threads N          threads (default 1); the bitstream does not depend on it\n"
        "  --max-memory SIZE    run the analysis transform in tiles within SIZE (e.g. 256M);\n"
        "                       the bitstream is the same (default: images up to 2^24 pixels\n"
        "                       in one piece, larger ones in tiles within 1 GiB)\n"
        "  --band-rows R        latent rows per independently coded band (default %u; at\n"
        "                       least the latent height: one band, a 1.x bitstream)\n"
        "  --rdoq LAMBDA        choose the latent for D + R (rate-distortion optimised\n"
        "                       quantisation, slower), LAMBDA in the training loss's units\n"
        "                       (LAMBDA*255^2*MSE + bpp); 0: plain rounding (default %g)\n"
        "  --rdoq-sweeps N      RDOQ linearisations (default 12)\n"
        "  --dump-latent Y.npy  also write the de-quantised latent, float32 (h, w, C)\n"
        "  --stats              print one JSON line: sizes, ideal code lengths (and RDOQ's work)\n",
        kMaxSide, static_cast<unsigned long long>(kMaxPixels), 16u, lic2cpp_default_rdoq_lambda());
    return 0;
  }
  lic::profile_clock_ms();  // LIC_PROFILE times count from here
  try {
    const Args args = parse_args(argc, argv, true);
    if (!args.max_memory) tune_malloc_for_one_run();  // (a budget counts on freed memory going back)
    if (args.positional.size() != 2) throw lic::Error("usage: encoder IN.(png|ppm) OUT.bin (see --help)");
    const CodecHandle codec(args.threads);
    codec.check(lic2cpp_set_max_memory(codec.codec, args.max_memory));
    codec.check(lic2cpp_set_band_rows(codec.codec, args.band_rows));
    if (args.rdoq >= 0 || args.rdoq_sweeps >= 0)
      codec.check(lic2cpp_set_rdoq(codec.codec, args.rdoq, args.rdoq_sweeps));
    // With threads to spare, the network is unpacked while the image is read (both take
    // a few milliseconds: serial time that two threads would otherwise wait out).
    codec.check(lic2cpp_load_encoder(codec.codec));
    const Image img = [&] {
      lic::ProfileScope read("encoder: reading the image");
      return read_image(args.positional[0]);
    }();
    uint8_t* data = nullptr;
    size_t size = 0;
    float* y = nullptr;
    lic2cpp_encode_stats st{};
    const auto t0 = std::chrono::steady_clock::now();
    {
      lic::ProfileScope encode("encoder: encoding");
      codec.check(lic2cpp_encode_ex(codec.codec, img.rgb.data(), img.width, img.height,
                                    size_t(img.width) * 3, &data, &size, &st,
                                    args.dump_latent.empty() ? nullptr : &y));
    }
    const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - t0;
    const LibPtr<uint8_t> keep_data(data);
    const LibPtr<float> keep_y(y);
    lic2cpp_rdoq_report rep{};
    codec.check(lic2cpp_get_rdoq_report(codec.codec, &rep));
    lic::write_file_atomic(args.positional[1], {{data, size}});
    if (y) dump_latent(args.dump_latent, y, st.latent_height, st.latent_width, st.latent_channels);
    if (args.stats) {
      const double pixels = static_cast<double>(img.width) * img.height;
      std::printf(
          "{\"width\": %u, \"height\": %u, \"bytes\": %zu, \"header_bytes\": %zu, \"payload_bytes\": %zu, "
          "\"ideal_bits\": %.6f, \"ideal_bits_plain\": %.6f, \"payload_bits\": %zu, "
          "\"coder_overhead_pct\": %.5f, \"bpp\": %.6f, \"bands\": %u, \"encode_s\": %.3f, "
          "\"rdoq_lambda\": %g, \"rdoq_bits_plain\": %.6f, \"rdoq_sse_plain\": %.9g, \"rdoq_sse\": %.9g, "
          "\"rdoq_sweeps\": %d, \"rdoq_accepted\": %d, \"rdoq_changed\": %d, \"rdoq_passes\": %d}\n",
          img.width, img.height, size, st.header_bytes, st.payload_bytes, st.ideal_bits,
          st.ideal_bits_plain, st.payload_bytes * 8,
          st.ideal_bits > 0 ? 100.0 * (st.payload_bytes * 8.0 - st.ideal_bits) / st.ideal_bits : 0.0,
          size * 8.0 / pixels, bands_of(data, size), seconds.count(), rep.lambda, rep.bits_plain,
          rep.sse_plain, rep.sse, rep.sweeps, rep.accepted, rep.changed, rep.passes);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "encoder: error: %s\n", e.what());
    return 1;
  }
}
