// Whole-file reading and atomic writing (temp file + rename: no partial output on error).
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/pages.hpp"

namespace lic {

constexpr std::uint64_t kMaxInputFile = std::uint64_t{1} << 30;  // 1 GiB: far above any legal input

inline std::vector<std::uint8_t> read_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error("cannot open " + path + ": " + std::strerror(errno));
  std::vector<std::uint8_t> data;
  // A file whose size is known is read straight into a buffer of that size; the loop
  // below then finds its end (or reads what was added since, or all of a pipe).
  long size = -1;
  if (std::fseek(f, 0, SEEK_END) == 0) size = std::ftell(f);
  if (std::fseek(f, 0, SEEK_SET) != 0) size = -1;
  if (size > 0 && static_cast<std::uint64_t>(size) <= kMaxInputFile) {
    resize_populated(data, static_cast<std::size_t>(size));
    data.resize(std::fread(data.data(), 1, data.size(), f));
  }
  std::uint8_t buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    if (data.size() + n > kMaxInputFile) {
      std::fclose(f);
      throw Error(path + " is too large (over 1 GiB)");
    }
    data.insert(data.end(), buf, buf + n);
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw Error("cannot read " + path);
  return data;
}

// A run of bytes of a file being written (write_file_atomic of pieces).
struct FilePiece {
  const std::uint8_t* data;
  std::size_t size;
};

// Writes the pieces, in order, to "<path>.tmp-lic2cpp", then renames it over `path`.
inline void write_file_atomic(const std::string& path, const std::vector<FilePiece>& pieces) {
  const std::string tmp = path + ".tmp-lic2cpp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error("cannot write " + path + ": " + std::strerror(errno));
  bool ok = true;
  for (const FilePiece& p : pieces)
    ok = ok && (p.size == 0 || std::fwrite(p.data, 1, p.size, f) == p.size);
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    std::remove(tmp.c_str());
    throw Error("cannot write " + path + " (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw Error("cannot write " + path + ": " + why);
  }
}

// Writes `data` to "<path>.tmp-lic2cpp" then renames it over `path`.
inline void write_file_atomic(const std::string& path, const std::vector<std::uint8_t>& data) {
  write_file_atomic(path, std::vector<FilePiece>{{data.data(), data.size()}});
}

// Case-insensitive suffix test for file names (`suffix` in lower case).
inline bool ends_with_ci(const std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size()) return false;
  for (std::size_t i = 0; i < suffix.size(); ++i) {
    char a = s[s.size() - suffix.size() + i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != suffix[i]) return false;
  }
  return true;
}

}  // namespace lic
