// Corrupt-model harness (run under ASan/UBSan by tests/test_runtime.py).
//
//   fuzz_model MODEL.licm ITERATIONS
//
// Feeds Model::from_bytes every truncation of the file and ITERATIONS random corruptions
// (byte flips, some with the fingerprint repaired so the parser proper sees them, and
// random u32 values written over fields). A variant must either be refused with lic::Error
// or load and run (or refuse its input with lic::Error) on a small input. Anything else —
// another exception, a crash, a sanitizer report — fails. Prints "refused accepted".
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "lic/runtime.hpp"

namespace {

void repair_fingerprint(std::vector<std::uint8_t>& b) {
  if (b.size() < lic::kModelHeaderSize) return;
  const std::uint64_t h = lic::fnv1a64(b.data() + lic::kModelHeaderSize, b.size() - lic::kModelHeaderSize);
  for (int i = 0; i < 8; ++i) b[16 + std::size_t(i)] = static_cast<std::uint8_t>(h >> (8 * i));
}

void repair_size(std::vector<std::uint8_t>& b) {
  if (b.size() < lic::kModelHeaderSize) return;
  const std::uint64_t n = b.size() - lic::kModelHeaderSize;
  for (int i = 0; i < 8; ++i) b[8 + std::size_t(i)] = static_cast<std::uint8_t>(n >> (8 * i));
}

// 1 = refused, 0 = accepted; aborts the program on anything unexpected.
int attempt(const std::vector<std::uint8_t>& bytes) {
  try {
    lic::Model m = lic::Model::from_bytes(bytes.data(), bytes.size());
    try {
      lic::Tensor x(5, 4, m.in_channels());
      for (std::size_t i = 0; i < x.data.size(); ++i) x.data[i] = 0.01f * float(i % 17) - 0.05f;
      lic::Tensor y = m.run(x, 1);
      if (y.channels != m.out_channels()) {
        std::printf("output channel count mismatch\n");
        std::exit(2);
      }
    } catch (const lic::Error&) {
      // A loadable model may still refuse this input size: fine.
    }
    return 0;
  } catch (const lic::Error&) {
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fuzz_model MODEL.licm ITERATIONS\n");
    return 1;
  }
  std::ifstream f(argv[1], std::ios::binary);
  const std::vector<std::uint8_t> orig((std::istreambuf_iterator<char>(f)),
                                       std::istreambuf_iterator<char>());
  const int iterations = std::stoi(argv[2]);
  int refused = 0, accepted = 0;
  if (attempt(orig) != 0) {
    std::printf("the intact model was refused\n");
    return 2;
  }
  for (std::size_t n = 0; n < orig.size(); ++n) {
    std::vector<std::uint8_t> b(orig.begin(), orig.begin() + std::ptrdiff_t(n));
    if (attempt(b) != 1) {
      std::printf("truncation to %zu bytes was accepted\n", n);
      return 2;
    }
    ++refused;
    // The same truncation with a consistent header reaches the body parser.
    repair_size(b);
    repair_fingerprint(b);
    if (n >= lic::kModelHeaderSize && attempt(b) != 1) {
      std::printf("repaired truncation to %zu bytes was accepted\n", n);
      return 2;
    }
  }
  std::mt19937 rng(12345);
  for (int it = 0; it < iterations; ++it) {
    std::vector<std::uint8_t> b = orig;
    const int kind = it % 3;
    const int flips = 1 + int(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      const std::size_t pos = rng() % b.size();
      if (kind == 2 && pos + 4 <= b.size()) {
        // Overwrite an aligned u32 with a small or huge value (counts, ids, sizes).
        const std::size_t p4 = pos & ~std::size_t(3);
        const std::uint32_t v = (rng() % 2) ? rng() % 40 : rng();
        for (int i = 0; i < 4; ++i) b[p4 + std::size_t(i)] = std::uint8_t(v >> (8 * i));
      } else {
        b[pos] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
      }
    }
    if (kind != 0) repair_fingerprint(b);
    if (attempt(b) == 1) ++refused; else ++accepted;
  }
  std::printf("%d %d\n", refused, accepted);
  return 0;
}
