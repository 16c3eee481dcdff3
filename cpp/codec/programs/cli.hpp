// What encoder_main.cpp and decoder_main.cpp share: building the codec halves from the
// embedded files, and the command line.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/npy.hpp"
#include "codec/decoder.hpp"
#include "codec/encoder.hpp"
#include "codec/entropy/context_coder.hpp"
#include "codec/entropy/hyper_coder.hpp"
#include "codec/programs/embedded.hpp"
#include "lic/runtime.hpp"

namespace lic::codec {

// The coder named by the embedded tables: a hyperprior coder for `.lich` tables (with the
// encoder's h_a), else the context-table model of a `.lice` file.
inline std::unique_ptr<const LatentCoder> make_latent_coder(const Embedded& e) {
  if (e.tables_size >= 4 && std::memcmp(e.tables, "LICH", 4) == 0)
    return std::make_unique<HyperpriorCoder>(e.tables, e.tables_size, e.aux_network,
                                             e.aux_network_size);
  return ContextTableCoder::from_bytes(e.tables, e.tables_size);
}

inline Encoder make_encoder(const Embedded& e) {
  lic::Model g_a = lic::Model::from_bytes(e.network, e.network_size);
  return Encoder(std::move(g_a), make_latent_coder(e), e.multiple, e.ga_fingerprint,
                 e.gs_fingerprint);
}

inline Decoder make_decoder(const Embedded& e) {
  lic::Model g_s = lic::Model::from_bytes(e.network, e.network_size);
  return Decoder(std::move(g_s), make_latent_coder(e), e.multiple, e.ga_fingerprint,
                 e.gs_fingerprint);
}

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
      if (!end || *end || t < 1 || t > 256) throw Error("--threads needs a number from 1 to 256");
      a.threads = static_cast<int>(t);
    } else if (s == "--stats" && allow_stats) {
      a.stats = true;
    } else if (s.size() > 1 && s[0] == '-' && s != "-") {
      throw Error("unknown option " + s + " (see --help)");
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

// The de-quantised latent as float32 (h, w, C).
inline void dump_latent(const std::string& path, const lic::Tensor& y_hat) {
  npy::write(path, {y_hat.height, y_hat.width, y_hat.channels}, y_hat.data);
}

inline bool wants_help(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "-h" || s == "--help") return true;
  }
  return false;
}

}  // namespace lic::codec
