// The hyperprior latent coder (coding modes 2 and 3, docs/hyperprior.md): the C++ twin of
// src/lic2cpp/hyper.py. Mode 3 (hybrid) codes y with tables fitted on a training set, one
// per (scale index, context of the coded neighbours), instead of the Gaussian CDFs.
//
// Encoder: z = h_a(|y|) (scale) or h_a(y) (mean-scale) in float; qz = round(z - median);
// qz is coded channel by channel in raster order with the bottleneck's CDFs; then
// z_hat = float32(qz) + median, and the int16 h_s (docs/int16.md, exact) gives integer
// scales (and means) for every element of y, cropped top-left to the latent's size. The
// index of a scale q is #{i : threshold[i] < q}; a mean q_m is the float32 q_m * 2^-shift.
// y symbols round(y - mean) follow, channel by channel in raster order, each with the
// Gaussian CDF of its index. The decoder mirrors it. Everything that decides a CDF or an
// offset is integer arithmetic or an exact float operation, so any ISA level, thread
// count or build computes the same indexes and means.
//
// A value outside its table's alphabet is the escape symbol followed by bypass bits, as in
// the context coder (docs/bitstream.md#payload).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "codec/core/bitstream.hpp"
#include "codec/core/latent.hpp"
#include "codec/core/range_coder.hpp"
#include "codec/entropy/escape.hpp"
#include "codec/entropy/hyper_tables.hpp"
#include "codec/entropy/latent_coder.hpp"
#include "lic/runtime.hpp"

namespace lic::codec {

namespace hyper {

// Codes integer v with table t; returns its ideal cost in bits.
inline double encode_value(RangeEncoder& enc, const SymbolCdf& t, int64_t v) {
  const int64_t rel = v - t.lo;
  const bool inside = rel >= 0 && rel < static_cast<int64_t>(t.nsym);
  const uint32_t s = inside ? static_cast<uint32_t>(rel) : t.nsym;
  const uint32_t f = t.cdf[s + 1] - t.cdf[s];
  enc.encode(t.cdf[s], f);
  double bits = -std::log2(static_cast<double>(f) / kProbOne);
  if (!inside) {
    const Escape e = escape_of(v, t.lo, t.nsym);
    encode_escape(enc, e);
    bits += e.bits();
  }
  return bits;
}

inline int64_t decode_value(RangeDecoder& dec, const SymbolCdf& t) {
  const uint32_t s = dec.decode(t.cdf.data(), t.nsym + 1);
  if (s < t.nsym) return static_cast<int64_t>(t.lo) + s;
  const int64_t v = decode_escape(dec, t.lo, t.nsym);
  if (std::llabs(v) >= kMaxHyperSymbol) throw Error("corrupt bitstream (escaped value out of range)");
  return v;
}

inline int32_t round_symbol(float d, const char* what) {
  if (!std::isfinite(d) || std::fabs(d) >= static_cast<float>(kMaxHyperSymbol))
    throw Error(std::string(what) + " has a non-finite or out-of-range value");
  return round_to_int32(d);
}

}  // namespace hyper

// Per element of y (CHW order): the CDF index, and the mean (mean-scale models).
struct HyperParams {
  int channels = 0, height = 0, width = 0;
  std::vector<uint16_t> index;
  std::vector<float> mean;  // empty for a scale hyperprior
};

class HyperpriorCoder : public LatentCoder {
 public:
  // `h_a` (the encoder's float network, .licm) may be null in a decoder; `tables_data`
  // must outlive the coder (the int16 h_s is read from it).
  HyperpriorCoder(const uint8_t* tables_data, size_t tables_size, const uint8_t* h_a,
                  size_t h_a_size)
      : t_(HyperTables::from_bytes(tables_data, tables_size)),
        h_s_(lic::Model::from_bytes(t_.h_s, t_.h_s_size)) {
    if (!h_s_.int16_output())
      throw Error("hyperprior h_s must be an int16 network (ending in DEQUANTIZE)");
    const int out = t_.latent_channels * (t_.mean_scale() ? 2 : 1);
    if (h_s_.in_channels() != t_.hyper_channels || h_s_.out_channels() != out)
      throw Error("hyperprior h_s does not match its tables' channel counts");
    if (h_a) {
      h_a_.emplace(lic::Model::from_bytes(h_a, h_a_size));
      if (h_a_->fingerprint() != t_.ha_fingerprint)
        throw Error("the h_a network is not the one the hyperprior tables were made for");
      if (h_a_->in_channels() != t_.latent_channels || h_a_->out_channels() != t_.hyper_channels)
        throw Error("hyperprior h_a does not match its tables' channel counts");
    }
    // index of every int16 value q: #{i : threshold[i] < q}
    index_of_.resize(65536);
    for (int q = -32768; q <= 32767; ++q) {
      const auto it = std::lower_bound(t_.thresholds.begin(), t_.thresholds.end(), q);
      index_of_[static_cast<size_t>(q + 32768)] = static_cast<uint16_t>(it - t_.thresholds.begin());
    }
  }

  const HyperTables& tables() const { return t_; }
  uint8_t mode() const override { return t_.hybrid() ? kModeHybrid : kModeHyperprior; }
  uint64_t fingerprint() const override { return t_.fingerprint; }
  int channels() const override { return t_.latent_channels; }

  // z's size for a latent of h x w.
  int z_side(int side) const { return (side + static_cast<int>(t_.z_factor) - 1) / static_cast<int>(t_.z_factor); }

  // The indexes and means h_s gives for the z symbols qz (CHW, N x zh x zw), cropped to
  // the latent's h x w.
  HyperParams params(const std::vector<int32_t>& qz, int zh, int zw, int h, int w, int threads) const {
    const int n = t_.hyper_channels, m = t_.latent_channels;
    lic::Tensor z_hat(zh, zw, n);
    for (int c = 0; c < n; ++c)
      for (int i = 0; i < zh * zw; ++i)
        z_hat.data[static_cast<size_t>(i) * n + c] =
            static_cast<float>(qz[static_cast<size_t>(c) * zh * zw + i]) + t_.z_median[c];
    const lic::QTensor q = h_s_.run_int16(z_hat, threads);
    if (q.shift != t_.out_shift) throw Error("hyperprior h_s output shift disagrees with its tables");
    if (q.height < h || q.width < w) throw Error("the hyperprior h_s output does not cover the latent");
    HyperParams p;
    p.channels = m;
    p.height = h;
    p.width = w;
    const size_t hw = static_cast<size_t>(h) * w;
    p.index.resize(static_cast<size_t>(m) * hw);
    if (t_.mean_scale()) p.mean.resize(static_cast<size_t>(m) * hw);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const int16_t* px = q.data.data() + (static_cast<size_t>(y) * q.width + x) * q.channels;
        const size_t at = static_cast<size_t>(y) * w + x;
        for (int c = 0; c < m; ++c) {
          p.index[c * hw + at] = index_of_[static_cast<size_t>(px[c] + 32768)];
          if (!p.mean.empty()) p.mean[c * hw + at] = std::ldexp(static_cast<float>(px[m + c]), -q.shift);
        }
      }
    return p;
  }

  // The z symbols the encoder codes for latent y: round(h_a(|y| or y) - median), CHW.
  std::vector<int32_t> z_symbols(const lic::Tensor& y, int threads) const {
    if (!h_a_) throw Error("this program has no h_a network (hyperprior decoder)");
    if (y.channels != t_.latent_channels) throw Error("latent has the wrong channel count");
    const int n = t_.hyper_channels;
    lic::Tensor in = y;
    if (!t_.mean_scale())
      for (float& v : in.data) v = std::fabs(v);
    const lic::Tensor z = h_a_->run(in, threads);
    const int zh = z_side(y.height), zw = z_side(y.width);
    if (z.height != zh || z.width != zw)
      throw Error("the hyperprior h_a does not downsample by " + std::to_string(t_.z_factor));
    std::vector<int32_t> qz(static_cast<size_t>(n) * zh * zw);
    for (int c = 0; c < n; ++c)
      for (int i = 0; i < zh * zw; ++i)
        qz[static_cast<size_t>(c) * zh * zw + i] =
            hyper::round_symbol(z.data[static_cast<size_t>(i) * n + c] - t_.z_median[c], "z");
    return qz;
  }

  EncodedLatent encode(const lic::Tensor& y, int threads) const override {
    const std::vector<int32_t> qz = z_symbols(y, threads);
    const int h = y.height, w = y.width, n = t_.hyper_channels, m = t_.latent_channels;
    const int zh = z_side(h), zw = z_side(w);
    RangeEncoder enc;
    EncodedLatent r;
    for (int c = 0; c < n; ++c)
      for (int i = 0; i < zh * zw; ++i)
        r.ideal.bits_ctx += hyper::encode_value(enc, t_.z[c], qz[static_cast<size_t>(c) * zh * zw + i]);
    const HyperParams p = params(qz, zh, zw, h, w, threads);
    const size_t hw = static_cast<size_t>(h) * w;
    r.y_hat = lic::Tensor(h, w, m);
    std::vector<int32_t> plane(hw);
    for (int c = 0; c < m; ++c)
      for (size_t i = 0; i < hw; ++i) {
        const float mean = p.mean.empty() ? 0.0f : p.mean[c * hw + i];
        const float v = y.data[i * m + c];
        const int32_t s = hyper::round_symbol(p.mean.empty() ? v : v - mean, "y");
        plane[i] = s;
        r.ideal.bits_ctx += hyper::encode_value(enc, table_of(p, c, i, plane, w), s);
        r.y_hat.data[i * m + c] = p.mean.empty() ? static_cast<float>(s) : static_cast<float>(s) + mean;
      }
    r.ideal.bits_plain = r.ideal.bits_ctx;
    r.payload = enc.finish();
    return r;
  }

  lic::Tensor decode(const uint8_t* payload, size_t size, int height, int width,
                     int threads) const override {
    const int n = t_.hyper_channels, m = t_.latent_channels;
    const int zh = z_side(height), zw = z_side(width);
    RangeDecoder dec(payload, size);
    std::vector<int32_t> qz(static_cast<size_t>(n) * zh * zw);
    for (int c = 0; c < n; ++c)
      for (int i = 0; i < zh * zw; ++i)
        qz[static_cast<size_t>(c) * zh * zw + i] = static_cast<int32_t>(hyper::decode_value(dec, t_.z[c]));
    const HyperParams p = params(qz, zh, zw, height, width, threads);
    const size_t hw = static_cast<size_t>(height) * width;
    lic::Tensor y_hat(height, width, m);
    std::vector<int32_t> plane(hw);
    for (int c = 0; c < m; ++c)
      for (size_t i = 0; i < hw; ++i) {
        const int64_t v = hyper::decode_value(dec, table_of(p, c, i, plane, width));
        plane[i] = static_cast<int32_t>(v);
        const auto s = static_cast<float>(v);
        y_hat.data[i * m + c] = p.mean.empty() ? s : s + p.mean[c * hw + i];
      }
    if (dec.bytes_read() < size) throw Error("corrupt bitstream (unused payload bytes)");
    return y_hat;
  }

 private:
  // The table of element i (raster position in an h x w plane) of channel c: the Gaussian
  // CDF of its index, or (hybrid) the fitted table of its index and context, the context
  // from the channel's symbols already coded (plane[0 .. i)).
  const SymbolCdf& table_of(const HyperParams& p, int c, size_t i, const std::vector<int32_t>& plane,
                            int width) const {
    const size_t hw = static_cast<size_t>(p.height) * p.width;
    const uint16_t index = p.index[c * hw + i];
    if (!t_.hybrid()) return t_.y[index];
    const size_t x = i % static_cast<size_t>(width);
    int64_t sum = 0;
    if (x > 0) sum += std::llabs(static_cast<int64_t>(plane[i - 1]));
    if (i >= static_cast<size_t>(width)) sum += std::llabs(static_cast<int64_t>(plane[i - width]));
    const int ctx = static_cast<int>(std::min<int64_t>(sum, kHybridContexts - 1));
    return t_.fitted[static_cast<size_t>(index) * kHybridContexts + ctx];
  }

  HyperTables t_;
  lic::Model h_s_;
  std::optional<lic::Model> h_a_;
  std::vector<uint16_t> index_of_;
};

}  // namespace lic::codec
