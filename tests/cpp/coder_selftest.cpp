// coder_selftest SEED TRIALS: exact round trips of the range coder over random tables and
// symbol streams, then the coded size of a long realistic stream against its ideal length.
// Prints one JSON line; exits 1 on the first mismatch (with the trial that failed).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "codec/core/range_coder.hpp"

using namespace lic::codec;

namespace {

struct Op {
  int table;       // -1: bypass bits
  uint32_t value;  // symbol index, or the bits
  int nbits;
};

std::vector<uint32_t> random_freqs(std::mt19937_64& rng, uint32_t n, int mode) {
  std::vector<uint64_t> w(n);
  for (auto& v : w) {
    switch (mode) {
      case 0: v = rng() % 1000 + 1; break;                             // flat-ish
      case 1: v = static_cast<uint64_t>(std::exp2((rng() % 2000) / 100.0)); break;  // skewed
      default: v = 0;                                                   // extreme
    }
  }
  if (mode == 2) w[rng() % n] = 1;
  uint64_t total = 0;
  for (auto v : w) total += v;
  std::vector<uint32_t> f(n, 1);
  uint32_t left = kProbOne - n;
  for (uint32_t i = 0; i < n && total; ++i) {
    const uint32_t add = static_cast<uint32_t>(w[i] * left / total);
    f[i] += add;
  }
  uint32_t sum = 0;
  for (auto v : f) sum += v;
  f[rng() % n] += kProbOne - sum;  // exact total 2^16
  return f;
}

std::vector<uint32_t> to_cdf(const std::vector<uint32_t>& f) {
  std::vector<uint32_t> c(f.size() + 1, 0);
  for (size_t i = 0; i < f.size(); ++i) c[i + 1] = c[i] + f[i];
  return c;
}

uint32_t sample(std::mt19937_64& rng, const std::vector<uint32_t>& cdf) {
  const uint32_t u = static_cast<uint32_t>(rng() % kProbOne);
  uint32_t s = 0;
  while (cdf[s + 1] <= u) ++s;
  return s;
}

bool fail(const std::string& what, int trial) {
  std::printf("{\"ok\": false, \"trial\": %d, \"error\": \"%s\"}\n", trial, what.c_str());
  return false;
}

bool round_trips(std::mt19937_64& rng, int trials, long long& symbols) {
  for (int t = 0; t < trials; ++t) {
    const int ntables = 1 + static_cast<int>(rng() % 4);
    std::vector<std::vector<uint32_t>> cdfs;
    for (int k = 0; k < ntables; ++k) {
      const uint32_t n = (rng() % 3 == 0) ? 2 : 2 + static_cast<uint32_t>(rng() % 299);
      cdfs.push_back(to_cdf(random_freqs(rng, n, static_cast<int>(rng() % 3))));
    }
    const int len = static_cast<int>(rng() % 3000);  // includes empty streams
    const int pick = static_cast<int>(rng() % 3);      // 0 sampled, 1 least probable, 2 uniform
    std::vector<Op> ops;
    for (int i = 0; i < len; ++i) {
      if (rng() % 50 == 0) {
        const int nb = 1 + static_cast<int>(rng() % 16);
        ops.push_back({-1, static_cast<uint32_t>(rng()) & ((1u << nb) - 1), nb});
        continue;
      }
      const int k = static_cast<int>(rng() % ntables);
      const auto& c = cdfs[k];
      const uint32_t n = static_cast<uint32_t>(c.size() - 1);
      uint32_t s = 0;
      if (pick == 0) {
        s = sample(rng, c);
      } else if (pick == 1) {
        for (uint32_t j = 1; j < n; ++j)
          if (c[j + 1] - c[j] < c[s + 1] - c[s]) s = j;
      } else {
        s = static_cast<uint32_t>(rng() % n);
      }
      ops.push_back({k, s, 0});
    }
    RangeEncoder enc;
    for (const Op& op : ops) {
      if (op.table < 0) enc.encode_bits(op.value, op.nbits);
      else enc.encode(cdfs[op.table][op.value], cdfs[op.table][op.value + 1] - cdfs[op.table][op.value]);
    }
    const std::vector<uint8_t> bytes = enc.finish();
    try {
      RangeDecoder dec(bytes.data(), bytes.size());
      for (const Op& op : ops) {
        const uint32_t got = op.table < 0 ? dec.decode_bits(op.nbits)
                                          : dec.decode(cdfs[op.table].data(),
                                                       static_cast<uint32_t>(cdfs[op.table].size() - 1));
        if (got != op.value) return fail("symbol mismatch", t);
      }
      // Final state: every payload byte consumed, at most the 4 trimmed zeros read past
      // the end, and the code value inside the range.
      if (dec.bytes_read() < bytes.size() || dec.bytes_read() > bytes.size() + 4)
        return fail("decoder consumed the wrong number of bytes", t);
      if (dec.code() >= dec.range()) return fail("final code outside the range", t);
    } catch (const std::exception& e) {
      return fail(e.what(), t);
    }
    symbols += len;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: coder_selftest SEED TRIALS\n");
    return 2;
  }
  std::mt19937_64 rng(std::strtoull(argv[1], nullptr, 10));
  long long symbols = 0;
  if (!round_trips(rng, std::atoi(argv[2]), symbols)) return 1;

  // A long stream shaped like latent symbols: one dominant value (p ~ 0.9), a few
  // neighbours, a long tail of rare ones; the coder's size against -sum log2 p.
  std::vector<uint32_t> f(33, 1);
  f[16] = 58000;
  f[15] = f[17] = 2500;
  f[14] = f[18] = 700;
  uint32_t sum = 0;
  for (auto v : f) sum += v;
  f[16] += kProbOne - sum;
  const std::vector<uint32_t> cdf = to_cdf(f);
  RangeEncoder enc;
  double ideal = 0;
  std::vector<uint32_t> stream(2000000);
  for (auto& s : stream) {
    s = sample(rng, cdf);
    enc.encode(cdf[s], f[s]);
    ideal -= std::log2(f[s] / 65536.0);
  }
  const std::vector<uint8_t> bytes = enc.finish();
  RangeDecoder dec(bytes.data(), bytes.size());
  for (auto s : stream)
    if (dec.decode(cdf.data(), 33) != s) return fail("long stream mismatch", -1), 1;
  std::printf("{\"ok\": true, \"round_trip_symbols\": %lld, \"long_symbols\": %zu, \"ideal_bits\": %.3f, "
              "\"coded_bits\": %zu}\n",
              symbols, stream.size(), ideal, bytes.size() * 8);
  return 0;
}
