// The context-table latent coder (coding mode 1): codes the quantised latent with the
// tables of a .lice file (the C++ twin of EntropyModel.estimate_bits in
// src/lic2cpp/entropy.py; docs/entropy-model.md). ContextTableCoder, at the end, is its
// LatentCoder implementation; the free functions are what it and the tests use.
//
// The latent is coded in bands of latent rows, each an independent range-coded sub-stream
// (bitstream 2.0), so bands are coded and decoded in parallel; a 1.x stream is one band of
// every row. Within a band, channels are coded in the model's order. Per channel: the
// activation flag (binary, symbol 1 = "every value of the channel in this band is mpv",
// probability flag_freq / 2^16; absent when flag_freq is 0, .lice 1.1); unless set, every
// value of the band in raster order with the table of its context
//   ctx = [|left - mpv| > t_nbr] + 2 [|up - mpv| > t_nbr] + 4 [|prev - mpv_prev| > t_prev]
// (a missing neighbour or predecessor counts as not active; the band's first row has no
// "up" neighbour). A 1.0 stream is one band of every row. A value outside the channel's
// alphabet is coded as the escape symbol followed by bypass bits: 1 bit side (1 = below),
// 5 bits n - 1, then the n - 1 low bits of (distance + 1), n = its bit length.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "codec/core/bitstream.hpp"
#include "codec/core/latent.hpp"
#include "codec/core/range_coder.hpp"
#include "codec/entropy/context_rate.hpp"
#include "codec/entropy/context_tables.hpp"
#include "codec/entropy/escape.hpp"
#include "codec/entropy/latent_coder.hpp"
#include "lic/parallel.hpp"
#include "lic/tensor.hpp"

namespace lic::codec {

namespace detail {

inline bool active(int32_t v, int32_t mpv, uint32_t t) {
  return std::llabs(static_cast<long long>(v) - mpv) > static_cast<long long>(t);
}

// Context of value (c, y, x) in a band whose first row is y0.
inline int context_of(const Latent& lat, const ContextTables& m, int c, int y, int x, int y0) {
  const ChannelTables& ch = m.channels[c];
  int ctx = 0;
  if (x > 0 && active(lat.at(c, y, x - 1), ch.mpv, ch.t_nbr)) ctx |= 1;
  if (y > y0 && active(lat.at(c, y - 1, x), ch.mpv, ch.t_nbr)) ctx |= 2;
  const int p = m.pred[c];
  if (p >= 0 && active(lat.at(p, y, x), m.channels[p].mpv, ch.t_prev)) ctx |= 4;
  return ctx;
}

}  // namespace detail

inline void check_latent(const Latent& lat, const ContextTables& m) {
  if (lat.channels != m.num_channels())
    throw Error("latent has " + std::to_string(lat.channels) + " channels, the entropy model " +
                     std::to_string(m.num_channels()));
  for (int32_t v : lat.q)
    if (std::llabs(static_cast<long long>(v)) >= kMaxAbsSymbol)
      throw Error("latent value out of the codable range");
}

// Codes latent rows [y0, y1) (all rows by default) as one sub-stream; returns the ideal code
// lengths under the same tables.
inline CodeLength encode_latent(const Latent& lat, const ContextTables& m, RangeEncoder& enc,
                                int y0 = 0, int y1 = -1) {
  if (y1 < 0) {
    check_latent(lat, m);
    y1 = lat.height;
  }
  CodeLength len;
  const int h = lat.height, w = lat.width;
  for (uint32_t c : m.order) {
    const ChannelTables& ch = m.channels[c];
    bool all_mpv = ch.flag_freq != 0;  // a channel without a flag codes every value
    for (size_t i = static_cast<size_t>(y0) * w; i < static_cast<size_t>(y1) * w && all_mpv; ++i)
      all_mpv = lat.q[static_cast<size_t>(c) * h * w + i] == ch.mpv;
    const uint32_t f_off = kProbOne - ch.flag_freq;
    if (ch.flag_freq == 0) {
      // no flag to code
    } else if (all_mpv) {
      enc.encode(f_off, ch.flag_freq);
      len.bits_ctx += ch.flag_on_bits;
    } else {
      enc.encode(0, f_off);
      len.bits_ctx += ch.flag_off_bits;
    }
    for (int y = y0; y < y1; ++y) {
      for (int x = 0; x < w; ++x) {
        const int64_t v = lat.at(c, y, x);
        const int64_t rel = v - ch.lo;
        const bool inside = rel >= 0 && rel < static_cast<int64_t>(ch.nsym);
        const uint32_t s = inside ? static_cast<uint32_t>(rel) : ch.nsym;
        double extra = 0;
        Escape e;
        if (!inside) {
          e = escape_of(v, ch.lo, ch.nsym);
          extra = e.bits();
        }
        len.bits_plain += ch.bits[kContexts][s] + extra;
        if (all_mpv) continue;
        const int k = detail::context_of(lat, m, c, y, x, y0);
        const auto& cdf = ch.cdf[k];
        enc.encode(cdf[s], cdf[s + 1] - cdf[s]);
        len.bits_ctx += ch.bits[k][s] + extra;
        if (!inside) encode_escape(enc, e);
      }
    }
  }
  return len;
}

// Decodes latent rows [y0, y1) of `lat` (allocated by the caller) from one sub-stream;
// every decoded value is range-checked.
inline void decode_band(RangeDecoder& dec, const ContextTables& m, Latent& lat, int y0, int y1) {
  const int height = lat.height, width = lat.width;
  for (uint32_t c : m.order) {
    const ChannelTables& ch = m.channels[c];
    int32_t* plane = lat.q.data() + static_cast<size_t>(c) * height * width;
    if (ch.flag_freq != 0 && dec.decode_binary(kProbOne - ch.flag_freq) == 1) {
      for (size_t i = static_cast<size_t>(y0) * width; i < static_cast<size_t>(y1) * width; ++i)
        plane[i] = ch.mpv;
      continue;
    }
    for (int y = y0; y < y1; ++y) {
      for (int x = 0; x < width; ++x) {
        const auto& cdf = ch.cdf[detail::context_of(lat, m, c, y, x, y0)];
        const uint32_t s = dec.decode(cdf.data(), ch.nsym + 1);
        int64_t v;
        if (s < ch.nsym) {
          v = static_cast<int64_t>(ch.lo) + s;
        } else {
          v = decode_escape(dec, ch.lo, ch.nsym);
          if (std::llabs(v) >= kMaxAbsSymbol) throw Error("corrupt bitstream (escaped value out of range)");
        }
        plane[static_cast<size_t>(y) * width + x] = static_cast<int32_t>(v);
      }
    }
  }
}

// Decodes a latent of the given shape coded as one stream (a 1.0 payload).
inline Latent decode_latent(RangeDecoder& dec, const ContextTables& m, int height, int width) {
  Latent lat;
  lat.channels = m.num_channels();
  lat.height = height;
  lat.width = width;
  lat.q.assign(static_cast<size_t>(lat.channels) * height * width, 0);
  decode_band(dec, m, lat, 0, height);
  return lat;
}

// q = round_half_even(y - offset) in float32, as ContextTables.symbols does; y is read at
// y[c * c_stride + (row * width + col) * px_stride] so both CHW and HWC work. A row at a time
// (threads take rows), each channel's values of the row in turn: the row's values stay in
// cache, where a channel's values over the whole image (px_stride floats apart) did not.
// A value that is not finite or not below kMaxAbsSymbol in magnitude is an error naming its
// channel (the lowest of the first such row, whatever the thread count).
inline Latent quantize(const float* y, int channels, int height, int width, size_t c_stride,
                       size_t px_stride, const ContextTables& m, int threads = 1) {
  if (channels != m.num_channels())
    throw Error("latent has " + std::to_string(channels) + " channels, the entropy model " +
                     std::to_string(m.num_channels()));
  Latent lat;
  lat.channels = channels;
  lat.height = height;
  lat.width = width;
  const size_t w = static_cast<size_t>(width), plane = static_cast<size_t>(height) * w;
  lat.q.resize(static_cast<size_t>(channels) * plane);
  const float limit = static_cast<float>(kMaxAbsSymbol);
  lic::parallel_for(height, threads, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r)
      for (int c = 0; c < channels; ++c) {
        const float offset = m.channels[static_cast<size_t>(c)].offset;
        const float* src = y + c * c_stride + static_cast<size_t>(r) * w * px_stride;
        int32_t* dst = lat.q.data() + static_cast<size_t>(c) * plane + static_cast<size_t>(r) * w;
        bool ok = true;
        for (size_t x = 0; x < w; ++x) {
          const float d = src[x * px_stride] - offset;
          ok &= std::fabs(d) < limit;  // false for NaN and the infinities too
          dst[x] = round_to_int32(d);  // only kept when the whole row is valid
        }
        if (!ok)
          throw Error("latent has a non-finite or out-of-range value (channel " + std::to_string(c) + ")");
      }
  });
  return lat;
}

// Columns [x0, x0 + w) of row y of the de-quantised latent y_hat = q + offset[c] (float32)
// into out, HWC (w pixels of lat.channels floats). Pixel by pixel, its channels in turn:
// each pixel's floats are written in order while the channel planes are read in step (one
// cache line per channel in use). Channel by channel, every value went to a line of its
// own, into a window buffer not in cache: the decoder's de-quantisation of kodim07's
// latent took 1.4-2.1 ms that way, 0.9-1.3 ms this way (5 runs each, 1 and 2 threads).
inline void dequantize_row(const Latent& lat, const float* offset, int y, size_t x0, size_t w,
                           float* out) {
  const size_t c_n = static_cast<size_t>(lat.channels);
  const size_t plane = static_cast<size_t>(lat.height) * static_cast<size_t>(lat.width);
  const int32_t* q = lat.q.data() + static_cast<size_t>(y) * static_cast<size_t>(lat.width) + x0;
  for (size_t x = 0; x < w; ++x, out += c_n)
    for (size_t c = 0; c < c_n; ++c) out[c] = static_cast<float>(q[c * plane + x]) + offset[c];
}

inline std::vector<float> offsets_of(const ContextTables& m) {
  std::vector<float> offset;
  for (const ChannelTables& c : m.channels) offset.push_back(c.offset);
  return offset;
}

// Rows [y0, y1) of the de-quantised latent into out (HWC, the whole latent's layout).
inline void dequantize_rows(const Latent& lat, const ContextTables& m, int y0, int y1, float* out) {
  const std::vector<float> offset = offsets_of(m);
  const size_t row = static_cast<size_t>(lat.width) * static_cast<size_t>(lat.channels);
  for (int y = y0; y < y1; ++y)
    dequantize_row(lat, offset.data(), y, 0, static_cast<size_t>(lat.width), out + static_cast<size_t>(y) * row);
}

// De-quantised latent y_hat = q + offset (float32), HWC.
inline std::vector<float> dequantize_hwc(const Latent& lat, const ContextTables& m) {
  std::vector<float> out(lat.q.size());
  dequantize_rows(lat, m, 0, lat.height, out.data());
  return out;
}

class ContextTableCoder : public LatentCoder {
 public:
  explicit ContextTableCoder(ContextTables tables)
      : tables_(std::move(tables)), rate_(tables_) {}
  static std::unique_ptr<ContextTableCoder> from_bytes(const uint8_t* data, size_t size) {
    return std::make_unique<ContextTableCoder>(ContextTables::from_bytes(data, size));
  }

  const ContextTables& tables() const { return tables_; }
  uint8_t mode() const override { return kModeContextTables; }
  uint64_t fingerprint() const override { return tables_.fingerprint; }
  int channels() const override { return tables_.num_channels(); }

  bool codes_bands() const override { return true; }

  // One stream of every row (a 1.x payload).
  EncodedLatent encode(const lic::Tensor& y, int threads) const override {
    EncodedBands b = code_bands(quantize(y), y.height, threads, true);
    EncodedLatent r;
    r.payload = std::move(b.substreams[0]);
    r.ideal = b.ideal;
    r.y_hat = std::move(b.y_hat);
    return r;
  }

  EncodedBands encode_bands(lic::Tensor y, int band_rows, int threads,
                            bool want_y_hat) const override {
    const Latent lat = lic::codec::quantize(y.data.data(), y.channels, y.height, y.width, 1,
                                            static_cast<size_t>(y.channels), tables_, threads);
    y = lic::Tensor();  // quantised: its memory can go
    return code_bands(lat, band_rows, threads, want_y_hat);
  }

  const LatentRate* rate() const override { return &rate_; }

  Latent quantize(const lic::Tensor& y) const override {
    return lic::codec::quantize(y.data.data(), y.channels, y.height, y.width, 1,
                                static_cast<size_t>(y.channels), tables_);
  }

  lic::Tensor dequantize(const Latent& q) const override {
    lic::Tensor y(q.height, q.width, q.channels);
    y.data = dequantize_hwc(q, tables_);
    return y;
  }

  EncodedBands encode_symbols(const Latent& q, int band_rows, int threads,
                              bool want_y_hat) const override {
    return code_bands(q, band_rows, threads, want_y_hat);
  }

  lic::Tensor decode(const uint8_t* payload, size_t size, int height, int width,
                     int threads) const override {
    return decode_bands({Substream{payload, size}}, height, height, width, threads,
                        [] { return true; });
  }

  lic::Tensor decode_bands(const std::vector<Substream>& substreams, int band_rows, int height,
                           int width, int threads,
                           const std::function<bool()>& helpers_may_start) const override {
    const Latent lat = decode_symbols(substreams, band_rows, height, width, threads, helpers_may_start);
    lic::Tensor y;
    y.height = height;
    y.width = width;
    y.channels = lat.channels;
    y.data.resize(lic::Tensor::checked_size(height, width, lat.channels));
    lic::parallel_for(height, threads, [&](int y0, int y1) {
      dequantize_rows(lat, tables_, y0, y1, y.data.data());
    });
    return y;
  }

  // The quantised latent of a payload's sub-streams, what decode_bands() de-quantises (tiled
  // decoding keeps this form and de-quantises one window at a time: y_hat = float(q) +
  // offset). The bands are decoded in parallel, handed out one at a time: the caller starts
  // at once, the other threads once helpers_may_start() (lic::parallel_each). A corrupt
  // payload reports its first bad band, whatever the thread count.
  Latent decode_symbols(
      const std::vector<Substream>& substreams, int band_rows, int height, int width, int threads,
      const std::function<bool()>& helpers_may_start = [] { return true; }) const {
    if (band_rows < 1 || substreams.size() != band_count(static_cast<uint32_t>(height),
                                                         static_cast<uint32_t>(band_rows)))
      throw Error("corrupt bitstream (sub-streams do not match the latent height)");
    Latent lat;
    lat.channels = tables_.num_channels();
    lat.height = height;
    lat.width = width;
    lat.q.resize(static_cast<size_t>(lat.channels) * height * width);  // all decoded below
    lic::parallel_each(
        static_cast<int>(substreams.size()), threads,
        [&](int b) {
          const Substream& sub = substreams[static_cast<size_t>(b)];
          const int y0 = b * band_rows, y1 = std::min(height, (b + 1) * band_rows);
          RangeDecoder dec(sub.data, sub.size);
          decode_band(dec, tables_, lat, y0, y1);
          if (dec.bytes_read() < sub.size) throw Error("corrupt bitstream (unused payload bytes)");
        },
        helpers_may_start);
    return lat;
  }

 private:
  // Codes the bands of `band_rows` rows in parallel (each its own range coder).
  EncodedBands code_bands(const Latent& lat, int band_rows, int threads, bool want_y_hat) const {
    check_latent(lat, tables_);
    const int bands = static_cast<int>(band_count(static_cast<uint32_t>(lat.height),
                                                  static_cast<uint32_t>(band_rows)));
    EncodedBands r;
    r.substreams.resize(static_cast<size_t>(bands));
    if (want_y_hat) {
      r.y_hat.height = lat.height;
      r.y_hat.width = lat.width;
      r.y_hat.channels = lat.channels;
      r.y_hat.data.resize(lic::Tensor::checked_size(lat.height, lat.width, lat.channels));
    }
    std::vector<CodeLength> lens(static_cast<size_t>(bands));
    lic::parallel_for(bands, threads, [&](int b0, int b1) {
      for (int b = b0; b < b1; ++b) {
        const int y0 = b * band_rows, y1 = std::min(lat.height, (b + 1) * band_rows);
        RangeEncoder enc;
        lens[static_cast<size_t>(b)] = encode_latent(lat, tables_, enc, y0, y1);
        r.substreams[static_cast<size_t>(b)] = enc.finish();
        if (want_y_hat) dequantize_rows(lat, tables_, y0, y1, r.y_hat.data.data());
      }
    });
    for (const CodeLength& l : lens) {  // summed in band order: the same for any thread count
      r.ideal.bits_ctx += l.bits_ctx;
      r.ideal.bits_plain += l.bits_plain;
    }
    return r;
  }

  ContextTables tables_;
  ContextRate rate_;
};

}  // namespace lic::codec
