// The C interface: contexts, messages, options (no network code: a program that only
// decodes links neither the encoder's network nor its code; see encode.cpp, decode.cpp).
#include <cstdlib>
#include <new>

#include "codec/capi/context.hpp"
#include "codec/capi/lic2cpp.h"

using lic::codec::guarded;

extern "C" {

LIC2CPP_API int lic2cpp_api_version(void) { return LIC2CPP_API_VERSION; }

LIC2CPP_API const char* lic2cpp_status_string(lic2cpp_status status) {
  switch (status) {
    case LIC2CPP_OK: return "ok";
    case LIC2CPP_INVALID_ARGUMENT: return "invalid argument";
    case LIC2CPP_BAD_BITSTREAM: return "bad bitstream";
    case LIC2CPP_BAD_IMAGE: return "bad image";
    case LIC2CPP_OUT_OF_MEMORY: return "out of memory";
    case LIC2CPP_MEMORY_BUDGET: return "memory budget too small";
    case LIC2CPP_BUFFER_TOO_SMALL: return "buffer too small";
    case LIC2CPP_ABORTED: return "aborted by the callback";
    case LIC2CPP_INTERNAL: return "internal error";
  }
  return "unknown status";
}

LIC2CPP_API lic2cpp_status lic2cpp_create(int threads, lic2cpp_codec** codec) {
  if (codec == nullptr) return LIC2CPP_INVALID_ARGUMENT;
  *codec = nullptr;
  if (threads < 1 || threads > 256) return LIC2CPP_INVALID_ARGUMENT;
  lic2cpp_codec* c = new (std::nothrow) lic2cpp_codec;
  if (c == nullptr) return LIC2CPP_OUT_OF_MEMORY;
  c->threads = threads;
  *codec = c;
  return LIC2CPP_OK;
}

LIC2CPP_API void lic2cpp_destroy(lic2cpp_codec* codec) { delete codec; }

LIC2CPP_API const char* lic2cpp_error_message(const lic2cpp_codec* codec) {
  return codec == nullptr ? "no codec (NULL)" : codec->message.c_str();
}

LIC2CPP_API lic2cpp_status lic2cpp_set_max_memory(lic2cpp_codec* codec, uint64_t bytes) {
  return guarded(codec, LIC2CPP_INVALID_ARGUMENT, [&] { codec->max_memory = bytes; });
}

LIC2CPP_API lic2cpp_status lic2cpp_set_band_rows(lic2cpp_codec* codec, uint32_t rows) {
  return guarded(codec, LIC2CPP_INVALID_ARGUMENT, [&] {
    lic::codec::require(rows >= 1 && rows <= 65535, "band height must be 1 to 65535 latent rows");
    codec->band_rows = rows;
  });
}

LIC2CPP_API void lic2cpp_free(void* p) { std::free(p); }

}  // extern "C"
