// The bitstream container (docs/bitstream.md, version 1.1): a 40-byte header and the
// range-coded payload. Every header field is checked before anything is allocated.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/bytes.hpp"
#include "base/error.hpp"
#include "base/hash.hpp"
#include "codec/core/image.hpp"

namespace lic::codec {

constexpr uint8_t kBitstreamMajor = 1;
// 1.1 added coding modes 2 and 3 and raised the image size limits: a stream that
// uses neither is written as 1.0, byte for byte what a 1.0 encoder wrote.
constexpr uint8_t kBitstreamMinor = 1;
// Coding modes (the latent coder that wrote the payload, LatentCoder::mode()).
constexpr uint8_t kModeContextTables = 1;  // version 1.0
constexpr uint8_t kModeHyperprior = 2;     // since 1.1 (docs/hyperprior.md)
constexpr uint8_t kModeHybrid = 3;         // since 1.1: hyperprior with fitted y tables

// The minor version a stream is written with: the oldest that has its mode and its size.
inline uint8_t minor_version_of(uint8_t mode, uint32_t width, uint32_t height) {
  return mode == kModeContextTables && within_whole_limits(width, height) ? 0 : 1;
}
constexpr size_t kStreamHeaderSize = 40;
// Largest downsampling factor of an analysis network the codec accepts.
constexpr uint32_t kMaxMultiple = 1024;

struct StreamHeader {
  uint32_t width = 0, height = 0;
  uint32_t channels = 0, latent_h = 0, latent_w = 0;
  uint8_t mode = kModeContextTables;
  uint64_t fingerprint = 0;  // of the model and tables (model_fingerprint())
};

// Fingerprint of a codec: FNV-1a 64 over the three little-endian u64 fingerprints.
inline uint64_t model_fingerprint(uint64_t ga, uint64_t gs, uint64_t tables) {
  uint8_t buf[24];
  const uint64_t v[3] = {ga, gs, tables};
  for (int i = 0; i < 3; ++i)
    for (int b = 0; b < 8; ++b) buf[8 * i + b] = static_cast<uint8_t>(v[i] >> (8 * b));
  return fnv1a64(buf, sizeof buf);
}

inline std::vector<uint8_t> write_bitstream(const StreamHeader& h, const std::vector<uint8_t>& payload) {
  ByteWriter w;
  w.bytes(reinterpret_cast<const uint8_t*>("LICB"), 4);
  w.u8(kBitstreamMajor);
  w.u8(minor_version_of(h.mode, h.width, h.height));
  w.u8(h.mode);
  w.u8(0);
  w.u32(h.width);
  w.u32(h.height);
  w.u16(static_cast<uint16_t>(h.channels));
  w.u16(static_cast<uint16_t>(h.latent_h));
  w.u16(static_cast<uint16_t>(h.latent_w));
  w.u16(0);
  w.u64(h.fingerprint);
  w.u32(static_cast<uint32_t>(payload.size()));
  uint32_t check = fnv1a32(w.data().data(), w.data().size());
  check = fnv1a32(payload.data(), payload.size(), check);
  w.u32(check);
  w.bytes(payload.data(), payload.size());
  return std::move(w.data());
}

struct ParsedStream {
  StreamHeader header;
  const uint8_t* payload = nullptr;
  size_t payload_size = 0;
};

// Validates the container; `multiple` is the network's downsampling factor, `channels`,
// `fingerprint` and `mode` those of this decoder.
inline ParsedStream parse_bitstream(const uint8_t* data, size_t size, uint32_t multiple,
                                    uint32_t channels, uint64_t fingerprint, uint8_t mode) {
  if (size == 0) throw Error("empty bitstream");
  if (size < 4 || std::memcmp(data, "LICB", 4) != 0)
    throw Error("not a lic2cpp bitstream (bad magic)");
  if (size < kStreamHeaderSize) throw Error("truncated bitstream (incomplete header)");
  ByteReader r(data, size, "bitstream");
  r.skip(4);
  const uint8_t major = r.u8();
  r.u8();  // minor: compatible additions only
  if (major != kBitstreamMajor)
    throw Error("unsupported bitstream version " + std::to_string(major));
  ParsedStream p;
  StreamHeader& h = p.header;
  h.mode = r.u8();
  r.u8();
  h.width = r.u32();
  h.height = r.u32();
  h.channels = r.u16();
  h.latent_h = r.u16();
  h.latent_w = r.u16();
  r.u16();
  h.fingerprint = r.u64();
  const uint32_t payload_size = r.u32();
  const uint32_t check = r.u32();
  if (payload_size != size - kStreamHeaderSize)
    throw Error(payload_size > size - kStreamHeaderSize ? "truncated bitstream (payload shorter than its header says)"
                                                       : "bitstream has trailing bytes");
  uint32_t actual = fnv1a32(data, kStreamHeaderSize - 4);
  actual = fnv1a32(data + kStreamHeaderSize, payload_size, actual);
  if (actual != check) throw Error("corrupt bitstream (checksum mismatch)");
  if (h.fingerprint != fingerprint)
    throw Error("bitstream was made by another model (fingerprint mismatch)");
  if (h.mode != mode) throw Error("unknown coding mode " + std::to_string(h.mode));
  check_image_size(h.width, h.height);
  if (h.channels != channels || h.latent_h != (h.height + multiple - 1) / multiple ||
      h.latent_w != (h.width + multiple - 1) / multiple)
    throw Error("bitstream latent shape does not match the image size and model");
  p.payload = data + kStreamHeaderSize;
  p.payload_size = payload_size;
  return p;
}

}  // namespace lic::codec
