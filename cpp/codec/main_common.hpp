// Shared command-line handling of encoder_main.cpp and decoder_main.cpp.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "codec/codec.hpp"

namespace lic::codec {

// Defined by the source lic2cpp.codegen generates (networks and tables compiled in).
Embedded embedded();

struct Args {
  std::vector<std::string> positional;
  std::string dump_latent;
  bool stats = false;
  int threads = 1;
};

inline Args parse_args(int argc, char** argv, bool allow_stats) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--dump-latent" && i + 1 < argc) {
      a.dump_latent = argv[++i];
    } else if (s == "--threads" && i + 1 < argc) {
      char* end = nullptr;
      const long t = std::strtol(argv[++i], &end, 10);
      if (!end || *end || t < 1 || t > 256) throw CodecError("--threads needs a number from 1 to 256");
      a.threads = static_cast<int>(t);
    } else if (s == "--stats" && allow_stats) {
      a.stats = true;
    } else if (s.size() > 1 && s[0] == '-' && s != "-") {
      throw CodecError("unknown option " + s + " (see --help)");
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

inline void dump_latent(const std::string& path, const Latent& lat, const EntropyModel& m) {
  write_file_atomic(path, npy_bytes(dequantize_hwc(lat, m), {static_cast<size_t>(lat.height),
                                                             static_cast<size_t>(lat.width),
                                                             static_cast<size_t>(lat.channels)}));
}

inline bool wants_help(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "-h" || s == "--help") return true;
  }
  return false;
}

}  // namespace lic::codec
