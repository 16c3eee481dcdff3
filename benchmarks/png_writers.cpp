// PNG writers compared on one image (benchmarks/bench_png.py runs it on decoded images):
// libpng's simplified API (the decoder's writer before issue 10), libpng's low-level API
// with zlib level 1-2 and each filter, zlib's run-length and Huffman-only strategies,
// libdeflate (when its header is installed: Debian's libdeflate-dev) with a hand-written
// chunk writer, and lic2cpp's writer (cpp/codec/io/png_encode.hpp). Every file is read back with libpng and
// must give the same pixels.
//
//   png_writers IN.ppm REPEAT
// Prints one line per writer: name, best CPU ms of REPEAT, wall ms, bytes.
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#if __has_include(<libdeflate.h>)
#include <libdeflate.h>
#define HAVE_LIBDEFLATE 1
#endif

#include "codec/io/image_file.hpp"

using lic::codec::Image;

namespace {

double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double wall_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<uint8_t> libpng_simplified(const Image& im) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.width = im.width;
  image.height = im.height;
  image.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = PNG_IMAGE_PNG_SIZE_MAX(image);
  std::vector<uint8_t> out(size);
  if (!png_image_write_to_memory(&image, out.data(), &size, 0, im.rgb.data(), 0, nullptr)) std::abort();
  out.resize(size);
  return out;
}

void mem_write(png_structp p, png_bytep d, png_size_t n) {
  auto* v = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
  v->insert(v->end(), d, d + n);
}
void mem_flush(png_structp) {}

std::vector<uint8_t> libpng_lowlevel(const Image& im, int level, int filters, int strategy) {
  std::vector<uint8_t> out;
  png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(p);
  if (setjmp(png_jmpbuf(p))) std::abort();
  png_set_write_fn(p, &out, mem_write, mem_flush);
  png_set_IHDR(p, info, im.width, im.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(p, level);
  png_set_compression_strategy(p, strategy);
  png_set_filter(p, 0, filters);
  png_write_info(p, info);
  for (uint32_t y = 0; y < im.height; ++y)
    png_write_row(p, const_cast<png_bytep>(im.rgb.data() + size_t(y) * im.width * 3));
  png_write_end(p, info);
  png_destroy_write_struct(&p, &info);
  return out;
}

std::vector<uint8_t> lic2cpp_writer(const Image& im, int threads) {
  const lic::codec::png::File f = lic::codec::png::encode(im, threads);
  std::vector<uint8_t> out;
  for (const lic::FilePiece& p : f.pieces) out.insert(out.end(), p.data, p.data + p.size);
  return out;
}

#ifdef HAVE_LIBDEFLATE
void put32(std::vector<uint8_t>& o, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) o.push_back(uint8_t(v >> s));
}
void chunk(std::vector<uint8_t>& o, const char* type, const uint8_t* d, size_t n) {
  put32(o, uint32_t(n));
  const size_t start = o.size();
  o.insert(o.end(), type, type + 4);
  o.insert(o.end(), d, d + n);
  put32(o, libdeflate_crc32(0, o.data() + start, n + 4));
}

// filter: 2 up, 3 average, 4 Paeth (the same Paeth as lic2cpp's writer)
std::vector<uint8_t> libdeflate_writer(const Image& im, int level, int filter) {
  const size_t n = size_t(im.width) * 3;
  std::vector<uint8_t> f(size_t(im.height) * (n + 1)), zeros(n, 0);
  for (uint32_t y = 0; y < im.height; ++y) {
    const uint8_t* cur = im.rgb.data() + y * n;
    const uint8_t* prev = y ? cur - n : zeros.data();
    uint8_t* o = f.data() + y * (n + 1);
    o[0] = uint8_t(filter);
    if (filter == 4) {
      lic::codec::png::paeth_row(cur, prev, o + 1, n);
    } else {
      for (size_t i = 0; i < n; ++i) {
        const int a = i >= 3 ? cur[i - 3] : 0, b = prev[i];
        o[1 + i] = uint8_t(cur[i] - (filter == 2 ? b : (a + b) >> 1));
      }
    }
  }
  libdeflate_compressor* c = libdeflate_alloc_compressor(level);
  std::vector<uint8_t> z(libdeflate_zlib_compress_bound(c, f.size()));
  const size_t zn = libdeflate_zlib_compress(c, f.data(), f.size(), z.data(), z.size());
  libdeflate_free_compressor(c);
  std::vector<uint8_t> o = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  uint8_t ihdr[13] = {0};
  for (int i = 0; i < 4; ++i) ihdr[i] = uint8_t(im.width >> (24 - 8 * i));
  for (int i = 0; i < 4; ++i) ihdr[4 + i] = uint8_t(im.height >> (24 - 8 * i));
  ihdr[8] = 8;
  ihdr[9] = 2;
  chunk(o, "IHDR", ihdr, 13);
  for (size_t p = 0; p < zn; p += 1 << 20) chunk(o, "IDAT", z.data() + p, std::min<size_t>(1 << 20, zn - p));
  chunk(o, "IEND", nullptr, 0);
  return o;
}
#endif

std::vector<uint8_t> read_back(const std::vector<uint8_t>& d) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, d.data(), d.size())) return {};
  image.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> px(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, px.data(), 0, nullptr)) return {};
  return px;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: png_writers IN.ppm REPEAT\n");
    return 2;
  }
  const Image im = lic::codec::read_image(argv[1]);
  const int repeat = std::max(1, std::atoi(argv[2]));
  struct Writer {
    std::string name;
    std::function<std::vector<uint8_t>()> run;
  };
  std::vector<Writer> writers = {
      {"libpng simplified (default)", [&] { return libpng_simplified(im); }},
      {"libpng z1 filter=up", [&] { return libpng_lowlevel(im, 1, PNG_FILTER_UP, Z_DEFAULT_STRATEGY); }},
      {"libpng z1 filter=paeth", [&] { return libpng_lowlevel(im, 1, PNG_FILTER_PAETH, Z_DEFAULT_STRATEGY); }},
      {"libpng z1 filter=all", [&] { return libpng_lowlevel(im, 1, PNG_ALL_FILTERS, Z_DEFAULT_STRATEGY); }},
      {"libpng z2 filter=paeth", [&] { return libpng_lowlevel(im, 2, PNG_FILTER_PAETH, Z_DEFAULT_STRATEGY); }},
      {"libpng rle filter=sub", [&] { return libpng_lowlevel(im, 1, PNG_FILTER_SUB, Z_RLE); }},
      {"libpng rle filter=paeth", [&] { return libpng_lowlevel(im, 1, PNG_FILTER_PAETH, Z_RLE); }},
#ifdef HAVE_LIBDEFLATE
      {"libdeflate l1 filter=up", [&] { return libdeflate_writer(im, 1, 2); }},
      {"libdeflate l1 filter=avg", [&] { return libdeflate_writer(im, 1, 3); }},
      {"libdeflate l1 filter=paeth", [&] { return libdeflate_writer(im, 1, 4); }},
      {"libdeflate l2 filter=paeth", [&] { return libdeflate_writer(im, 2, 4); }},
#endif
      {"zlib huffman-only filter=paeth", [&] { return libpng_lowlevel(im, 1, PNG_FILTER_PAETH, Z_HUFFMAN_ONLY); }},
      {"lic2cpp (paeth, huffman, strips) 1 thread", [&] { return lic2cpp_writer(im, 1); }},
      {"lic2cpp (paeth, huffman, strips) 2 threads", [&] { return lic2cpp_writer(im, 2); }},
  };
  for (const Writer& w : writers) {
    double best_cpu = 1e300, best_wall = 1e300;
    std::vector<uint8_t> file;
    for (int r = 0; r < repeat; ++r) {
      const double c0 = cpu_ms(), w0 = wall_ms();
      file = w.run();
      best_cpu = std::min(best_cpu, cpu_ms() - c0);
      best_wall = std::min(best_wall, wall_ms() - w0);
    }
    if (read_back(file) != im.rgb) {
      std::printf("%s: MISMATCH\n", w.name.c_str());
      return 1;
    }
    std::printf("%-40s cpu %8.2f ms  wall %8.2f ms  %10zu bytes\n", w.name.c_str(), best_cpu,
                best_wall, file.size());
  }
  return 0;
}
