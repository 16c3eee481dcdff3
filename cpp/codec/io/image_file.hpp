// Image files: 8-bit RGB, binary PPM (P6) by hand; PNG read through libpng's simplified API
// (the common 8-bit RGB PNG through a fast path on libdeflate, giving the same pixels),
// written by codec/io/png_encode.hpp (zlib).
// The only file of lic2cpp that includes <png.h>; the codec core, encoder and decoder
// halves work on codec::Image and compile without libpng.
// Input format is recognised by content, output format by the file extension.
// Policy (docs/bitstream.md#images): 8-bit grayscale and palette PNGs are converted to RGB;
// 16-bit samples and alpha channels are refused (converting them would alter the image).
#pragma once

#include <png.h>
#include <zlib.h>

// libdeflate (Debian's libdeflate-dev) speeds up reading the common PNG; without it every
// PNG goes through libpng. The build links it when its header is there.
#if __has_include(<libdeflate.h>)
#include <libdeflate.h>
#define LIC_HAVE_LIBDEFLATE 1
#else
#define LIC_HAVE_LIBDEFLATE 0
#endif

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/pages.hpp"
#include "codec/core/image.hpp"
#include "codec/io/png_encode.hpp"

namespace lic::codec {

namespace detail {

// PPM header token: skips whitespace and '#' comments; returns a non-negative integer.
inline uint64_t ppm_number(const std::vector<uint8_t>& d, size_t& pos, const std::string& path) {
  for (;;) {
    while (pos < d.size() && (d[pos] == ' ' || d[pos] == '\t' || d[pos] == '\n' || d[pos] == '\r'))
      ++pos;
    if (pos < d.size() && d[pos] == '#') {
      while (pos < d.size() && d[pos] != '\n') ++pos;
      continue;
    }
    break;
  }
  if (pos >= d.size() || d[pos] < '0' || d[pos] > '9') throw Error(path + ": malformed PPM header");
  uint64_t v = 0;
  while (pos < d.size() && d[pos] >= '0' && d[pos] <= '9') {
    v = v * 10 + (d[pos++] - '0');
    if (v > (uint64_t{1} << 32)) throw Error(path + ": malformed PPM header (number too large)");
  }
  return v;
}

inline Image read_ppm(const std::vector<uint8_t>& d, const std::string& path) {
  if (d[1] != '6')
    throw Error(path + ": only binary RGB PPM (P6) is supported, not P" + std::string(1, static_cast<char>(d[1])));
  size_t pos = 2;
  const uint64_t w = ppm_number(d, pos, path);
  const uint64_t h = ppm_number(d, pos, path);
  const uint64_t maxval = ppm_number(d, pos, path);
  if (pos >= d.size()) throw Error(path + ": truncated PPM file");
  ++pos;  // the single whitespace byte after maxval
  if (maxval > 255) throw Error(path + ": 16-bit PPM is not supported (8-bit RGB only)");
  if (maxval != 255) throw Error(path + ": PPM with maxval " + std::to_string(maxval) + " is not supported (255 only)");
  check_image_size(w, h);
  const uint64_t bytes = w * h * 3;
  if (d.size() - pos < bytes) throw Error(path + ": truncated PPM file (pixel data missing)");
  Image img;
  img.width = static_cast<uint32_t>(w);
  img.height = static_cast<uint32_t>(h);
  img.rgb.assign(d.begin() + static_cast<std::ptrdiff_t>(pos), d.begin() + static_cast<std::ptrdiff_t>(pos + bytes));
  return img;
}

inline uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

// Rows of a 3-byte-per-pixel image from PNG's filtered scanlines (filter byte, then the
// row); false on an unknown filter type.
inline bool unfilter_rgb8(const uint8_t* in, uint32_t width, uint32_t height, uint8_t* out) {
  const size_t n = size_t{width} * 3;
  std::vector<uint8_t> zeros(n, 0);
  for (uint32_t y = 0; y < height; ++y) {
    const uint8_t* s = in + size_t{y} * (n + 1);
    uint8_t* cur = out + size_t{y} * n;
    const uint8_t* prev = y ? cur - n : zeros.data();
    const uint8_t* f = s + 1;
    switch (s[0]) {
      case 0:
        std::memcpy(cur, f, n);
        break;
      case 1:
        for (size_t i = 0; i < n; ++i) cur[i] = static_cast<uint8_t>(f[i] + (i >= 3 ? cur[i - 3] : 0));
        break;
      case 2:
        for (size_t i = 0; i < n; ++i) cur[i] = static_cast<uint8_t>(f[i] + prev[i]);
        break;
      case 3:
        for (size_t i = 0; i < n; ++i)
          cur[i] = static_cast<uint8_t>(f[i] + (((i >= 3 ? cur[i - 3] : 0) + prev[i]) >> 1));
        break;
      case 4:
        for (size_t i = 0; i < n && i < 3; ++i) cur[i] = static_cast<uint8_t>(f[i] + prev[i]);
        for (size_t i = 3; i < n; ++i) {
          const int16_t a = cur[i - 3], b = prev[i], c = prev[i - 3];
          const int16_t pa = static_cast<int16_t>(std::abs(b - c));
          const int16_t pb = static_cast<int16_t>(std::abs(a - c));
          const int16_t pc = static_cast<int16_t>(std::abs(a + b - 2 * c));
          const int16_t bc = pb <= pc ? b : c;
          cur[i] = static_cast<uint8_t>(f[i] + ((pa <= pb && pa <= pc) ? a : bc));
        }
        break;
      default:
        return false;
    }
  }
  return true;
}

#if LIC_HAVE_LIBDEFLATE
// The fast path for the common PNG: 8-bit RGB, not interlaced, no colour-space chunks.
// Every chunk's CRC is checked, the zlib stream (its Adler-32 too) is inflated by
// libdeflate, 2.5x faster than zlib's inflate here, and the rows unfiltered above: a Kodak
// image in 5 ms instead of libpng's 9.5 (docs/performance.md#png). Anything else or
// anything odd -- other colour types and depths, interlacing, gAMA/cHRM/iCCP/sRGB/sBIT
// (libpng converts such images to sRGB), tRNS, unknown critical chunks, a bad CRC, a
// stream that does not inflate to exactly the image -- returns false, and libpng then
// decodes the file or names the problem. So both paths give the same pixels.
inline bool read_png_fast(const std::vector<uint8_t>& d, Image& img) {
  size_t pos = 8;
  uint32_t w = 0, h = 0;
  bool header = false, idat = false, idat_done = false;
  std::vector<uint8_t> z;
  z.reserve(d.size());  // the IDAT data, gathered
  for (;;) {
    if (d.size() - pos < 12) return false;
    const uint32_t len = be32(&d[pos]);
    if (len > 0x7fffffffu || len > d.size() - pos - 12) return false;
    const uint8_t* type = &d[pos + 4];
    if (crc32(0, type, len + 4) != be32(type + 4 + len)) return false;
    const uint8_t* data = type + 4;
    const bool critical = (type[0] & 0x20) == 0;
    if (std::memcmp(type, "IHDR", 4) == 0) {
      if (header || len != 13) return false;
      header = true;
      w = be32(data);
      h = be32(data + 4);
      if (data[8] != 8 || data[9] != 2 || data[10] != 0 || data[11] != 0 || data[12] != 0)
        return false;
    } else if (!header) {
      return false;
    } else if (std::memcmp(type, "IDAT", 4) == 0) {
      if (idat_done) return false;
      idat = true;
      z.insert(z.end(), data, data + len);
    } else {
      if (idat) idat_done = true;
      if (std::memcmp(type, "IEND", 4) == 0) break;
      static const char* const kLibpngOnly[] = {"gAMA", "cHRM", "iCCP", "sRGB", "sBIT", "tRNS"};
      for (const char* t : kLibpngOnly)
        if (std::memcmp(type, t, 4) == 0) return false;
      if (critical && std::memcmp(type, "PLTE", 4) != 0) return false;  // unknown
    }
    pos += 12 + size_t{len};
  }
  if (!idat || w == 0 || h == 0 || w > kMaxSide || h > kMaxSide ||
      uint64_t{w} * h > kMaxPixels)
    return false;
  const size_t raw = size_t{h} * (size_t{w} * 3 + 1);
  std::vector<uint8_t> rows;
  lic::resize_populated(rows, raw);
  libdeflate_decompressor* dec = libdeflate_alloc_decompressor();
  if (!dec) return false;
  size_t got = 0;
  const libdeflate_result r = libdeflate_zlib_decompress(dec, z.data(), z.size(), rows.data(), raw, &got);
  libdeflate_free_decompressor(dec);
  if (r != LIBDEFLATE_SUCCESS || got != raw) return false;
  img.width = w;
  img.height = h;
  lic::resize_populated(img.rgb, size_t{w} * h * 3);
  return unfilter_rgb8(rows.data(), w, h, img.rgb.data());
}
#endif

inline Image read_png(const std::vector<uint8_t>& d, const std::string& path) {
#if LIC_HAVE_LIBDEFLATE
  Image fast;
  if (read_png_fast(d, fast)) return fast;
#endif
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, d.data(), d.size()))
    throw Error(path + ": invalid PNG (" + image.message + ")");
  struct Guard {
    png_image* im;
    ~Guard() { png_image_free(im); }
  } guard{&image};
  if (image.format & PNG_FORMAT_FLAG_LINEAR)
    throw Error(path + ": 16-bit PNG is not supported (convert it to 8-bit RGB)");
  if (image.format & PNG_FORMAT_FLAG_ALPHA)
    throw Error(path + ": PNG with an alpha channel is not supported (remove the transparency)");
  check_image_size(image.width, image.height);
  image.format = PNG_FORMAT_RGB;  // 8-bit grayscale and palette images are expanded
  Image img;
  img.width = image.width;
  img.height = image.height;
  img.rgb.assign(static_cast<size_t>(PNG_IMAGE_SIZE(image)), 0);
  if (!png_image_finish_read(&image, nullptr, img.rgb.data(), 0, nullptr))
    throw Error(path + ": corrupt PNG (" + image.message + ")");
  return img;
}

}  // namespace detail

// An image file's bytes (PNG or PPM, recognised by content); `name` prefixes every error.
inline Image decode_image(const std::vector<uint8_t>& d, const std::string& name) {
  static const uint8_t kPngSig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  try {
    if (d.size() >= 8 && std::memcmp(d.data(), kPngSig, 8) == 0) return detail::read_png(d, name);
    if (d.size() >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7') return detail::read_ppm(d, name);
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.compare(0, name.size(), name) == 0) throw;
    throw Error(name + ": " + msg);  // e.g. the size limits, which do not know the file
  }
  if (d.empty()) throw Error(name + ": empty file, not an image");
  throw Error(name + ": not a PNG or PPM image");
}

inline Image read_image(const std::string& path) { return decode_image(read_file(path), path); }

// Writes `img` as PPM or PNG by the file's extension; `threads` compress a PNG in parallel
// (the file does not depend on it).
inline void write_image(const std::string& path, const Image& img, int threads = 1) {
  if (lic::ends_with_ci(path, ".ppm")) {
    const std::string head = "P6\n" + std::to_string(img.width) + " " + std::to_string(img.height) + "\n255\n";
    lic::write_file_atomic(path, {{reinterpret_cast<const uint8_t*>(head.data()), head.size()},
                                  {img.rgb.data(), img.rgb.size()}});
  } else if (lic::ends_with_ci(path, ".png")) {
    const png::File file = png::encode(img, threads);
    lic::write_file_atomic(path, file.pieces);
  } else {
    throw Error("output file " + path + " must end in .png or .ppm");
  }
}

}  // namespace lic::codec
