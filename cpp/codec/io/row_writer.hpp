// Writing an image file row band by row band, for images too large to hold whole
// (`decoder --max-memory`): binary PPM, or PNG deflated as the rows come, with the pieces
// of the whole-image writer (png_encode.hpp): every row Paeth-filtered, the filtered rows
// gathered into blocks of about kBlockBytes, each one Huffman-only deflate block of one
// zlib stream split into IDAT chunks. The file goes to
// "<path>.tmp-lic2cpp" and is renamed by finish(); an error or an unfinished writer leaves
// no output file.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "codec/io/deflate_huffman.hpp"
#include "codec/io/png_encode.hpp"

namespace lic::codec {

class RowWriter {
 public:
  // The format follows the extension (.png or .ppm, any case).
  RowWriter(const std::string& path, uint32_t width, uint32_t height)
      : path_(path), tmp_(path + ".tmp-lic2cpp"), width_(width), height_(height) {
    png_ = ends_with_ci(path, ".png");
    if (!png_ && !ends_with_ci(path, ".ppm"))
      throw Error("output file " + path + " must end in .png or .ppm");
    file_ = std::fopen(tmp_.c_str(), "wb");
    if (!file_) throw Error("cannot write " + path + ": " + std::strerror(errno));
    if (!png_) {
      const std::string head = "P6\n" + std::to_string(width) + " " + std::to_string(height) + "\n255\n";
      put(head.data(), head.size());
      return;
    }
    static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    put(kSignature, 8);
    uint8_t ihdr[13] = {};
    be32(ihdr, width);
    be32(ihdr + 4, height);
    ihdr[8] = 8;  // bit depth
    ihdr[9] = 2;  // colour type: RGB
    chunk("IHDR", ihdr, sizeof ihdr);
    prev_.assign(size_t(width) * 3, 0);
    filtered_.reserve(std::max(kBlockBytes, size_t(width) * 3 + 1));
    z_ = {0x78, 0x01};  // zlib header: deflate, 32K window, fastest
  }

  ~RowWriter() {
    if (file_) close_and_remove();
  }
  RowWriter(const RowWriter&) = delete;
  RowWriter& operator=(const RowWriter&) = delete;

  // Rows [first, first + rows) (rows must come in order), row i at rgb + i * stride.
  void write_rows(const uint8_t* rgb, size_t stride, uint32_t first, uint32_t rows) {
    if (first != next_row_ || rows > height_ - next_row_) throw Error("rows given out of order");
    const size_t n = size_t(width_) * 3;
    for (uint32_t i = 0; i < rows; ++i) {
      const uint8_t* row = rgb + size_t(i) * stride;
      if (!png_) {
        put(row, n);
        continue;
      }
      const size_t at = filtered_.size();
      filtered_.resize(at + n + 1);
      filtered_[at] = 4;  // Paeth
      png::paeth_row(row, prev_.data(), filtered_.data() + at + 1, n);
      std::memcpy(prev_.data(), row, n);
      if (filtered_.size() >= kBlockBytes) deflate_block(false);
    }
    next_row_ += rows;
  }

  // Ends the file and renames it over the output path.
  void finish() {
    if (next_row_ != height_) throw Error("image rows missing");
    if (png_) {
      deflate_block(true);
      bits_.align();
      for (int sh = 24; sh >= 0; sh -= 8) z_.push_back(static_cast<uint8_t>(adler_ >> sh));
      write_idat();
      chunk("IEND", nullptr, 0);
    }
    FILE* f = file_;
    file_ = nullptr;
    if (std::fclose(f) != 0) {
      std::remove(tmp_.c_str());
      throw Error("cannot write " + path_ + " (disk full?)");
    }
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      const std::string why = std::strerror(errno);
      std::remove(tmp_.c_str());
      throw Error("cannot write " + path_ + ": " + why);
    }
  }

 private:
  static constexpr size_t kBlockBytes = size_t{1} << 20;  // filtered bytes per deflate block

  static void be32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  }

  void put(const void* data, size_t n) {
    if (n && std::fwrite(data, 1, n, file_) != n) throw Error("cannot write " + path_ + " (disk full?)");
  }

  void chunk(const char* type, const uint8_t* data, size_t n) {
    uint8_t head[8];
    be32(head, static_cast<uint32_t>(n));
    std::memcpy(head + 4, type, 4);
    put(head, 8);
    put(data, n);
    uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(type), 4);
    if (n) crc = crc32(crc, data, static_cast<uInt>(n));
    uint8_t tail[4];
    be32(tail, static_cast<uint32_t>(crc));
    put(tail, 4);
  }

  // The gathered rows as one deflate block (the stream's last with `final`), its whole
  // bytes written out as IDAT chunks.
  void deflate_block(bool final) {
    adler_ = adler32(adler_, filtered_.data(), static_cast<uInt>(filtered_.size()));
    huffman_only::write_huffman_block(bits_, filtered_.data(), filtered_.size(), final);
    filtered_.clear();
    write_idat();
  }

  void write_idat() {
    for (size_t pos = 0; pos < z_.size(); pos += png::kMaxChunk)
      chunk("IDAT", z_.data() + pos, std::min(png::kMaxChunk, z_.size() - pos));
    z_.clear();
  }

  void close_and_remove() {
    std::fclose(file_);
    file_ = nullptr;
    std::remove(tmp_.c_str());
  }

  std::string path_, tmp_;
  uint32_t width_, height_;
  bool png_ = false;
  FILE* file_ = nullptr;
  std::vector<uint8_t> prev_, filtered_;
  std::vector<uint8_t> z_;  // deflate data not yet written (whole bytes)
  huffman_only::BitWriter bits_{z_};
  uLong adler_ = adler32(0L, nullptr, 0);
  uint32_t next_row_ = 0;
};

}  // namespace lic::codec
