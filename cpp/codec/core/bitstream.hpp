// The bitstream container (docs/bitstream.md): a 40-byte header and the payload. Versions:
// 1.0 = coding mode 1, one range-coded stream; 1.1 = 1.0 plus modes 2/3 and the larger
// size limits; 2.0 = 1.1's header and modes plus, for mode 1, the latent coded in bands of
// `band_rows` latent rows, one independent sub-stream each after a table of their sizes (so
// they are coded and decoded in parallel). A stream is written with the oldest version that
// can express it: one band is a 1.x stream, byte for byte. Decoders read all three. Every
// header field is checked before anything is allocated.
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

constexpr uint8_t kBitstreamMajor = 2;  // the newest version this code reads and writes
constexpr uint8_t kBitstreamMinor = 0;
constexpr uint8_t kOldestMajor = 1;  // 1.x: one stream, no size table
// Latent rows per band the encoder uses unless told otherwise: on Kodak, bands of 16 rows
// cost +0.24% in rate (the first row of a band has no "up" context, and each band has
// its flags, its flush and a size entry) against one stream, bands of 8 +0.5%.
constexpr uint32_t kDefaultBandRows = 16;
constexpr uint32_t kMaxBandRows = 65535;
// Coding modes (the latent coder that wrote the payload, LatentCoder::mode()).
constexpr uint8_t kModeContextTables = 1;  // version 1.0; in bands since 2.0
constexpr uint8_t kModeHyperprior = 2;     // since 1.1 (docs/hyperprior.md); never banded
constexpr uint8_t kModeHybrid = 3;         // since 1.1: hyperprior with fitted y tables

// The version a stream is written with: the oldest that has its mode, its size and its
// layout (major 2 only for a mode-1 latent in more than one band).
inline void version_of(uint8_t mode, uint32_t width, uint32_t height, size_t bands,
                       uint8_t& major, uint8_t& minor) {
  if (bands > 1) {
    major = 2;
    minor = 0;
    return;
  }
  major = 1;
  minor = mode == kModeContextTables && within_whole_limits(width, height) ? 0 : 1;
}
constexpr size_t kStreamHeaderSize = 40;
// Largest downsampling factor of an analysis network the codec accepts.
constexpr uint32_t kMaxMultiple = 1024;

struct StreamHeader {
  uint32_t width = 0, height = 0;
  uint32_t channels = 0, latent_h = 0, latent_w = 0;
  uint8_t mode = kModeContextTables;
  uint64_t fingerprint = 0;  // of the model and tables (model_fingerprint())
  uint8_t version_major = kBitstreamMajor, version_minor = kBitstreamMinor;
  uint32_t band_rows = 0;  // latent rows per sub-stream (1.x: latent_h)
};

// Sub-streams of a payload: band b covers latent rows [b * band_rows, (b + 1) * band_rows).
inline uint32_t band_count(uint32_t latent_h, uint32_t band_rows) {
  return (latent_h + band_rows - 1) / band_rows;
}

struct Substream {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

// Fingerprint of a codec: FNV-1a 64 over the three little-endian u64 fingerprints.
inline uint64_t model_fingerprint(uint64_t ga, uint64_t gs, uint64_t tables) {
  uint8_t buf[24];
  const uint64_t v[3] = {ga, gs, tables};
  for (int i = 0; i < 3; ++i)
    for (int b = 0; b < 8; ++b) buf[8 * i + b] = static_cast<uint8_t>(v[i] >> (8 * b));
  return fnv1a64(buf, sizeof buf);
}

// Header and payload. Several sub-streams (2.0): the sizes of every sub-stream but the last
// (u32 each; the last takes the rest), then the sub-streams in band order. One sub-stream
// (1.x): the payload is that stream, and the band-height field stays 0.
inline std::vector<uint8_t> write_bitstream(const StreamHeader& h,
                                            const std::vector<std::vector<uint8_t>>& substreams) {
  if (substreams.empty() ||
      (substreams.size() > 1 &&
       (h.mode != kModeContextTables || h.band_rows < 1 || h.band_rows > kMaxBandRows ||
        substreams.size() != band_count(h.latent_h, h.band_rows))))
    throw Error("internal error: sub-streams do not match the band height");
  uint8_t major = 0, minor = 0;
  version_of(h.mode, h.width, h.height, substreams.size(), major, minor);
  ByteWriter table;
  size_t payload_size = 4 * (substreams.size() - 1);
  for (size_t b = 0; b < substreams.size(); ++b) {
    if (b + 1 < substreams.size()) table.u32(static_cast<uint32_t>(substreams[b].size()));
    payload_size += substreams[b].size();
  }
  if (payload_size > 0xFFFFFFFFu) throw Error("bitstream payload too large");
  ByteWriter w;
  w.bytes(reinterpret_cast<const uint8_t*>("LICB"), 4);
  w.u8(major);
  w.u8(minor);
  w.u8(h.mode);
  w.u8(0);
  w.u32(h.width);
  w.u32(h.height);
  w.u16(static_cast<uint16_t>(h.channels));
  w.u16(static_cast<uint16_t>(h.latent_h));
  w.u16(static_cast<uint16_t>(h.latent_w));
  w.u16(static_cast<uint16_t>(major >= 2 ? h.band_rows : 0));
  w.u64(h.fingerprint);
  w.u32(static_cast<uint32_t>(payload_size));
  uint32_t check = fnv1a32(w.data().data(), w.data().size());
  check = fnv1a32(table.data().data(), table.data().size(), check);
  for (const auto& sub : substreams) check = fnv1a32(sub.data(), sub.size(), check);
  w.u32(check);
  w.bytes(table.data().data(), table.data().size());
  for (const auto& sub : substreams) w.bytes(sub.data(), sub.size());
  return std::move(w.data());
}

struct ParsedStream {
  StreamHeader header;
  const uint8_t* payload = nullptr;
  size_t payload_size = 0;
  std::vector<Substream> substreams;  // one per band
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
  const uint8_t minor = r.u8();  // compatible additions only
  if (major < kOldestMajor || major > kBitstreamMajor)
    throw Error("unsupported bitstream version " + std::to_string(major) + " (this decoder reads " +
                std::to_string(kOldestMajor) + ".x to " + std::to_string(kBitstreamMajor) + ".x)");
  ParsedStream p;
  StreamHeader& h = p.header;
  h.version_major = major;
  h.version_minor = minor;
  h.mode = r.u8();
  r.u8();
  h.width = r.u32();
  h.height = r.u32();
  h.channels = r.u16();
  h.latent_h = r.u16();
  h.latent_w = r.u16();
  h.band_rows = r.u16();  // 1.x: reserved (0)
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
  if (major == 1) {
    h.band_rows = h.latent_h;
    p.substreams.push_back(Substream{p.payload, payload_size});
    return p;
  }
  // 2.0 bands only the context-table mode; the hyperprior modes stay 1.1 streams.
  if (h.mode != kModeContextTables)
    throw Error("corrupt bitstream (coding mode " + std::to_string(h.mode) + " in a 2.0 stream)");
  if (h.band_rows < 1) throw Error("corrupt bitstream (band height 0)");
  // At most latent_h bands, and the table is checked against the payload before use.
  const uint32_t bands = band_count(h.latent_h, h.band_rows);
  const size_t table = 4 * size_t{bands - 1};
  if (table > payload_size) throw Error("truncated bitstream (sub-stream table)");
  ByteReader t(p.payload, payload_size, "bitstream");
  size_t pos = table;
  for (uint32_t b = 0; b < bands; ++b) {
    const size_t n = b + 1 < bands ? t.u32() : payload_size - pos;
    if (n > payload_size - pos) throw Error("corrupt bitstream (sub-stream sizes exceed the payload)");
    p.substreams.push_back(Substream{p.payload + pos, n});
    pos += n;
  }
  return p;
}

}  // namespace lic::codec
