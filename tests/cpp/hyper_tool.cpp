// hyper_tool: the hyperprior latent coder (codec/entropy/hyper_coder.hpp) on a latent.
//
//   hyper_tool TABLES.lich H_A.licm Y.npy OUT_DIR [--threads N]
//   hyper_tool --decode TABLES.lich PAYLOAD.bin H W OUT_DIR [--threads N]
// Y.npy is float32 (h, w, M), the analysis transform's output. Codes it, decodes the
// payload again (the decoder side has no h_a) and requires the same y_hat; writes
// OUT_DIR/qz.npy (z symbols, N x zh x zw), index.npy and mean.npy (M x h x w; mean only for
// mean-scale models), y_hat.npy (h, w, M) and payload.bin, all float32, and prints one JSON
// line: ideal bits, payload bytes, the kernels used. The tests compare it with the numpy
// reference (src/lic2cpp/hyper.py). --decode decodes a payload of an H x W latent with
// the decoder side alone and writes OUT_DIR/y_hat.npy and index.npy.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/npy.hpp"
#include "codec/entropy/hyper_coder.hpp"
#include "lic/runtime.hpp"

using namespace lic::codec;

namespace {

void save_ints(const std::string& path, std::vector<long long> shape, const std::vector<int32_t>& v) {
  std::vector<float> f(v.begin(), v.end());
  lic::npy::write(path, shape, f);
}

}  // namespace

int decode_main(int argc, char** argv) {
  const int threads = argc == 9 ? std::atoi(argv[8]) : 1;
  const std::vector<uint8_t> tables = lic::read_file(argv[2]);
  const std::vector<uint8_t> payload = lic::read_file(argv[3]);
  const int h = std::atoi(argv[4]), w = std::atoi(argv[5]);
  if (h < 1 || w < 1 || h > 4096 || w > 4096) throw lic::Error("bad latent size");
  const HyperpriorCoder coder(tables.data(), tables.size(), nullptr, 0);
  const lic::Tensor y_hat = coder.decode(payload.data(), payload.size(), h, w, threads);
  const std::string out = argv[6];
  lic::npy::write(out + "/y_hat.npy", {h, w, y_hat.channels}, y_hat.data);
  std::printf("{\"kernels\": \"%s\"}\n", lic::kernel_isa());
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--decode" && (argc == 7 || argc == 9)) {
    try {
      return decode_main(argc, argv);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "hyper_tool: error: %s\n", ex.what());
      return 1;
    }
  }
  if (argc != 5 && argc != 7) {
    std::fprintf(stderr, "usage: hyper_tool TABLES.lich H_A.licm Y.npy OUT_DIR [--threads N]\n");
    return 2;
  }
  try {
    const int threads = argc == 7 ? std::atoi(argv[6]) : 1;
    const std::vector<uint8_t> tables = lic::read_file(argv[1]);
    const std::vector<uint8_t> h_a = lic::read_file(argv[2]);
    const HyperpriorCoder enc_coder(tables.data(), tables.size(), h_a.data(), h_a.size());
    const HyperpriorCoder dec_coder(tables.data(), tables.size(), nullptr, 0);
    const lic::npy::Array arr = lic::npy::read(argv[3]);
    if (arr.shape.size() != 3) throw lic::Error("Y.npy must be (h, w, M)");
    lic::Tensor y(static_cast<int>(arr.shape[0]), static_cast<int>(arr.shape[1]), static_cast<int>(arr.shape[2]));
    y.data = arr.data;
    const std::string out = argv[4];
    const std::vector<int32_t> qz = enc_coder.z_symbols(y, threads);
    const int zh = enc_coder.z_side(y.height), zw = enc_coder.z_side(y.width);
    const HyperParams p = enc_coder.params(qz, zh, zw, y.height, y.width, threads);
    const EncodedLatent e = enc_coder.encode(y, threads);
    const lic::Tensor back = dec_coder.decode(e.payload.data(), e.payload.size(), y.height, y.width, threads);
    if (back.data != e.y_hat.data) throw lic::Error("decoded y_hat differs from the encoder's");
    const long long n = enc_coder.tables().hyper_channels, m = enc_coder.tables().latent_channels;
    save_ints(out + "/qz.npy", {n, zh, zw}, qz);
    std::vector<int32_t> idx(p.index.begin(), p.index.end());
    save_ints(out + "/index.npy", {m, y.height, y.width}, idx);
    if (!p.mean.empty()) lic::npy::write(out + "/mean.npy", {m, y.height, y.width}, p.mean);
    lic::npy::write(out + "/y_hat.npy", {y.height, y.width, m}, e.y_hat.data);
    lic::write_file_atomic(out + "/payload.bin", e.payload);
    std::printf("{\"ideal_bits\": %.9f, \"payload_bytes\": %zu, \"kernels\": \"%s\"}\n", e.ideal.bits_ctx,
                e.payload.size(), lic::kernel_isa());
    return 0;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "hyper_tool: error: %s\n", ex.what());
    return 1;
  }
}
