// The C interface's encoding half: g_a (in tiles within the budget) and the latent coder.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "codec/capi/context.hpp"
#include "codec/capi/embedded.hpp"
#include "codec/capi/halves.hpp"
#include "codec/capi/lic2cpp.h"
#include "codec/tiled.hpp"

namespace lic::codec {
namespace {

const TiledEncoder& encoder_of(lic2cpp_codec* c) {
  if (!c->encoder) c->encoder = make_encoder(embedded_encoder(), c->threads);
  return *c->encoder;
}

// A malloc'd copy (released by lic2cpp_free, whatever allocator the caller uses).
template <class T>
T* malloc_copy(const T* data, size_t n) {
  T* p = static_cast<T*>(std::malloc(n ? n * sizeof(T) : 1));
  if (p == nullptr) throw std::bad_alloc();
  if (n) std::memcpy(p, data, n * sizeof(T));
  return p;
}

}  // namespace
}  // namespace lic::codec

extern "C" {

LIC2CPP_API lic2cpp_status lic2cpp_load_encoder(lic2cpp_codec* codec) {
  return lic::codec::guarded(codec, LIC2CPP_INTERNAL, [&] {
    const lic::codec::TiledEncoder& enc = lic::codec::encoder_of(codec);
    if (codec->threads <= 1) enc.encoder().analysis();  // else packed on a thread of its own
  });
}

LIC2CPP_API lic2cpp_status lic2cpp_encode_ex(lic2cpp_codec* codec, const uint8_t* rgb,
                                             uint32_t width, uint32_t height, size_t stride,
                                             uint8_t** data, size_t* size,
                                             lic2cpp_encode_stats* stats, float** latent) {
  using namespace lic::codec;
  return guarded(codec, LIC2CPP_BAD_IMAGE, [&] {
    require(data != nullptr && size != nullptr, "no place for the bitstream (NULL data or size)");
    *data = nullptr;
    *size = 0;
    if (latent) *latent = nullptr;
    require(rgb != nullptr, "no pixels (NULL rgb)");
    check_image_size(width, height);
    require(stride >= size_t(width) * 3, "stride is smaller than 3 * width");
    const TiledEncoder& enc = encoder_of(codec);
    const ImageView view{rgb, width, height, stride};
    CodingOptions opt;
    opt.band_rows = int(codec->band_rows);
    opt.keep_latent = latent != nullptr;  // else y_hat's memory is never taken
    opt.rdoq.lambda = codec->rdoq_lambda >= 0 ? codec->rdoq_lambda : embedded_encoder().rdoq_lambda;
    if (codec->rdoq_sweeps >= 0) opt.rdoq.sweeps = codec->rdoq_sweeps;
    RdoqReport rep;
    opt.rdoq_report = &rep;
    const EncodeResult r = enc.encode(view, codec->threads, budget_of(codec), opt);
    float* y = latent ? malloc_copy(r.y_hat.data.data(), r.y_hat.data.size()) : nullptr;
    uint8_t* out;
    try {
      out = malloc_copy(r.bitstream.data(), r.bitstream.size());
    } catch (...) {
      std::free(y);
      throw;
    }
    if (stats) {
      stats->latent_height = r.latent_h;
      stats->latent_width = r.latent_w;
      stats->latent_channels = r.channels;
      stats->header_bytes = kStreamHeaderSize;
      stats->payload_bytes = r.payload_size;
      stats->ideal_bits = r.ideal.bits_ctx;
      stats->ideal_bits_plain = r.ideal.bits_plain;
    }
    lic2cpp_rdoq_report& rr = codec->rdoq_report;
    rr = lic2cpp_rdoq_report{};
    if (opt.rdoq.lambda > 0) {
      rr.lambda = opt.rdoq.lambda;
      rr.bits_plain = rep.bits_plain;
      rr.sse_plain = rep.sse_plain;
      rr.bits = rep.bits;
      rr.sse = rep.sse;
      rr.sweeps = rep.sweeps;
      rr.accepted = rep.accepted;
      rr.changed = rep.changed;
      rr.passes = rep.passes;
    }
    if (latent) *latent = y;
    *data = out;
    *size = r.bitstream.size();
  });
}

LIC2CPP_API lic2cpp_status lic2cpp_plan_encode(lic2cpp_codec* codec, uint32_t width,
                                               uint32_t height, lic2cpp_plan* plan) {
  using namespace lic::codec;
  return guarded(codec, LIC2CPP_BAD_IMAGE, [&] {
    require(plan != nullptr, "no place for the plan (NULL)");
    *plan = lic2cpp_plan{};
    const TilePlan p = encoder_of(codec).plan(width, height, codec->threads, budget_of(codec));
    plan->least = p.least;
    plan->whole = p.whole;
    plan->budget = p.budget;
    require_fit(p, "encode this " + std::to_string(width) + "x" + std::to_string(height) + " image");
    plan->tiles_down = uint32_t(p.rows.tiles.size());
    plan->tiles_across = uint32_t(p.cols.tiles.size());
    plan->window_height = uint32_t(p.rows.window);
    plan->window_width = uint32_t(p.cols.window);
    plan->working_set = p.bytes;
  });
}

LIC2CPP_API lic2cpp_status lic2cpp_set_rdoq(lic2cpp_codec* codec, double lambda, int sweeps) {
  using namespace lic::codec;
  return guarded(codec, LIC2CPP_INVALID_ARGUMENT, [&] {
    require(std::isfinite(lambda), "the RDOQ lambda must be a finite number");
    require(sweeps <= 1000, "RDOQ sweeps must be at most 1000");
    if (lambda > 0) {
      const std::string refusal = encoder_of(codec).encoder().rdoq_refusal();
      if (!refusal.empty()) throw ApiError(LIC2CPP_INVALID_ARGUMENT, refusal);
    }
    codec->rdoq_lambda = lambda < 0 ? -1 : lambda;
    codec->rdoq_sweeps = sweeps < 0 ? -1 : sweeps;
  });
}

LIC2CPP_API double lic2cpp_default_rdoq_lambda(void) {
  return lic::codec::embedded_encoder().rdoq_lambda;
}

LIC2CPP_API lic2cpp_status lic2cpp_get_rdoq_report(lic2cpp_codec* codec,
                                                   lic2cpp_rdoq_report* report) {
  using namespace lic::codec;
  return guarded(codec, LIC2CPP_INVALID_ARGUMENT, [&] {
    require(report != nullptr, "no place for the report (NULL)");
    *report = codec->rdoq_report;
  });
}

LIC2CPP_API lic2cpp_status lic2cpp_encode(lic2cpp_codec* codec, const uint8_t* rgb,
                                          uint32_t width, uint32_t height, size_t stride,
                                          uint8_t** data, size_t* size) {
  return lic2cpp_encode_ex(codec, rgb, width, height, stride, data, size, nullptr, nullptr);
}

}  // extern "C"
