// Little-endian byte reading (bounds-checked) and writing: the one reader of every
// lic2cpp file format (.licm, .lice, the bitstream). A read past the end throws
// lic::Error, never reads out of bounds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace lic {

class ByteReader {
 public:
  // `name` names the data in error messages ("model file", "bitstream"); reading starts
  // at `pos`.
  ByteReader(const std::uint8_t* data, std::size_t size, const char* name, std::size_t pos = 0)
      : data_(data), size_(size), pos_(pos), name_(name) {}

  std::size_t pos() const { return pos_; }
  std::size_t remaining() const { return size_ - pos_; }
  bool at_end() const { return pos_ == size_; }
  const std::uint8_t* here() const { return data_ + pos_; }

  // Throws unless `n` more bytes are there. `field`, when given, says what was being read:
  // "<name> truncated while reading <field>"; otherwise "<name> is truncated".
  void need(std::size_t n, const std::string& field = std::string()) const {
    if (n > size_ - pos_)
      throw Error(field.empty() ? std::string(name_) + " is truncated"
                                : std::string(name_) + " truncated while reading " + field);
  }
  void skip(std::size_t n, const std::string& field = std::string()) {
    need(n, field);
    pos_ += n;
  }

  std::uint8_t u8(const std::string& field = std::string()) {
    return static_cast<std::uint8_t>(get(1, field));
  }
  std::uint16_t u16(const std::string& field = std::string()) {
    return static_cast<std::uint16_t>(get(2, field));
  }
  std::uint32_t u32(const std::string& field = std::string()) {
    return static_cast<std::uint32_t>(get(4, field));
  }
  std::uint64_t u64(const std::string& field = std::string()) { return get(8, field); }
  std::int32_t i32(const std::string& field = std::string()) {
    const std::uint32_t v = u32(field);
    std::int32_t out;
    std::memcpy(&out, &v, 4);
    return out;
  }
  float f32(const std::string& field = std::string()) {
    const std::uint32_t v = u32(field);
    float out;
    std::memcpy(&out, &v, 4);
    return out;
  }

 private:
  std::uint64_t get(std::size_t n, const std::string& field) {
    need(n, field);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{data_[pos_ + i]} << (8 * i);
    pos_ += n;
    return v;
  }

  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_;
  const char* name_;
};

class ByteWriter {
 public:
  void u8(std::uint8_t v) { put(v, 1); }
  void u16(std::uint16_t v) { put(v, 2); }
  void u32(std::uint32_t v) { put(v, 4); }
  void u64(std::uint64_t v) { put(v, 8); }
  void bytes(const std::uint8_t* p, std::size_t n) { out_.insert(out_.end(), p, p + n); }
  std::vector<std::uint8_t>& data() { return out_; }

 private:
  void put(std::uint64_t v, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  std::vector<std::uint8_t> out_;
};

}  // namespace lic
