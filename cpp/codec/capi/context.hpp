// The C interface's codec context and the one place where C++ exceptions are turned into
// status codes (nothing thrown ever crosses the C boundary). Internal to the library.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "base/error.hpp"
#include "codec/capi/lic2cpp.h"
#include "codec/tiling.hpp"

namespace lic::codec {
class TiledEncoder;
class TiledDecoder;

// A failure the C layer found itself (bad arguments, a small buffer, a stopped callback).
struct ApiError : Error {
  ApiError(lic2cpp_status s, const std::string& what) : Error(what), status(s) {}
  lic2cpp_status status;
};
}  // namespace lic::codec

struct lic2cpp_codec {
  int threads = 1;
  std::uint64_t max_memory = 0;
  std::uint32_t band_rows = 16;  // kDefaultBandRows (codec/core/bitstream.hpp)
  double rdoq_lambda = -1;  // < 0: the library's default (lic2cpp_default_rdoq_lambda)
  int rdoq_sweeps = -1;     // < 0: RDOQ's default
  lic2cpp_rdoq_report rdoq_report{};  // of the last successful encode
  std::string message;
  // Each half is made on first use (its network loaded and packed); a shared_ptr so that
  // destroying a context needs no code of a half the program never linked.
  std::shared_ptr<const lic::codec::TiledEncoder> encoder;
  std::shared_ptr<const lic::codec::TiledDecoder> decoder;
};

namespace lic::codec {

inline void set_message(lic2cpp_codec* c, const char* what) noexcept {
  try {
    c->message = what;
  } catch (...) {
    c->message.clear();  // no memory for the message: the status still says what happened
  }
}

// Runs `body` for the codec `c`: OK, or the status of what it threw with the message kept
// in the context. `input_error` is the status of a lic::Error (a bad bitstream when
// decoding, a bad image when encoding).
template <class Body>
lic2cpp_status guarded(lic2cpp_codec* c, lic2cpp_status input_error, Body&& body) noexcept {
  if (c == nullptr) return LIC2CPP_INVALID_ARGUMENT;
  try {
    body();
    c->message.clear();
    return LIC2CPP_OK;
  } catch (const ApiError& e) {
    set_message(c, e.what());
    return e.status;
  } catch (const BudgetError& e) {
    set_message(c, e.what());
    return LIC2CPP_MEMORY_BUDGET;
  } catch (const Error& e) {
    set_message(c, e.what());
    return input_error;
  } catch (const std::bad_alloc&) {
    set_message(c, "out of memory");
    return LIC2CPP_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_message(c, e.what());
    return LIC2CPP_INTERNAL;
  } catch (...) {
    set_message(c, "unknown internal error");
    return LIC2CPP_INTERNAL;
  }
}

inline void require(bool ok, const char* what) {
  if (!ok) throw ApiError(LIC2CPP_INVALID_ARGUMENT, what);
}

// The budget as a size_t (saturating on 32-bit systems).
inline size_t budget_of(const lic2cpp_codec* c) {
  return c->max_memory > SIZE_MAX ? SIZE_MAX : static_cast<size_t>(c->max_memory);
}

}  // namespace lic::codec
