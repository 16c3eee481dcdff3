// rate_tool: the RDOQ rate model (codec/entropy/context_rate.hpp) against the coder itself.
//
//   rate_tool TABLES.lice Y.npy [BAND_ROWS]
// Y.npy is float32 [C, h, w], quantised as the encoder does; the latent is coded in bands
// of BAND_ROWS rows (default: one band), each band its own encode_latent. Prints one JSON
// line: bits() of the latent and the ideal length the coder gives for it, and for steps
// -1, +1 and +3 the largest |step_deltas[i] - (coded(q with q[i] + step) - coded(q))| over
// every latent i (each changed alone: a brute force through the real coder).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/npy.hpp"
#include "codec/core/range_coder.hpp"
#include "codec/entropy/context_coder.hpp"
#include "codec/entropy/context_rate.hpp"
#include "codec/entropy/context_tables.hpp"

using namespace lic::codec;

static double coded_bits(const Latent& q, const ContextTables& m, int rows) {
  double bits = 0;
  for (int y0 = 0; y0 < q.height; y0 += rows) {
    RangeEncoder enc;
    bits += encode_latent(q, m, enc, y0, std::min(q.height, y0 + rows)).bits_ctx;
  }
  return bits;
}

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: rate_tool TABLES.lice Y.npy [BAND_ROWS]\n");
    return 2;
  }
  try {
    const std::vector<uint8_t> bytes = lic::read_file(argv[1]);
    const ContextTables m = ContextTables::from_bytes(bytes.data(), bytes.size());
    const lic::npy::Array arr = lic::npy::read(argv[2]);
    if (arr.shape.size() != 3) throw lic::Error("Y.npy must be [C, h, w]");
    const int c = static_cast<int>(arr.shape[0]), h = static_cast<int>(arr.shape[1]),
              w = static_cast<int>(arr.shape[2]);
    const Latent q = quantize(arr.data.data(), c, h, w, static_cast<size_t>(h) * w, 1, m);
    const int rows = argc == 4 ? std::stoi(argv[3]) : h;
    if (rows < 1) throw lic::Error("BAND_ROWS must be at least 1");
    const ContextRate rate(m);
    const double base = coded_bits(q, m, rows);
    std::printf("{\"bits\": %.9f, \"coded_bits\": %.9f", rate.bits(q, rows), base);
    for (int step : {-1, 1, 3}) {
      std::vector<double> delta;
      rate.step_deltas(q, step, rows, delta);
      double worst = 0;
      Latent changed = q;
      for (size_t i = 0; i < q.q.size(); ++i) {
        changed.q[i] += step;
        worst = std::max(worst, std::fabs(delta[i] - (coded_bits(changed, m, rows) - base)));
        changed.q[i] -= step;
      }
      std::printf(", \"max_err_%+d\": %.3g", step, worst);
    }
    std::printf("}\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rate_tool: error: %s\n", e.what());
    return 1;
  }
}
