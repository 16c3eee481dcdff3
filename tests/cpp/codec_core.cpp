// codec_core: the codec's encoder and decoder halves used as a library, with no image file
// I/O and no libpng (tests/test_codec_programs.py compiles it with a poisoned <png.h> first
// on the include path and no libpng on the link line).
//
//   codec_core G_A.licm G_S.licm TABLES.lice MULTIPLE RGB.npy OUT.bin DECODED.npy
//
// RGB.npy is float32 (H, W, 3) holding 8-bit values; the bitstream goes to OUT.bin and the
// decoded pixels, as float32 (H, W, 3), to DECODED.npy. The test compares both with what
// the generated encoder and decoder programs give for the same image.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "base/file.hpp"
#include "base/npy.hpp"
#include "codec/decoder.hpp"
#include "codec/encoder.hpp"
#include "codec/entropy/context_coder.hpp"
#include "lic/runtime.hpp"

namespace {

lic::codec::Image image_from_npy(const std::string& path) {
  const lic::npy::Array a = lic::npy::read(path);
  if (a.shape.size() != 3 || a.shape[2] != 3 || a.shape[0] < 1 || a.shape[1] < 1 ||
      a.shape[0] > 16384 || a.shape[1] > 16384)
    throw lic::Error(path + ": expected an (H, W, 3) array");
  lic::codec::Image img;
  img.height = static_cast<uint32_t>(a.shape[0]);
  img.width = static_cast<uint32_t>(a.shape[1]);
  img.rgb.reserve(a.data.size());
  for (float v : a.data) {
    if (!(v >= 0.0f && v <= 255.0f) || v != static_cast<float>(static_cast<int>(v)))
      throw lic::Error(path + ": values must be integers in 0..255");
    img.rgb.push_back(static_cast<uint8_t>(v));
  }
  return img;
}

std::unique_ptr<const lic::codec::LatentCoder> coder(const std::vector<uint8_t>& tables) {
  return lic::codec::ContextTableCoder::from_bytes(tables.data(), tables.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr,
                 "usage: codec_core G_A.licm G_S.licm TABLES.lice MULTIPLE RGB.npy OUT.bin "
                 "DECODED.npy\n");
    return 2;
  }
  try {
    lic::Model g_a = lic::Model::load_file(argv[1]);
    lic::Model g_s = lic::Model::load_file(argv[2]);
    const std::vector<uint8_t> tables = lic::read_file(argv[3]);
    const uint32_t multiple = static_cast<uint32_t>(std::strtoul(argv[4], nullptr, 10));
    const uint64_t ga_fp = g_a.fingerprint(), gs_fp = g_s.fingerprint();
    const lic::codec::Encoder encoder(std::move(g_a), coder(tables), multiple, ga_fp, gs_fp);
    const lic::codec::Decoder decoder(std::move(g_s), coder(tables), multiple, ga_fp, gs_fp);

    const lic::codec::Image img = image_from_npy(argv[5]);
    const lic::codec::EncodeResult enc = encoder.encode(img, 1);
    lic::write_file_atomic(argv[6], enc.bitstream);
    const lic::codec::DecodeResult dec = decoder.decode(enc.bitstream.data(), enc.bitstream.size(), 2);
    if (dec.y_hat.data != enc.y_hat.data) throw lic::Error("decoded latent differs from the encoder's");
    const std::vector<float> rgb(dec.image.rgb.begin(), dec.image.rgb.end());
    lic::npy::write(argv[7], {dec.image.height, dec.image.width, 3}, rgb);
    std::printf("%ux%u, %zu bytes\n", img.width, img.height, enc.bitstream.size());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "codec_core: error: %s\n", e.what());
    return 1;
  }
}
