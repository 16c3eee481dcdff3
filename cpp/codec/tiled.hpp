// The codec halves run in tiles within a memory budget: TiledDecoder decodes an image of any
// size the bitstream allows with its working set (latent, tiles, band of rows) under the
// budget; TiledEncoder runs g_a in tiles (the image and the latent are held whole). Both give
// exactly the bytes of a one-piece run (codec/tiling.hpp says why), and with no budget and an
// image within the 1.0 limits they are one tile: the one-piece run itself.
// No file I/O: the C interface (codec/capi/) and the programs use these.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "base/profile.hpp"
#include "codec/core/bitstream.hpp"
#include "codec/core/image.hpp"
#include "codec/core/latent.hpp"
#include "codec/decoder.hpp"
#include "codec/encoder.hpp"
#include "codec/entropy/context_coder.hpp"
#include "codec/tiling.hpp"
#include "lic/runtime.hpp"

namespace lic::codec {

// Address of pixel (y, x) of an HWC tensor.
inline const float* pixel(const lic::Tensor& t, long long y, long long x) {
  return t.data.data() + (size_t(y) * size_t(t.width) + size_t(x)) * size_t(t.channels);
}
inline float* pixel(lic::Tensor& t, long long y, long long x) {
  return t.data.data() + (size_t(y) * size_t(t.width) + size_t(x)) * size_t(t.channels);
}

// Budget used without one for images beyond the 1.0 limits (smaller ones run in one piece).
constexpr size_t kDefaultTiledBudget = size_t{1} << 30;

// 0 means "no budget": one piece for images within the 1.0 limits, kDefaultTiledBudget else.
inline size_t effective_budget(size_t budget, uint64_t width, uint64_t height) {
  if (budget) return budget;
  return within_whole_limits(width, height) ? 0 : kDefaultTiledBudget;
}

// An 8-bit RGB image in the caller's memory: row y starts at rgb + y * stride.
struct ImageView {
  const uint8_t* rgb = nullptr;
  uint32_t width = 0, height = 0;
  size_t stride = 0;
};

struct TilePlan {
  AxisPlan rows, cols;
  size_t bytes = 0;   // the plan's working set
  size_t least = 0;   // the working set of the smallest tiles: the least budget that works
  size_t whole = 0;   // the working set in one piece
  size_t budget = 0;  // the budget it was made for (0: none)
  bool fits = false;  // false: even the smallest tiles exceed the budget
  bool whole_image() const { return rows.tiles.size() == 1 && cols.tiles.size() == 1; }
};

// The tiling of an lh x lw latent whose working set `cost(rows, cols)` fits `budget` (0: no
// limit) with the least computation (windows overlap by the halo). Cost grows with both
// sides of the tiles.
template <class Cost>
TilePlan choose_tiles(const TileGrid& grid, long long lh, long long lw, size_t budget, Cost cost) {
  TilePlan best;
  best.budget = budget;
  best.rows = grid.plan(0, lh, lh);
  best.cols = grid.plan(1, lw, lw);
  best.whole = best.bytes = cost(best.rows, best.cols);
  best.least = cost(grid.plan(0, lh, 1), grid.plan(1, lw, 1));
  if (budget == 0 || best.bytes <= budget) {
    best.fits = true;
    return best;
  }
  double best_work = -1;
  // For every count of tile columns, the tallest tiles that fit.
  long long last_tw = -1;
  for (long long n = 1; n <= lw; ++n) {
    const long long tw = ceil_div(lw, n);
    if (tw == last_tw) continue;
    last_tw = tw;
    const AxisPlan cols = grid.plan(1, lw, tw);
    if (cost(grid.plan(0, lh, 1), cols) > budget) continue;
    long long lo = 1, hi = lh;  // largest fitting interior height in [lo, hi]
    while (lo < hi) {
      const long long mid = lo + (hi - lo + 1) / 2;
      if (cost(grid.plan(0, lh, mid), cols) <= budget) lo = mid; else hi = mid - 1;
    }
    const AxisPlan rows = grid.plan(0, lh, lo);
    const double work = double(rows.tiles.size()) * double(rows.window) *
                        double(cols.tiles.size()) * double(cols.window);
    if (best_work < 0 || work < best_work) {
      best_work = work;
      best.rows = rows;
      best.cols = cols;
      best.bytes = cost(rows, cols);
      best.fits = true;
    }
  }
  return best;
}

// Throws BudgetError unless the plan fits.
inline void require_fit(const TilePlan& p, const std::string& what) {
  if (!p.fits)
    throw BudgetError("the memory budget (" + size_text(double(p.budget)) + ") is too small to " + what +
                      ": it needs at least " + size_text(double(p.least)));
}

// The decoded latent, read one window at a time.
class LatentSource {
 public:
  virtual ~LatentSource() = default;
  // y_hat of latent rows [y0, y0 + h) and columns [x0, x0 + w), HWC.
  virtual lic::Tensor window(long long y0, long long x0, long long h, long long w) const = 0;
  // Rows [r0, r1) of that window (row r at dst.row(r), w * C floats): what a streamed g_s
  // pulls, without the whole window as floats. Called from several threads at once.
  virtual void window_rows(long long y0, long long x0, long long w, int r0, int r1,
                           const lic::RowOut& dst) const = 0;
};

// The context-table coder's integer latent (4 bytes a value, like the float y_hat would be,
// but made without a second copy): de-quantised window by window, as decode() would.
class QuantizedLatent : public LatentSource {
 public:
  QuantizedLatent(Latent q, const ContextTables& t) : q_(std::move(q)), offset_(offsets_of(t)) {}
  lic::Tensor window(long long y0, long long x0, long long h, long long w) const override {
    lic::Tensor t(int(h), int(w), q_.channels);
    const lic::RowOut rows{t.data.data(), 0, std::ptrdiff_t(w) * q_.channels};
    window_rows(y0, x0, w, 0, int(h), rows);
    return t;
  }

  void window_rows(long long y0, long long x0, long long w, int r0, int r1,
                   const lic::RowOut& dst) const override {
    for (int r = r0; r < r1; ++r)
      dequantize_row(q_, offset_.data(), int(y0 + r), size_t(x0), size_t(w), dst.row(r));
  }

 private:
  Latent q_;
  std::vector<float> offset_;
};

// Any other coder's y_hat, held whole.
class WholeLatent : public LatentSource {
 public:
  explicit WholeLatent(lic::Tensor y) : y_(std::move(y)) {}
  lic::Tensor window(long long y0, long long x0, long long h, long long w) const override {
    if (y0 == 0 && x0 == 0 && h == y_.height && w == y_.width) return y_;
    lic::Tensor t(int(h), int(w), y_.channels);
    const size_t row = size_t(w) * size_t(y_.channels);
    for (long long y = 0; y < h; ++y)
      std::memcpy(t.data.data() + size_t(y) * row, pixel(y_, y0 + y, x0), row * sizeof(float));
    return t;
  }

  void window_rows(long long y0, long long x0, long long w, int r0, int r1,
                   const lic::RowOut& dst) const override {
    const size_t row = size_t(w) * size_t(y_.channels);
    for (int r = r0; r < r1; ++r) std::memcpy(dst.row(r), pixel(y_, y0 + r, x0), row * sizeof(float));
  }

 private:
  lic::Tensor y_;
};

// Where decoded rows go: the caller's buffer, or bands handed to a callback.
class RowTarget {
 public:
  virtual ~RowTarget() = default;
  // Whether the target holds a band of rows (3 * width bytes each; counted in the budget).
  virtual bool banded() const = 0;
  virtual void begin_band(uint32_t y0, uint32_t y1) = 0;
  // Row y (3 * width bytes) of the band being made.
  virtual uint8_t* row(uint32_t y) = 0;
  virtual void end_band(uint32_t y0, uint32_t y1) = 0;
};

class TiledDecoder {
 public:
  TiledDecoder(Decoder d, NetGeometry g)
      : dec_(std::move(d)), geo_(std::move(g)), grid_(geo_, 1, dec_.multiple()) {}
  TiledDecoder(const TiledDecoder&) = delete;
  TiledDecoder& operator=(const TiledDecoder&) = delete;

  const Decoder& decoder() const { return dec_; }

  // The container's header, every check of docs/bitstream.md done.
  StreamHeader info(const uint8_t* data, size_t size) const { return dec_.parse(data, size).header; }

  // The de-quantised latent y_hat (h, w, C), what --dump-latent writes.
  lic::Tensor latent(const uint8_t* data, size_t size, int threads) const {
    return dec_.latent(dec_.parse(data, size), threads);
  }

  // The tiling of a decode within `budget` bytes (0: see effective_budget): the latent, the
  // tiles' windows and the runtime's buffers, and with `banded` one band of output rows.
  TilePlan plan(const uint8_t* data, size_t size, int threads, size_t budget, bool banded) const {
    return plan(dec_.parse(data, size).header, threads, budget, banded);
  }

  // Decodes into `out` within `budget` bytes (as plan()).
  void decode(const uint8_t* data, size_t size, int threads, size_t budget, RowTarget& out) const {
    const ParsedStream p = dec_.parse(data, size);
    const StreamHeader& h = p.header;
    const TilePlan plan = this->plan(h, threads, budget, out.banded());
    require_fit(plan, "decode this " + std::to_string(h.width) + "x" + std::to_string(h.height) +
                          " image (the latent alone takes " + size_text(double(latent_bytes(h))) + ")");
    grid_.check(0, plan.rows, "synthesis");
    grid_.check(1, plan.cols, "synthesis");

    const long long m = dec_.multiple();
    const std::unique_ptr<const LatentSource> y = decode_latent(p, threads);
    const lic::Model& g_s = dec_.synthesis();
    const size_t run_bytes = geo_.run_bytes(plan.rows.window, plan.cols.window, threads);
    lic::ProfileScope synthesis("decoder: g_s and pixels");
    for (const AxisTile& r : plan.rows.tiles) {
      const uint32_t y0 = uint32_t(r.a * m), y1 = uint32_t(std::min<long long>(r.b * m, h.height));
      out.begin_band(y0, y1);
      for (const AxisTile& col : plan.cols.tiles) {
        const uint32_t x0 = uint32_t(col.a * m), x1 = uint32_t(std::min<long long>(col.b * m, h.width));
        // The tile's pixels relative to its window's output. A streamed g_s pulls the
        // window's latent rows as it needs them; any other takes the window whole.
        const auto row_at = [&](uint32_t yy) { return out.row(y0 + yy) + size_t(x0) * 3; };
        const uint32_t px = uint32_t(x0 - col.w0 * m), py = uint32_t(y0 - r.w0 * m);
        if (g_s.streamed()) {
          const lic::RowSource source = [&](int r0, int r1, const lic::RowOut& dst) {
            y->window_rows(r.w0, col.w0, plan.cols.window, r0, r1, dst);
          };
          dec_.synthesize_rows(int(plan.rows.window), int(plan.cols.window), source, px, py, x1 - x0,
                               y1 - y0, threads, row_at);
        } else {
          const lic::Tensor win = y->window(r.w0, col.w0, plan.rows.window, plan.cols.window);
          dec_.synthesize(win, px, py, x1 - x0, y1 - y0, threads, row_at);
        }
        // Equal windows reuse the pool's buffers; never let it hold more than one run's.
        if (g_s.kept_bytes() > run_bytes) g_s.release_memory();
      }
      out.end_band(y0, y1);
    }
  }

 private:
  size_t latent_bytes(const StreamHeader& h) const {
    return size_t(dec_.coder().channels()) * h.latent_h * h.latent_w * sizeof(float);
  }

  TilePlan plan(const StreamHeader& h, int threads, size_t budget, bool banded) const {
    const long long lh = h.latent_h, lw = h.latent_w, m = dec_.multiple();
    if (geo_.out_channels() != 3 || geo_.sizes(0, lh).back() < h.height ||
        geo_.sizes(1, lw).back() < h.width)
      throw Error("the synthesis network output does not cover the image");
    const size_t c = size_t(dec_.coder().channels()), latent = latent_bytes(h);
    auto cost = [&](const AxisPlan& rows, const AxisPlan& cols) {
      const long long band_rows = banded ? std::min<long long>(h.height, rows.interior * m) : 0;
      return latent + size_t(rows.window) * size_t(cols.window) * c * sizeof(float) +
             geo_.run_bytes(rows.window, cols.window, threads) + size_t(h.width) * 3 * size_t(band_rows);
    };
    return choose_tiles(grid_, lh, lw, effective_budget(budget, h.width, h.height), cost);
  }

  std::unique_ptr<const LatentSource> decode_latent(const ParsedStream& p, int threads) const {
    const int lh = int(p.header.latent_h), lw = int(p.header.latent_w);
    if (const auto* ctx = dynamic_cast<const ContextTableCoder*>(&dec_.coder())) {
      lic::ProfileScope entropy("decoder: entropy decoding");
      return std::make_unique<QuantizedLatent>(
          ctx->decode_symbols(p.substreams, int(p.header.band_rows), lh, lw, threads,
                              [this] { return !dec_.g_s_being_packed(); }),
          ctx->tables());
    }
    return std::make_unique<WholeLatent>(dec_.latent(p, threads));
  }

  Decoder dec_;
  NetGeometry geo_;
  TileGrid grid_;
};

class TiledEncoder {
 public:
  TiledEncoder(Encoder e, NetGeometry g)
      : enc_(std::move(e)), geo_(std::move(g)), grid_(geo_, enc_.multiple(), 1) {}
  TiledEncoder(const TiledEncoder&) = delete;
  TiledEncoder& operator=(const TiledEncoder&) = delete;

  const Encoder& encoder() const { return enc_; }

  // The tiling of g_a for a width x height image within `budget` bytes (0: see
  // effective_budget): the tiles' windows and the runtime's buffers, and the latent they fill.
  TilePlan plan(uint32_t width, uint32_t height, int threads, size_t budget) const {
    check_image_size(width, height);
    const long long m = enc_.multiple();
    const long long lh = ceil_div(height, m), lw = ceil_div(width, m);
    if (geo_.sizes(0, lh * m).back() != lh || geo_.sizes(1, lw * m).back() != lw)
      throw Error("the analysis network does not downsample by " + std::to_string(m));
    const size_t latent = latent_bytes(width, height);
    auto cost = [&](const AxisPlan& rows, const AxisPlan& cols) {
      const size_t wh = size_t(rows.window * m), ww = size_t(cols.window * m);
      return latent + wh * ww * 3 * sizeof(float) + geo_.run_bytes(wh, ww, threads);
    };
    return choose_tiles(grid_, lh, lw, effective_budget(budget, width, height), cost);
  }

  // g_a in tiles as plan() says, then the latent coder. Bytes equal Encoder::encode's.
  // RDOQ (opt.rdoq.lambda > 0) codes the image in one piece only: an image the plan tiles
  // is refused (the search runs g_s over the whole image, outside the budget).
  EncodeResult encode(const ImageView& img, int threads, size_t budget,
                      const CodingOptions& opt = {}) const {
    const bool rdoq = opt.rdoq.lambda > 0;
    if (rdoq) {
      const std::string refusal = enc_.rdoq_refusal();
      if (!refusal.empty()) throw Error(refusal);
    }
    const TilePlan plan = this->plan(img.width, img.height, threads, budget);
    require_fit(plan, "encode this " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                          " image (the latent alone takes " +
                          size_text(double(latent_bytes(img.width, img.height))) + ")");
    const long long m = enc_.multiple();
    const long long lh = ceil_div(img.height, m), lw = ceil_div(img.width, m);
    const int c = geo_.out_channels();
    grid_.check(0, plan.rows, "analysis");
    grid_.check(1, plan.cols, "analysis");
    const lic::Model& g_a = enc_.analysis();
    if (plan.whole_image() && within_whole_limits(img.width, img.height))  // g_a streamed
      return enc_.encode_rows(img.rgb, img.width, img.height, img.stride, threads, opt);
    if (plan.whole_image() && !rdoq)
      return enc_.encode_latent(img.width, img.height,
                                g_a.run(window(img, 0, 0, lh * m, lw * m), threads), threads, opt);
    if (plan.whole_image()) {  // RDOQ keeps x: the search compares decoded images with it
      const lic::Tensor x = window(img, 0, 0, lh * m, lw * m);
      return enc_.encode_latent(img.width, img.height, g_a.run(x, threads), threads, opt, &x);
    }
    if (rdoq)
      throw Error("RDOQ codes an image in one piece: this " + std::to_string(img.width) + "x" +
                  std::to_string(img.height) + " image needs " +
                  std::to_string(plan.rows.tiles.size() * plan.cols.tiles.size()) +
                  " tiles within the memory budget (a larger budget, or no RDOQ)");

    lic::Tensor y(int(lh), int(lw), c);
    const size_t run_bytes = geo_.run_bytes(plan.rows.window * m, plan.cols.window * m, threads);
    for (const AxisTile& r : plan.rows.tiles)
      for (const AxisTile& col : plan.cols.tiles) {
        const lic::Tensor t = g_a.run(
            window(img, r.w0 * m, col.w0 * m, plan.rows.window * m, plan.cols.window * m), threads);
        if (t.channels != c) throw Error("the analysis network gives an unexpected channel count");
        const size_t n = size_t(col.b - col.a) * size_t(c);
        for (long long yy = r.a; yy < r.b; ++yy)
          std::memcpy(pixel(y, yy, col.a), pixel(t, yy - r.w0, col.a - col.w0),
                      n * sizeof(float));
        if (g_a.kept_bytes() > run_bytes) g_a.release_memory();
      }
    return enc_.encode_latent(img.width, img.height, std::move(y), threads, opt);
  }

 private:
  size_t latent_bytes(uint32_t width, uint32_t height) const {
    const long long m = enc_.multiple();
    return size_t(geo_.out_channels()) * size_t(ceil_div(height, m)) * size_t(ceil_div(width, m)) *
           sizeof(float);
  }

  // x = rgb / 255 of rows [y0, y0 + h) and columns [x0, x0 + w) of the image padded to a
  // multiple of the downsampling factor by repeating its last row and column (what
  // Encoder::encode gives the network).
  static lic::Tensor window(const ImageView& img, long long y0, long long x0, long long h, long long w) {
    lic::Tensor x(int(h), int(w), 3);
    const long long iw = img.width, ih = img.height;
    float* d = x.data.data();
    for (long long yy = y0; yy < y0 + h; ++yy) {
      const uint8_t* row = img.rgb + size_t(std::min(yy, ih - 1)) * img.stride;
      for (long long xx = x0; xx < x0 + w; ++xx) {
        const uint8_t* px = row + size_t(std::min(xx, iw - 1)) * 3;
        for (int ch = 0; ch < 3; ++ch) *d++ = px[ch] / 255.0f;
      }
    }
    return x;
  }

  Encoder enc_;
  NetGeometry geo_;
  TileGrid grid_;
};

}  // namespace lic::codec
