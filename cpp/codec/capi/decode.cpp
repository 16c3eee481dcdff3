// The C interface's decoding half: the latent coder and g_s (in tiles within the budget).
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "codec/capi/context.hpp"
#include "codec/capi/embedded.hpp"
#include "codec/capi/halves.hpp"
#include "codec/capi/lic2cpp.h"
#include "codec/tiled.hpp"

namespace lic::codec {
namespace {

const TiledDecoder& decoder_of(lic2cpp_codec* c) {
  if (!c->decoder) c->decoder = make_decoder(embedded_decoder(), c->threads);
  return *c->decoder;
}

void check_stream_args(const uint8_t* data, size_t size) {
  require(data != nullptr || size == 0, "no bitstream (NULL data)");
}

// Rows straight into the caller's buffer.
class BufferTarget : public RowTarget {
 public:
  BufferTarget(uint8_t* rgb, size_t stride) : rgb_(rgb), stride_(stride) {}
  bool banded() const override { return false; }
  void begin_band(uint32_t, uint32_t) override {}
  uint8_t* row(uint32_t y) override { return rgb_ + size_t(y) * stride_; }
  void end_band(uint32_t, uint32_t) override {}

 private:
  uint8_t* rgb_;
  size_t stride_;
};

// Bands of rows handed to the caller's callback.
class CallbackTarget : public RowTarget {
 public:
  CallbackTarget(uint32_t width, lic2cpp_rows_callback fn, void* user)
      : row_bytes_(size_t(width) * 3), fn_(fn), user_(user) {}
  bool banded() const override { return true; }
  void begin_band(uint32_t y0, uint32_t y1) override {
    band_.resize(size_t(y1 - y0) * row_bytes_);
    y0_ = y0;
  }
  uint8_t* row(uint32_t y) override { return band_.data() + size_t(y - y0_) * row_bytes_; }
  void end_band(uint32_t y0, uint32_t y1) override {
    if (fn_(user_, band_.data(), row_bytes_, y0, y1 - y0) != 0)
      throw ApiError(LIC2CPP_ABORTED, "decoding stopped by the row callback");
  }

 private:
  size_t row_bytes_;
  lic2cpp_rows_callback fn_;
  void* user_;
  std::vector<uint8_t> band_;
  uint32_t y0_ = 0;
};

}  // namespace
}  // namespace lic::codec

extern "C" {

LIC2CPP_API lic2cpp_status lic2cpp_load_decoder(lic2cpp_codec* codec) {
  return lic::codec::guarded(codec, LIC2CPP_INTERNAL, [&] {
    const lic::codec::TiledDecoder& dec = lic::codec::decoder_of(codec);
    if (codec->threads <= 1) dec.decoder().synthesis();  // else packed on a thread of its own
  });
}

LIC2CPP_API uint64_t lic2cpp_model_fingerprint(void) {
  const lic::codec::Embedded e = lic::codec::embedded_decoder();
  uint64_t tables = 0;  // the .lice header's fingerprint, bytes 16..23 (docs/entropy-model.md)
  for (int b = 0; b < 8 && e.tables_size >= 24; ++b) tables |= uint64_t(e.tables[16 + b]) << (8 * b);
  return lic::codec::model_fingerprint(e.ga_fingerprint, e.gs_fingerprint, tables);
}

LIC2CPP_API lic2cpp_status lic2cpp_get_info(lic2cpp_codec* codec, const uint8_t* data,
                                            size_t size, uint32_t* width, uint32_t* height) {
  using namespace lic::codec;
  return guarded(codec, LIC2CPP_BAD_BITSTREAM, [&] {
    require(width != nullptr && height != nullptr, "no place for the size (NULL width or height)");
    check_stream_args(data, size);
    const StreamHeader h = decoder_of(codec).info(data, size);
    *width = h.width;
    *height = h.height;
  });
}

LIC2CPP_API lic2cpp_status lic2cpp_decode(lic2cpp_codec* codec, const uint8_t* data,
                                          size_t size, uint8_t* rgb, size_t stride,
                                          size_t capacity) {
  using namespace lic::codec;
  return guarded(codec, LIC2CPP_BAD_BITSTREAM, [&] {
    require(rgb != nullptr, "no output buffer (NULL rgb)");
    check_stream_args(data, size);
    const TiledDecoder& dec = decoder_of(codec);
    const StreamHeader h = dec.info(data, size);
    require(stride >= size_t(h.width) * 3, "stride is smaller than 3 * width");
    if (capacity / stride < size_t(h.height) - 1 ||
        capacity - (size_t(h.height) - 1) * stride < size_t(h.width) * 3)
      throw ApiError(LIC2CPP_BUFFER_TOO_SMALL,
                     "the output buffer (" + std::to_string(capacity) + " bytes) is too small for a " +
                         std::to_string(h.width) + "x" + std::to_string(h.height) + " image");
    BufferTarget out(rgb, stride);
    dec.decode(data, size, codec->threads, budget_of(codec), out);
  });
}

LIC2CPP_API lic2cpp_status lic2cpp_decode_rows(lic2cpp_codec* codec, const uint8_t* data,
                                               size_t size, lic2cpp_rows_callback callback,
                                               void* user) {
  using namespace lic::codec;
  return guarded(codec, LIC2CPP_BAD_BITSTREAM, [&] {
    require(callback != nullptr, "no row callback (NULL)");
    check_stream_args(data, size);
    const TiledDecoder& dec = decoder_of(codec);
    CallbackTarget out(dec.info(data, size).width, callback, user);
    dec.decode(data, size, codec->threads, budget_of(codec), out);
  });
}

LIC2CPP_API lic2cpp_status lic2cpp_plan_decode(lic2cpp_codec* codec, const uint8_t* data,
                                               size_t size, lic2cpp_plan* plan) {
  using namespace lic::codec;
  return guarded(codec, LIC2CPP_BAD_BITSTREAM, [&] {
    require(plan != nullptr, "no place for the plan (NULL)");
    check_stream_args(data, size);
    *plan = lic2cpp_plan{};
    const TiledDecoder& dec = decoder_of(codec);
    const TilePlan p = dec.plan(data, size, codec->threads, budget_of(codec), true);
    plan->least = p.least;
    plan->whole = p.whole;
    plan->budget = p.budget;
    const StreamHeader h = dec.info(data, size);
    require_fit(p, "decode this " + std::to_string(h.width) + "x" + std::to_string(h.height) + " image");
    plan->tiles_down = uint32_t(p.rows.tiles.size());
    plan->tiles_across = uint32_t(p.cols.tiles.size());
    plan->window_height = uint32_t(p.rows.window);
    plan->window_width = uint32_t(p.cols.window);
    plan->working_set = p.bytes;
  });
}

LIC2CPP_API lic2cpp_status lic2cpp_decode_latent(lic2cpp_codec* codec, const uint8_t* data,
                                                 size_t size, float** latent, uint32_t* height,
                                                 uint32_t* width, uint32_t* channels) {
  using namespace lic::codec;
  return guarded(codec, LIC2CPP_BAD_BITSTREAM, [&] {
    require(latent != nullptr && height != nullptr && width != nullptr && channels != nullptr,
            "no place for the latent (NULL pointer)");
    *latent = nullptr;
    check_stream_args(data, size);
    const lic::Tensor y = decoder_of(codec).latent(data, size, codec->threads);
    float* p = static_cast<float*>(std::malloc(y.data.size() * sizeof(float)));
    if (p == nullptr) throw std::bad_alloc();
    std::memcpy(p, y.data.data(), y.data.size() * sizeof(float));
    *latent = p;
    *height = uint32_t(y.height);
    *width = uint32_t(y.width);
    *channels = uint32_t(y.channels);
  });
}

}  // extern "C"
