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

// Image size limits (documented in docs/bitstream.md): memory of the transforms grows with
// the pixel count, so the count is capped as well as each side.
constexpr uint32_t kMaxSide = 16384;
constexpr uint64_t kMaxPixels = uint64_t{1} << 24;  // 16.7 megapixels, e.g. 4096 x 4096

inline void check_image_size(uint64_t width, uint64_t height) {
  if (width < 1 || height < 1) throw Error("image is empty (0 width or height)");
  if (width > kMaxSide || height > kMaxSide || width * height > kMaxPixels)
    throw Error("image " + std::to_string(width) + "x" + std::to_string(height) +
                " is larger than the limit (" + std::to_string(kMaxSide) + " per side, " +
                std::to_string(kMaxPixels) + " pixels)");
}

}  // namespace lic::codec
