// png_tool: the decoder's PNG writer (codec/io/png_encode.hpp) on any image, checked by
// reading the file back with libpng (codec/io/image_file.hpp's reader).
//
//   png_tool IN.ppm OUT.png THREADS
// Writes OUT.png with THREADS threads, reads it back and exits 1 with a one-line error if
// the pixels differ. Prints one JSON line: the file size and the number of IDAT chunks.
//   png_tool --read IN OUT.ppm
// Reads any image as the encoder does (PNG: the libdeflate fast path where it applies,
// libpng otherwise) and writes its pixels as PPM; a bad file is a one-line error.
//   png_tool --deflate IN OUT
// The bytes of IN as one final Huffman-only deflate block (codec/io/deflate_huffman.hpp),
// raw deflate data in OUT.
//   png_tool --code-lengths LIMIT F0 F1 ...
// The optimal code lengths of at most LIMIT bits for those frequencies, as a JSON list.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "codec/io/deflate_huffman.hpp"
#include "codec/io/image_file.hpp"

using namespace lic::codec;

int main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[1]) == "--code-lengths") {
    std::vector<uint32_t> freq;
    for (int i = 3; i < argc; ++i) freq.push_back(static_cast<uint32_t>(std::strtoul(argv[i], nullptr, 10)));
    std::vector<uint8_t> len(freq.size());
    huffman_only::optimal_code_lengths(freq.data(), static_cast<int>(freq.size()), std::atoi(argv[2]), len.data());
    std::printf("[");
    for (size_t i = 0; i < len.size(); ++i) std::printf("%s%d", i ? ", " : "", len[i]);
    std::printf("]\n");
    return 0;
  }
  if (argc == 4 && std::string(argv[1]) == "--deflate") {
    try {
      const std::vector<uint8_t> in = lic::read_file(argv[2]);
      std::vector<uint8_t> out;
      huffman_only::BitWriter w(out);
      huffman_only::write_huffman_block(w, in.data(), in.size(), true);
      w.align();
      lic::write_file_atomic(argv[3], out);
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "png_tool: error: %s\n", e.what());
      return 1;
    }
  }
  if (argc == 4 && std::string(argv[1]) == "--read") {
    try {
      write_image(argv[3], read_image(argv[2]));
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "png_tool: error: %s\n", e.what());
      return 1;
    }
  }
  if (argc != 4) {
    std::fprintf(stderr, "usage: png_tool IN.ppm OUT.png THREADS\n");
    return 2;
  }
  try {
    const Image img = read_image(argv[1]);
    write_image(argv[2], img, std::atoi(argv[3]));
    const Image back = read_image(argv[2]);
    if (back.width != img.width || back.height != img.height || back.rgb != img.rgb)
      throw lic::Error("libpng reads other pixels back");
    const std::vector<uint8_t> file = lic::read_file(argv[2]);
    int idat = 0;
    for (size_t pos = 8; pos + 8 <= file.size();) {  // walk the chunks
      const uint32_t n = uint32_t(file[pos]) << 24 | uint32_t(file[pos + 1]) << 16 |
                         uint32_t(file[pos + 2]) << 8 | file[pos + 3];
      idat += std::memcmp(&file[pos + 4], "IDAT", 4) == 0;
      pos += 12 + size_t(n);
    }
    std::printf("{\"bytes\": %zu, \"idat\": %d}\n", file.size(), idat);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "png_tool: error: %s\n", e.what());
    return 1;
  }
}
