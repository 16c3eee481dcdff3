// libFuzzer target: the encoder's image readers (PNG through libpng's simplified API,
// binary PPM by hand), from file bytes to RGB pixels.
//
// Properties: a file is read or refused with lic::Error (a one-line message naming the
// file); an image that is read has 1..16384 pixels per side, at most 2^24 pixels, and
// exactly width x height x 3 bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "codec/io/image_file.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::uint8_t> bytes(data, data + size);
  try {
    const lic::codec::Image img = lic::codec::decode_image(bytes, "fuzz.png");
    const std::uint64_t w = img.width, h = img.height;
    if (w < 1 || h < 1 || w > 16384 || h > 16384 || w * h > (std::uint64_t{1} << 24))
      fuzz::fail("image outside the size limits was read");
    if (img.rgb.size() != w * h * 3) fuzz::fail("pixel buffer does not match the size");
  } catch (const lic::Error& e) {
    const std::string msg = e.what();
    if (msg.rfind("fuzz.png: ", 0) != 0 || msg.find('\n') != std::string::npos)
      fuzz::fail("error message does not name the file on one line");
  }
  return 0;
}
