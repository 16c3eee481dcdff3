// decoder IN.bin OUT.(png|ppm) [--threads N] [--max-memory SIZE] [--dump-latent Y.npy]
// A thin user of the codec's C interface (codec/capi/lic2cpp.h).
#include <sys/resource.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "base/file.hpp"
#include "base/pages.hpp"
#include "codec/io/image_file.hpp"
#include "codec/io/row_writer.hpp"
#include "codec/programs/cli.hpp"

using namespace lic::codec;

namespace {

// Peak resident memory of this process so far, in bytes: VmHWM, the high-water mark of this
// program's own memory. (getrusage's ru_maxrss is no use here: Linux carries it over exec,
// so it starts at the peak of whatever process spawned the decoder.)
uint64_t peak_rss() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  char line[256];
  uint64_t kib = 0;
  while (f && std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmHWM: %" SCNu64 " kB", &kib) == 1) break;
  if (f) std::fclose(f);
  if (kib) return kib * 1024;
  struct rusage u {};  // other systems: the best estimate there is
  getrusage(RUSAGE_SELF, &u);
#ifdef __APPLE__
  return uint64_t(u.ru_maxrss);
#else
  return uint64_t(u.ru_maxrss) * 1024;
#endif
}

// What the PNG writer (a block of about 1 MiB of filtered rows and its deflate data), the
// thread stacks and the C library may still take beyond the peak measured before decoding.
constexpr uint64_t kProgramReserve = uint64_t{8} << 20;

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / (1024.0 * 1024.0));
  return buf;
}

// The row callback: no exception may cross the C interface, so a write error is kept here
// and stops decoding.
struct Sink {
  RowWriter* writer;
  std::string error;
};

int write_rows(void* user, const uint8_t* rgb, size_t stride, uint32_t first, uint32_t rows) {
  Sink* sink = static_cast<Sink*>(user);
  try {
    sink->writer->write_rows(rgb, stride, first, rows);
    return 0;
  } catch (const std::exception& e) {
    sink->error = e.what();
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (wants_help(argc, argv)) {
    std::printf(
        "usage: decoder IN.bin OUT.(png|ppm) [--threads N] [--max-memory SIZE] [--dump-latent Y.npy]\n"
        "Decompresses a bitstream made by the matching encoder; the output format follows the\n"
        "extension. Prints the bits per pixel.\n"
        "  --threads N          threads (default 1); the output does not depend on it\n"
        "  --max-memory SIZE    keep the process's peak memory under SIZE (e.g. 256M, 2G):\n"
        "                       the image is decoded in tiles and written band by band; the\n"
        "                       pixels are the same (default: images up to 2^24 pixels in one\n"
        "                       piece, larger ones in tiles within 1 GiB)\n"
        "  --dump-latent Y.npy  also write the de-quantised latent, float32 (h, w, C)\n");
    return 0;
  }
  lic::profile_clock_ms();  // LIC_PROFILE times count from here
  try {
    const Args args = parse_args(argc, argv, false);
    if (!args.max_memory) tune_malloc_for_one_run();  // (a budget counts on freed memory going back)
    if (args.positional.size() != 2) throw lic::Error("usage: decoder IN.bin OUT.(png|ppm) (see --help)");
    const std::string& out = args.positional[1];
    if (!lic::ends_with_ci(out, ".png") && !lic::ends_with_ci(out, ".ppm"))
      throw lic::Error("output file " + out + " must end in .png or .ppm");
    const CodecHandle codec(args.threads);
    const std::vector<uint8_t> data = lic::read_file(args.positional[0]);
    uint32_t w = 0, h = 0;
    codec.check(lic2cpp_get_info(codec.codec, data.data(), data.size(), &w, &h));
    if (args.max_memory) {
      // The budget is the whole process's: what it holds already (code, the network, the
      // bitstream) and the writer's share come off what the library may use.
      const uint64_t own = peak_rss() + kProgramReserve;
      if (args.max_memory <= own)
        throw lic::Error("--max-memory " + args.max_memory_text + " is less than the decoder itself takes (" +
                         mib(own) + ")");
      codec.check(lic2cpp_set_max_memory(codec.codec, args.max_memory - own));
      lic2cpp_plan plan{};
      if (lic2cpp_plan_decode(codec.codec, data.data(), data.size(), &plan) == LIC2CPP_MEMORY_BUDGET)
        throw lic::Error("--max-memory " + args.max_memory_text + " is too small for this " +
                         std::to_string(w) + "x" + std::to_string(h) + " image: decoding it needs at least " +
                         mib(plan.least + own));
      RowWriter writer(out, w, h);
      Sink sink{&writer, {}};
      const lic2cpp_status st = lic2cpp_decode_rows(codec.codec, data.data(), data.size(), write_rows, &sink);
      if (!sink.error.empty()) throw lic::Error(sink.error);
      codec.check(st);
      writer.finish();
    } else {
      Image img;
      img.width = w;
      img.height = h;
      lic::resize_populated(img.rgb, size_t(w) * h * 3);
      {
        lic::ProfileScope decode("decoder: decoding");
        codec.check(lic2cpp_decode(codec.codec, data.data(), data.size(), img.rgb.data(), size_t(w) * 3,
                                   img.rgb.size()));
      }
      lic::ProfileScope write("decoder: writing the image");
      write_image(out, img, args.threads);
    }
    if (!args.dump_latent.empty()) {
      float* y = nullptr;
      uint32_t lh = 0, lw = 0, c = 0;
      codec.check(lic2cpp_decode_latent(codec.codec, data.data(), data.size(), &y, &lh, &lw, &c));
      const LibPtr<float> keep(y);
      dump_latent(args.dump_latent, y, lh, lw, c);
    }
    const double bpp = data.size() * 8.0 / (static_cast<double>(w) * h);
    std::printf("%ux%u, %zu bytes, %.6f bpp\n", w, h, data.size(), bpp);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decoder: error: %s\n", e.what());
    return 1;
  }
}
