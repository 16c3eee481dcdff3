// The one .npy reader/writer: float32, little-endian, C order (the exchange format of the
// tools and of --dump-latent). Malformed headers are lic::Error, never out-of-bounds reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"

namespace lic {
namespace npy {

struct Array {
  std::vector<long long> shape;
  std::vector<float> data;
};

inline std::string header_value(const std::string& header, const std::string& key) {
  const std::size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) throw Error("npy header lacks '" + key + "'");
  std::size_t p = header.find(':', k);
  if (p == std::string::npos) throw Error("malformed npy header");
  ++p;
  while (p < header.size() && header[p] == ' ') ++p;
  std::size_t e = p;
  if (e < header.size() && header[e] == '(') {
    e = header.find(')', e);
    if (e == std::string::npos) throw Error("malformed npy header");
    ++e;
  } else {
    while (e < header.size() && header[e] != ',' && header[e] != '}') ++e;
  }
  return header.substr(p, e - p);
}

// Parses a whole .npy file held in memory; `name` (the path) prefixes error messages.
inline Array parse(const std::vector<std::uint8_t>& bytes, const std::string& name) {
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    throw Error(name + " is not a .npy file");
  const int major = bytes[6];
  std::size_t hlen = 0, off = 0;
  if (major == 1) {
    hlen = bytes[8] | (std::size_t{bytes[9]} << 8);
    off = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw Error(name + ": truncated .npy header");
    for (int i = 3; i >= 0; --i) hlen = (hlen << 8) | bytes[8 + std::size_t(i)];
    off = 12;
  } else {
    throw Error(name + ": unsupported .npy version " + std::to_string(major));
  }
  if (hlen > bytes.size() - off) throw Error(name + ": truncated .npy header");
  const std::string header(reinterpret_cast<const char*>(bytes.data()) + off, hlen);
  off += hlen;
  const std::string descr = header_value(header, "descr");
  if (descr != "'<f4'") throw Error(name + ": expected float32 data ('<f4'), got " + descr);
  if (header_value(header, "fortran_order") != "False")
    throw Error(name + ": Fortran-ordered arrays are not supported");
  const std::string shape = header_value(header, "shape");
  Array a;
  long long count = 1;
  std::size_t p = 1;
  while (p < shape.size()) {
    while (p < shape.size() && (shape[p] == ' ' || shape[p] == ',')) ++p;
    if (p >= shape.size() || shape[p] == ')') break;
    if (shape[p] < '0' || shape[p] > '9') throw Error(name + ": malformed npy shape " + shape);
    long long v = 0;
    while (p < shape.size() && shape[p] >= '0' && shape[p] <= '9') {
      v = v * 10 + (shape[p] - '0');
      if (v > (1LL << 40)) throw Error(name + ": absurd npy shape " + shape);
      ++p;
    }
    a.shape.push_back(v);
    count *= v;
    if (count > (1LL << 40)) throw Error(name + ": absurd npy shape " + shape);
  }
  if (static_cast<unsigned long long>(count) * 4 != bytes.size() - off)
    throw Error(name + ": data size does not match shape " + shape);
  a.data.resize(static_cast<std::size_t>(count));
  if (count > 0) std::memcpy(a.data.data(), bytes.data() + off, a.data.size() * 4);
  return a;
}

inline Array read(const std::string& path) { return parse(read_file(path), path); }

// The .npy file (version 1.0) of `data` with the given shape.
inline std::vector<std::uint8_t> to_bytes(const std::vector<long long>& shape,
                                          const std::vector<float>& data) {
  std::string dims;
  for (long long d : shape) dims += std::to_string(d) + ", ";
  if (shape.size() > 1) dims.erase(dims.size() - 2);  // "(3,)" keeps its comma
  else if (!dims.empty()) dims.erase(dims.size() - 1);
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::vector<std::uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.push_back(static_cast<std::uint8_t>(header.size() & 0xff));
  out.push_back(static_cast<std::uint8_t>(header.size() >> 8));
  out.insert(out.end(), header.begin(), header.end());
  const std::size_t body = out.size();
  out.resize(body + data.size() * sizeof(float));
  if (!data.empty()) std::memcpy(out.data() + body, data.data(), data.size() * sizeof(float));
  return out;
}

// Written atomically (no partial file on error).
inline void write(const std::string& path, const std::vector<long long>& shape,
                  const std::vector<float>& data) {
  write_file_atomic(path, to_bytes(shape, data));
}

}  // namespace npy
}  // namespace lic
