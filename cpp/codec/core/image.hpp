// An 8-bit RGB image as a plain struct, and the image size limits of the codec. No file
// format here (PNG/PPM live in codec/io/image_file.hpp, the only user of libpng).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace lic::codec {

struct Image {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3, row-major
};

// Image size limits (documented in docs/bitstream.md). Bitstream 1.1 allows up to 65535
// pixels a side and 2^30 pixels; such images are decoded in tiles within a memory budget
// (codec/tiled.hpp). Images within the limits of 1.0 (16384 a side, 2^24 pixels) are still
// written as 1.0, and are the largest the one-piece encode()/decode() of the halves accept:
// the whole-image transforms' memory grows with the pixel count.
constexpr uint32_t kMaxSide = 65535;
constexpr uint64_t kMaxPixels = uint64_t{1} << 30;  // 1 gigapixel, e.g. 32768 x 32768
constexpr uint32_t kMaxSideWhole = 16384;
constexpr uint64_t kMaxPixelsWhole = uint64_t{1} << 24;  // 16.7 megapixels, e.g. 4096 x 4096

inline bool within_whole_limits(uint64_t width, uint64_t height) {
  return width <= kMaxSideWhole && height <= kMaxSideWhole && width * height <= kMaxPixelsWhole;
}

inline void check_image_size(uint64_t width, uint64_t height, uint64_t max_side = kMaxSide,
                             uint64_t max_pixels = kMaxPixels) {
  if (width < 1 || height < 1) throw Error("image is empty (0 width or height)");
  if (width > max_side || height > max_side || width * height > max_pixels)
    throw Error("image " + std::to_string(width) + "x" + std::to_string(height) +
                " is larger than the limit (" + std::to_string(max_side) + " per side, " +
                std::to_string(max_pixels) + " pixels)");
}

}  // namespace lic::codec
