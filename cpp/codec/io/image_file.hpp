// Image files: 8-bit RGB, binary PPM (P6) by hand, PNG through libpng's simplified API.
// The only file of lic2cpp that includes <png.h>; the codec core, encoder and decoder
// halves work on codec::Image and compile without libpng.
// Input format is recognised by content, output format by the file extension.
// Policy (docs/bitstream.md#images): 8-bit grayscale and palette PNGs are converted to RGB;
// 16-bit samples and alpha channels are refused (converting them would alter the image).
#pragma once

#include <png.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "codec/core/image.hpp"

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

inline Image read_png(const std::vector<uint8_t>& d, const std::string& path) {
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

inline void write_image(const std::string& path, const Image& img) {
  std::vector<uint8_t> out;
  if (ends_with_ci(path, ".ppm")) {
    const std::string head = "P6\n" + std::to_string(img.width) + " " + std::to_string(img.height) + "\n255\n";
    out.assign(head.begin(), head.end());
    out.insert(out.end(), img.rgb.begin(), img.rgb.end());
  } else if (ends_with_ci(path, ".png")) {
    png_image image;
    std::memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = img.width;
    image.height = img.height;
    image.format = PNG_FORMAT_RGB;
    // The buffer is sized by libpng's bound so the image is compressed once:
    // png_image_write_get_memory_size compresses it a whole extra time (decoder on a Kodak
    // image: 0.53 s -> 0.36 s). PNG_IMAGE_FLAG_FAST would give 0.19 s but files 78% larger.
    png_alloc_size_t size = PNG_IMAGE_PNG_SIZE_MAX(image);
    if (size == 0) throw Error("cannot encode PNG " + path + " (image too large)");
    out.assign(size, 0);
    if (!png_image_write_to_memory(&image, out.data(), &size, 0, img.rgb.data(), 0, nullptr))
      throw Error("cannot encode PNG " + path + " (" + image.message + ")");
    out.resize(size);
  } else {
    throw Error("output file " + path + " must end in .png or .ppm");
  }
  write_file_atomic(path, out);
}

}  // namespace lic::codec
