// The hyperprior tables (`.lich`, docs/hyperprior.md#file-format): the entropy
// bottleneck's CDFs for z, the Gaussian conditional's CDFs for y, the integer scale
// thresholds and the int16 h_s network (a .licm 1.1 file, run by lic::Model). Python
// (src/lic2cpp/hyper.py) writes them; this reader validates every field so a corrupt file
// can never make the coder read out of bounds.
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

constexpr uint32_t kHyperScale = 1;      // ScaleHyperprior: h_a(|y|), M scales
constexpr uint32_t kHyperMeanScale = 2;  // MeanScaleHyperprior: h_a(y), M scales then M means
constexpr uint32_t kMaxHyperChannels = 4096;
constexpr uint32_t kMaxScales = 1024;
constexpr uint32_t kMaxTableSymbols = 1u << 15;
constexpr uint32_t kMaxHyperFactor = 64;
constexpr int64_t kMaxHyperSymbol = int64_t{1} << 30;
// Hybrid coding (mode 3): y with fitted tables per (scale index, context), context =
// min(|left| + |up|, kHybridContexts - 1) of the coded neighbours in the same channel.
constexpr int kHybridContexts = 6;
constexpr uint32_t kMaxHybridSymbols = 255;

// One quantised CDF: in-range symbols lo .. lo + nsym - 1, index nsym is the escape;
// cdf has nsym + 2 entries, cdf[0] = 0, cdf[nsym + 1] = 2^16, strictly increasing.
struct SymbolCdf {
  int32_t lo = 0;
  uint32_t nsym = 0;
  std::vector<uint32_t> cdf;
};

struct HyperTables {
  uint32_t kind = 0;
  int latent_channels = 0;  // M
  int hyper_channels = 0;   // N
  uint32_t z_factor = 0;    // z is ceil(latent side / z_factor) (h_a's downsampling)
  uint64_t ha_fingerprint = 0;
  uint64_t fingerprint = 0;
  std::vector<float> z_median;
  std::vector<SymbolCdf> z;  // per channel of z
  std::vector<SymbolCdf> y;  // per scale index
  int32_t out_shift = 0;     // shift of h_s's int16 output
  std::vector<int32_t> thresholds;  // index of q = #{i : thresholds[i] < q}
  const uint8_t* h_s = nullptr;     // the int16 .licm, inside the caller's buffer
  size_t h_s_size = 0;
  // Hybrid (version 1.1, optional): fitted[i * kHybridContexts + k] is the table of scale
  // index i in context k; all contexts of an index share lo and nsym.
  std::vector<SymbolCdf> fitted;

  int num_scales() const { return static_cast<int>(y.size()); }
  bool hybrid() const { return !fitted.empty(); }
  bool mean_scale() const { return kind == kHyperMeanScale; }

  // `data` must outlive the tables (h_s points into it).
  static HyperTables from_bytes(const uint8_t* data, size_t size) {
    if (size < 24 || std::memcmp(data, "LICH", 4) != 0)
      throw Error("not a hyperprior tables file (bad magic)");
    ByteReader head(data, size, "hyperprior tables");
    head.skip(4);
    const uint32_t major = head.u16();
    head.u16();  // minor: compatible additions only
    if (major != 1) throw Error("unsupported hyperprior tables version " + std::to_string(major));
    const uint64_t body_size = head.u64();
    const uint64_t fp = head.u64();
    if (body_size != size - 24) throw Error("hyperprior tables have the wrong size (truncated?)");
    if (fnv1a64(data + 24, size - 24) != fp)
      throw Error("hyperprior tables fingerprint mismatch (corrupt tables)");
    ByteReader r(data + 24, size - 24, "hyperprior tables");
    HyperTables t;
    t.fingerprint = fp;
    t.kind = r.u32();
    const uint32_t m = r.u32(), n = r.u32(), prec = r.u32();
    t.z_factor = r.u32();
    t.ha_fingerprint = r.u64();
    if ((t.kind != kHyperScale && t.kind != kHyperMeanScale) || prec != kProbBits || m < 1 ||
        m > kMaxHyperChannels || n < 1 || n > kMaxHyperChannels || t.z_factor < 1 ||
        t.z_factor > kMaxHyperFactor)
      throw Error("hyperprior tables have an unsupported layout");
    t.latent_channels = static_cast<int>(m);
    t.hyper_channels = static_cast<int>(n);
    for (uint32_t c = 0; c < n; ++c) {
      const float med = r.f32();
      if (!std::isfinite(med)) throw Error("hyperprior tables have a non-finite median");
      t.z_median.push_back(med);
      t.z.push_back(read_cdf(r));
    }
    const uint32_t count = r.u32();
    if (count < 1 || count > kMaxScales) throw Error("hyperprior tables have an invalid number of scales");
    for (uint32_t i = 0; i < count; ++i) t.y.push_back(read_cdf(r));
    t.out_shift = r.i32();
    if (t.out_shift < -32 || t.out_shift > 32) throw Error("hyperprior tables have an invalid shift");
    t.thresholds.resize(count - 1);
    for (auto& v : t.thresholds) v = r.i32();
    for (size_t i = 1; i < t.thresholds.size(); ++i)
      if (t.thresholds[i] < t.thresholds[i - 1]) throw Error("hyperprior scale thresholds are not sorted");
    const uint32_t net = r.u32();
    r.need(net, "h_s");
    t.h_s = r.here();
    t.h_s_size = net;
    r.skip(net);
    r.skip((4 - net % 4) % 4);
    if (!r.at_end()) {  // 1.1: the hybrid's fitted tables
      if (r.u32() != static_cast<uint32_t>(kHybridContexts))
        throw Error("hyperprior tables have an unsupported hybrid layout");
      for (uint32_t i = 0; i < count; ++i) {
        const int32_t lo = r.i32();
        const uint32_t nsym = r.u32();
        if (nsym < 1 || nsym > kMaxHybridSymbols || std::llabs(lo) >= kMaxHyperSymbol)
          throw Error("hyperprior tables have an invalid fitted table");
        for (int k = 0; k < kHybridContexts; ++k) t.fitted.push_back(read_freqs(r, lo, nsym, false));
        r.skip((2 * size_t{nsym + 1} * kHybridContexts) % 4);
      }
    }
    if (!r.at_end()) throw Error("hyperprior tables have trailing bytes");
    return t;
  }

 private:
  static SymbolCdf read_cdf(ByteReader& r) {
    const int32_t lo = r.i32();
    const uint32_t nsym = r.u32();
    if (nsym < 1 || nsym > kMaxTableSymbols || std::llabs(lo) >= kMaxHyperSymbol)
      throw Error("hyperprior tables have an invalid CDF record");
    return read_freqs(r, lo, nsym, true);
  }

  // nsym + 1 u16 frequencies (each >= 1, summing to 2^16), padded to 4 bytes if `pad`.
  static SymbolCdf read_freqs(ByteReader& r, int32_t lo, uint32_t nsym, bool pad) {
    SymbolCdf s;
    s.lo = lo;
    s.nsym = nsym;
    const uint32_t alphabet = s.nsym + 1;
    r.need(2 * size_t{alphabet}, "a CDF");
    s.cdf.assign(alphabet + 1, 0);
    for (uint32_t k = 0; k < alphabet; ++k) {
      const uint32_t f = r.u16();
      if (f == 0) throw Error("hyperprior tables have a zero probability");
      s.cdf[k + 1] = s.cdf[k] + f;
    }
    if (s.cdf[alphabet] != kProbOne) throw Error("hyperprior table does not sum to 2^16");
    if (pad) r.skip((2 * alphabet) % 4);
    return s;
  }
};

}  // namespace lic::codec
