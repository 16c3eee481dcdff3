// Whole-file reading and atomic writing (temp file + rename: no partial output on error).
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "codec/range_coder.hpp"

namespace lic::codec {

constexpr uint64_t kMaxInputFile = uint64_t{1} << 30;  // 1 GiB: far above any legal input

inline std::vector<uint8_t> read_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw CodecError("cannot open " + path + ": " + std::strerror(errno));
  std::vector<uint8_t> data;
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    if (data.size() + n > kMaxInputFile) {
      std::fclose(f);
      throw CodecError(path + " is too large (over 1 GiB)");
    }
    data.insert(data.end(), buf, buf + n);
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw CodecError("cannot read " + path);
  return data;
}

// Writes to "<path>.tmp<pid-ish>" then renames over `path`.
inline void write_file_atomic(const std::string& path, const std::vector<uint8_t>& data) {
  const std::string tmp = path + ".tmp-lic2cpp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw CodecError("cannot write " + path + ": " + std::strerror(errno));
  const bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    std::remove(tmp.c_str());
    throw CodecError("cannot write " + path + " (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw CodecError("cannot write " + path + ": " + why);
  }
}

inline bool ends_with_ci(const std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i) {
    char a = s[s.size() - suffix.size() + i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != suffix[i]) return false;
  }
  return true;
}

// float32 array in .npy format (version 1.0, little-endian, C order).
inline std::vector<uint8_t> npy_bytes(const std::vector<float>& values, const std::vector<size_t>& shape) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += (i ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dims += ",";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.push_back(static_cast<uint8_t>(header.size() & 0xFF));
  out.push_back(static_cast<uint8_t>(header.size() >> 8));
  out.insert(out.end(), header.begin(), header.end());
  for (float v : values) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    for (int b = 0; b < 4; ++b) out.push_back(static_cast<uint8_t>(u >> (8 * b)));
  }
  return out;
}

// Reads a float32 little-endian C-order .npy (the only kind lic2cpp writes); returns the
// values and fills `shape`. Malformed headers are errors, never out-of-bounds reads.
inline std::vector<float> npy_read_f32(const std::vector<uint8_t>& d, std::vector<size_t>& shape,
                                       const std::string& path) {
  if (d.size() < 10 || std::memcmp(d.data(), "\x93NUMPY", 6) != 0) throw CodecError(path + ": not a .npy file");
  size_t hlen, start;
  if (d[6] == 1) {
    hlen = d[8] | (size_t{d[9]} << 8);
    start = 10;
  } else {
    if (d.size() < 12) throw CodecError(path + ": truncated .npy header");
    hlen = d[8] | (size_t{d[9]} << 8) | (size_t{d[10]} << 16) | (size_t{d[11]} << 24);
    start = 12;
  }
  if (hlen > d.size() - start) throw CodecError(path + ": truncated .npy header");
  const std::string header(d.begin() + static_cast<std::ptrdiff_t>(start),
                           d.begin() + static_cast<std::ptrdiff_t>(start + hlen));
  if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos)
    throw CodecError(path + ": .npy must be float32 little-endian C-order");
  const size_t open = header.find("'shape': (");
  const size_t close = open == std::string::npos ? open : header.find(')', open);
  if (close == std::string::npos) throw CodecError(path + ": malformed .npy header");
  shape.clear();
  uint64_t count = 1;
  for (size_t i = open + 10; i < close;) {
    while (i < close && (header[i] == ' ' || header[i] == ',')) ++i;
    if (i >= close) break;
    uint64_t v = 0;
    if (header[i] < '0' || header[i] > '9') throw CodecError(path + ": malformed .npy shape");
    while (i < close && header[i] >= '0' && header[i] <= '9') {
      v = v * 10 + static_cast<uint64_t>(header[i++] - '0');
      if (v > (uint64_t{1} << 31)) throw CodecError(path + ": .npy shape too large");
    }
    count *= v;
    if (count > (uint64_t{1} << 31)) throw CodecError(path + ": .npy shape too large");
    shape.push_back(static_cast<size_t>(v));
  }
  const size_t body = start + hlen;
  if ((d.size() - body) != count * 4) throw CodecError(path + ": .npy data size does not match its shape");
  std::vector<float> out(static_cast<size_t>(count));
  if (count) std::memcpy(out.data(), d.data() + body, static_cast<size_t>(count) * 4);
  return out;
}

}  // namespace lic::codec
