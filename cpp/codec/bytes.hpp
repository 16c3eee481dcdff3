// Little-endian byte reading/writing with bounds checks, and the FNV-1a hashes of the formats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "codec/range_coder.hpp"

namespace lic::codec {

inline uint64_t fnv1a64(const uint8_t* data, size_t size, uint64_t h = 0xcbf29ce484222325ull) {
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 0x100000001b3ull;
  return h;
}

inline uint32_t fnv1a32(const uint8_t* data, size_t size, uint32_t h = 0x811c9dc5u) {
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 0x01000193u;
  return h;
}

class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size, const char* what)
      : data_(data), size_(size), what_(what) {}

  void skip(size_t n) { need(n), pos_ += n; }
  uint8_t u8() { return static_cast<uint8_t>(get(1)); }
  uint16_t u16() { return static_cast<uint16_t>(get(2)); }
  uint32_t u32() { return static_cast<uint32_t>(get(4)); }
  uint64_t u64() { return get(8); }
  int32_t i32() {
    const uint32_t v = u32();
    int32_t out;
    std::memcpy(&out, &v, 4);
    return out;
  }
  float f32() {
    const uint32_t v = u32();
    float out;
    std::memcpy(&out, &v, 4);
    return out;
  }
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  bool at_end() const { return pos_ == size_; }

 private:
  void need(size_t n) const {
    if (n > size_ - pos_) throw CodecError(std::string(what_) + " is truncated");
  }
  uint64_t get(size_t n) {
    need(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t{data_[pos_ + i]} << (8 * i);
    pos_ += n;
    return v;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const char* what_;
};

class ByteWriter {
 public:
  void u8(uint8_t v) { put(v, 1); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void bytes(const uint8_t* p, size_t n) { out_.insert(out_.end(), p, p + n); }
  std::vector<uint8_t>& data() { return out_; }

 private:
  void put(uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

}  // namespace lic::codec
