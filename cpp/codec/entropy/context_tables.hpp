// The context-table entropy model's integer tables, read from a `.lice` file
// (docs/entropy-model.md). Python (src/lic2cpp/entropy.py) fits and quantises them; this
// reader validates every field so a corrupt table can never make the coder read out of
// bounds. The coder that uses them is entropy/context_coder.hpp.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/bytes.hpp"
#include "base/error.hpp"
#include "base/hash.hpp"
#include "codec/core/range_coder.hpp"

namespace lic::codec {

constexpr int kContexts = 8;
constexpr uint32_t kMaxThreshold = 15;
constexpr uint32_t kMaxAlphabet = 255;  // in-range symbols per channel (plus the escape)
constexpr uint32_t kMaxChannels = 4096;
constexpr int64_t kMaxAbsSymbol = int64_t{1} << 30;

struct ChannelTables {
  float offset = 0;  // q = round(y - offset), y_hat = q + offset
  int32_t mpv = 0;
  int32_t lo = 0;
  uint32_t nsym = 0;  // in-range symbols lo .. lo + nsym - 1; index nsym is the escape
  uint32_t t_nbr = 0;
  uint32_t t_prev = 0;
  // probability (of 2^16) of "every value is mpv"; 0: no activation flag (.lice 1.1)
  uint32_t flag_freq = 0;
  // cdf[k] has nsym + 2 entries for context k (0..7); cdf[kContexts] is the plain table.
  std::vector<uint32_t> cdf[kContexts + 1];
  // Code lengths in bits, -log2(p): bits[k][s] of symbol s in context k (as cdf), and of
  // the flag saying "all mpv" or not. Worked out once here: the encoder adds up the ideal
  // length of every value it codes (two log2 per value took ~2 of the 5 ms it spent
  // entropy coding a Kodak image).
  std::vector<double> bits[kContexts + 1];
  double flag_on_bits = 0, flag_off_bits = 0;
};

// Bits of an event of probability freq / 2^16.
inline double code_length(uint32_t freq) {
  return -std::log2(static_cast<double>(freq) / kProbOne);
}

struct ContextTables {
  std::vector<ChannelTables> channels;
  std::vector<uint32_t> order;  // coding order
  std::vector<int32_t> pred;    // channel coded just before c, or -1
  uint64_t fingerprint = 0;

  int num_channels() const { return static_cast<int>(channels.size()); }

  static ContextTables from_bytes(const uint8_t* data, size_t size) {
    ByteReader head(data, size, "entropy model");
    if (size < 24 || std::memcmp(data, "LICE", 4) != 0)
      throw Error("not an entropy model (bad magic)");
    head.skip(4);
    const uint32_t major = head.u16();
    head.u16();  // minor: compatible additions only
    if (major != 1) throw Error("unsupported entropy model version " + std::to_string(major));
    const uint64_t body_size = head.u64();
    const uint64_t fingerprint = head.u64();
    if (body_size != size - 24) throw Error("entropy model has the wrong size (truncated?)");
    if (fnv1a64(data + 24, size - 24) != fingerprint)
      throw Error("entropy model fingerprint mismatch (corrupt tables)");

    ByteReader r(data + 24, size - 24, "entropy model");
    ContextTables m;
    m.fingerprint = fingerprint;
    const uint32_t count = r.u32();
    const uint32_t prec = r.u32();
    const uint32_t nctx = r.u32();
    if (count < 1 || count > kMaxChannels || prec != kProbBits || nctx != kContexts)
      throw Error("entropy model has an unsupported layout");
    m.order.resize(count);
    std::vector<bool> seen(count, false);
    for (auto& o : m.order) {
      o = r.u32();
      if (o >= count || seen[o]) throw Error("entropy model order is not a permutation");
      seen[o] = true;
    }
    m.pred.assign(count, -1);
    for (uint32_t i = 1; i < count; ++i) m.pred[m.order[i]] = static_cast<int32_t>(m.order[i - 1]);
    m.channels.resize(count);
    for (auto& ch : m.channels) {
      ch.offset = r.f32();
      ch.mpv = r.i32();
      ch.lo = r.i32();
      ch.nsym = r.u32();
      ch.t_nbr = r.u32();
      ch.t_prev = r.u32();
      ch.flag_freq = r.u32();
      const int64_t lo = ch.lo;
      if (!std::isfinite(ch.offset) || ch.nsym < 1 || ch.nsym > kMaxAlphabet || ch.mpv < lo ||
          ch.mpv >= lo + ch.nsym || ch.t_nbr > kMaxThreshold || ch.t_prev > kMaxThreshold ||
          ch.flag_freq >= kProbOne || std::abs(lo) >= kMaxAbsSymbol)
        throw Error("entropy model has an invalid channel record");
      const uint32_t alphabet = ch.nsym + 1;
      for (int k = 0; k <= kContexts; ++k) {
        std::vector<uint32_t>& cdf = ch.cdf[k];
        std::vector<double>& bits = ch.bits[k];
        cdf.assign(alphabet + 1, 0);
        bits.resize(alphabet);
        for (uint32_t s = 0; s < alphabet; ++s) {
          const uint32_t f = r.u16();
          if (f == 0) throw Error("entropy model has a zero probability");
          cdf[s + 1] = cdf[s] + f;
          bits[s] = code_length(f);
        }
        if (cdf[alphabet] != kProbOne) throw Error("entropy model table does not sum to 2^16");
      }
      if (ch.flag_freq != 0) {
        ch.flag_on_bits = code_length(ch.flag_freq);
        ch.flag_off_bits = code_length(kProbOne - ch.flag_freq);
      }
      r.skip((2 * (kContexts + 1) * alphabet) % 4);  // pad to 4 bytes
    }
    if (!r.at_end()) throw Error("entropy model has trailing bytes");
    return m;
  }
};

}  // namespace lic::codec
