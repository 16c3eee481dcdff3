// What encoder_main.cpp and decoder_main.cpp share: the command line, the C interface's
// status turned into the program's one-line error, and --dump-latent.
#pragma once

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/npy.hpp"
#include "base/profile.hpp"
#include "codec/capi/lic2cpp.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lic::codec {

// The programs run once per image, so memory they free may as well stay theirs: glibc's
// defaults map each large buffer (and each thread's arena) with mmap and unmap it when
// freed, and every mmap, munmap, mprotect or brk takes the process's address-space lock
// for writing. With two threads, one of them mapping in pages (MADV_POPULATE_WRITE holds
// that lock for reading) kept the other asleep behind such calls (kernel stacks of the
// two-thread encoder: rwsem_down_write_slowpath under mmap, munmap, brk). Here all threads
// share one heap, grown in 64 MiB steps and never trimmed, so buffers come from it without
// a system call, and freed ones are reused without their pages being filled again.
// LIC_MALLOC_DEFAULTS=1 keeps glibc's defaults (for measuring).
inline void tune_malloc_for_one_run() {
#if defined(__GLIBC__)
  if (std::getenv("LIC_MALLOC_DEFAULTS")) return;
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest: bigger buffers are still mapped
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
#endif
}

struct Args {
  std::vector<std::string> positional;
  std::string dump_latent;
  bool stats = false;
  int threads = 1;
  uint64_t max_memory = 0;  // 0: not given
  std::string max_memory_text;
  uint32_t band_rows = 16;  // --band-rows (the library's default)
  double rdoq = -1;      // --rdoq LAMBDA (encoder); < 0: not given
  int rdoq_sweeps = -1;  // --rdoq-sweeps N (encoder); < 0: not given
};

// "256M", "2G", "512K", "1048576" (bytes); K, M, G, T are powers of 1024.
inline uint64_t parse_size(const std::string& s) {
  const Error bad("--max-memory needs a size such as 256M or 2G");
  size_t i = 0;
  uint64_t v = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    if (v > (uint64_t{1} << 40)) throw bad;
    v = v * 10 + uint64_t(s[i++] - '0');
  }
  if (i == 0) throw bad;
  std::string unit = s.substr(i);
  for (char& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  const std::string units = "KMGT";
  int shift = 0;
  if (!unit.empty() && units.find(unit[0]) != std::string::npos) {
    shift = 10 * int(units.find(unit[0]) + 1);
    unit.erase(0, 1);
    if (unit == "IB") unit.clear();
  }
  if (unit == "B") unit.clear();
  if (!unit.empty() || v == 0 || v > ((uint64_t{1} << 50) >> shift)) throw bad;
  return v << shift;
}

inline double parse_lambda(const char* text) {
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (!end || end == text || *end || !(v >= 0) || !std::isfinite(v))
    throw Error("--rdoq needs a finite lambda >= 0 (0: plain rounding), got '" + std::string(text) + "'");
  return v;
}

// `encoder_options`: accept the encoder's --stats, --rdoq, --rdoq-sweeps and --band-rows.
inline Args parse_args(int argc, char** argv, bool encoder_options) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    // The argument after option s, which must have one.
    const auto value = [&]() -> const char* {
      if (i + 1 >= argc) throw Error(s + " needs a value (see --help)");
      return argv[++i];
    };
    if (s == "--rdoq" && encoder_options) {
      a.rdoq = parse_lambda(value());
    } else if (s == "--rdoq-sweeps" && encoder_options) {
      char* end = nullptr;
      const long n = std::strtol(value(), &end, 10);
      if (!end || *end || n < 0 || n > 1000) throw Error("--rdoq-sweeps needs a number from 0 to 1000");
      a.rdoq_sweeps = static_cast<int>(n);
    } else if (s == "--dump-latent") {
      a.dump_latent = value();
    } else if (s == "--threads") {
      char* end = nullptr;
      const long t = std::strtol(value(), &end, 10);
      if (!end || *end || t < 1 || t > 256) throw Error("--threads needs a number from 1 to 256");
      a.threads = static_cast<int>(t);
    } else if (s == "--max-memory") {
      a.max_memory_text = value();
      a.max_memory = parse_size(a.max_memory_text);
    } else if (s == "--band-rows" && encoder_options) {
      char* end = nullptr;
      const long v = std::strtol(value(), &end, 10);
      if (!end || *end || v < 1 || v > 65535) throw Error("--band-rows needs a number from 1 to 65535");
      a.band_rows = static_cast<uint32_t>(v);
    } else if (s == "--stats" && encoder_options) {
      a.stats = true;
    } else if (s.size() > 1 && s[0] == '-' && s != "-") {
      throw Error("unknown option " + s + " (see --help)");
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

// A codec context of the C interface, destroyed with the program's scope.
struct CodecHandle {
  explicit CodecHandle(int threads) {
    if (lic2cpp_create(threads, &codec) != LIC2CPP_OK) throw Error("cannot create the codec");
  }
  ~CodecHandle() { lic2cpp_destroy(codec); }
  CodecHandle(const CodecHandle&) = delete;
  CodecHandle& operator=(const CodecHandle&) = delete;

  // A failed call's message (the library's, the same text the programs always printed).
  void check(lic2cpp_status s) const {
    if (s != LIC2CPP_OK) throw Error(lic2cpp_error_message(codec));
  }
  lic2cpp_codec* codec = nullptr;
};

// Memory the library allocated for us (lic2cpp_free).
struct LibFree {
  void operator()(void* p) const { lic2cpp_free(p); }
};
template <class T>
using LibPtr = std::unique_ptr<T, LibFree>;

// The de-quantised latent as float32 (h, w, C).
inline void dump_latent(const std::string& path, const float* y, uint32_t h, uint32_t w, uint32_t c) {
  npy::write(path, {h, w, c}, std::vector<float>(y, y + size_t(h) * w * c));
}

inline bool wants_help(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "-h" || s == "--help") return true;
  }
  return false;
}

}  // namespace lic::codec
