// Minimal .npy reading/writing for float32 C-order arrays (the tools' exchange format).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "lic/error.hpp"

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

inline Array read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open " + path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    throw Error(path + " is not a .npy file");
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t hlen = 0, off = 0;
  if (major == 1) {
    hlen = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    off = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw Error(path + ": truncated .npy header");
    hlen = 0;
    for (int i = 3; i >= 0; --i)
      hlen = (hlen << 8) | static_cast<unsigned char>(bytes[8 + static_cast<std::size_t>(i)]);
    off = 12;
  } else {
    throw Error(path + ": unsupported .npy version " + std::to_string(major));
  }
  if (hlen > bytes.size() - off) throw Error(path + ": truncated .npy header");
  const std::string header(bytes.data() + off, hlen);
  off += hlen;
  const std::string descr = header_value(header, "descr");
  if (descr != "'<f4'") throw Error(path + ": expected float32 data ('<f4'), got " + descr);
  if (header_value(header, "fortran_order") != "False")
    throw Error(path + ": Fortran-ordered arrays are not supported");
  const std::string shape = header_value(header, "shape");
  Array a;
  long long count = 1;
  std::size_t p = 1;
  while (p < shape.size()) {
    while (p < shape.size() && (shape[p] == ' ' || shape[p] == ',')) ++p;
    if (p >= shape.size() || shape[p] == ')') break;
    if (shape[p] < '0' || shape[p] > '9') throw Error(path + ": malformed npy shape " + shape);
    long long v = 0;
    while (p < shape.size() && shape[p] >= '0' && shape[p] <= '9') {
      v = v * 10 + (shape[p] - '0');
      if (v > (1LL << 40)) throw Error(path + ": absurd npy shape " + shape);
      ++p;
    }
    a.shape.push_back(v);
    count *= v;
    if (count > (1LL << 40)) throw Error(path + ": absurd npy shape " + shape);
  }
  if (static_cast<unsigned long long>(count) * 4 != bytes.size() - off)
    throw Error(path + ": data size does not match shape " + shape);
  a.data.resize(static_cast<std::size_t>(count));
  if (count > 0) std::memcpy(a.data.data(), bytes.data() + off, a.data.size() * 4);
  return a;
}

inline void write(const std::string& path, const std::vector<long long>& shape,
                  const std::vector<float>& data) {
  std::string dims;
  for (long long d : shape) dims += std::to_string(d) + ", ";
  if (shape.size() > 1) dims.erase(dims.size() - 2);  // "(3,)" keeps its comma
  else if (!dims.empty()) dims.erase(dims.size() - 1);
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  if (!f) throw Error("cannot write " + path);
  const unsigned char magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  f.write(reinterpret_cast<const char*>(magic), 8);
  const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                                static_cast<unsigned char>(header.size() >> 8)};
  f.write(reinterpret_cast<const char*>(len), 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  f.write(reinterpret_cast<const char*>(data.data()),
          static_cast<std::streamsize>(data.size() * sizeof(float)));
  if (!f) throw Error("cannot write " + path);
}

}  // namespace npy
}  // namespace lic
