// Writing an image file row band by row band, for images too large to hold whole
// (`decoder --max-memory`): binary PPM, or PNG deflated with zlib as the rows come (every
// row Paeth-filtered, one zlib stream split into IDAT chunks). The file goes to
// "<path>.tmp-lic2cpp" and is renamed by finish(); an error or an unfinished writer leaves
// no output file.
#pragma once

#include <zlib.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"

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
    // Level 1 with run-length matching only: decoded images are smooth, and after the Paeth
    // filter their residuals are runs of small values.
    if (deflateInit2(&z_, 1, Z_DEFLATED, 15, 8, Z_RLE) != Z_OK) {
      close_and_remove();
      throw Error("cannot write " + path + " (zlib initialisation failed)");
    }
    z_ready_ = true;
    prev_.assign(size_t(width) * 3, 0);
    filtered_.resize(size_t(width) * 3 + 1);
    out_.resize(kChunk);
  }

  ~RowWriter() {
    if (z_ready_) deflateEnd(&z_);
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
      filtered_[0] = 4;  // Paeth
      for (size_t k = 0; k < n; ++k) {
        const int a = k >= 3 ? row[k - 3] : 0, b = prev_[k], c = k >= 3 ? prev_[k - 3] : 0;
        const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
        const int pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
        filtered_[k + 1] = static_cast<uint8_t>(row[k] - pred);
      }
      std::memcpy(prev_.data(), row, n);
      deflate_some(filtered_.data(), filtered_.size(), Z_NO_FLUSH);
    }
    next_row_ += rows;
  }

  // Ends the file and renames it over the output path.
  void finish() {
    if (next_row_ != height_) throw Error("image rows missing");
    if (png_) {
      deflate_some(nullptr, 0, Z_FINISH);
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
  static constexpr size_t kChunk = size_t{1} << 18;  // IDAT chunk size

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

  void deflate_some(const uint8_t* data, size_t n, int flush) {
    z_.next_in = const_cast<Bytef*>(data);
    z_.avail_in = static_cast<uInt>(n);
    for (;;) {
      z_.next_out = out_.data() + pending_;
      z_.avail_out = static_cast<uInt>(out_.size() - pending_);
      const int rc = deflate(&z_, flush);
      if (rc == Z_STREAM_ERROR) throw Error("cannot write " + path_ + " (zlib error)");
      pending_ = out_.size() - z_.avail_out;
      if (pending_ == out_.size() || (rc == Z_STREAM_END && pending_ > 0)) {
        chunk("IDAT", out_.data(), pending_);
        pending_ = 0;
      }
      if (flush == Z_FINISH ? rc == Z_STREAM_END : (z_.avail_in == 0 && z_.avail_out > 0)) break;
    }
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
  z_stream z_{};
  bool z_ready_ = false;
  std::vector<uint8_t> prev_, filtered_, out_;
  size_t pending_ = 0;
  uint32_t next_row_ = 0;
};

}  // namespace lic::codec
