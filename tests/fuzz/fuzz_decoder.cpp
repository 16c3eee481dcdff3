// libFuzzer target: the decoder, from bitstream bytes to pixels (header checks, range
// decoding, escapes, the synthesis transform), with the tiny model of corpus.py compiled in.
//
// Every input is decoded twice: as it is (the checksum and fingerprint stop almost every
// mutation: those checks are fuzzed), and repaired, with this model's fingerprint, the
// payload size and the checksum written into the header, so mutations reach the payload.
// Either decode must succeed or throw lic::Error; a decoded image must have the header's
// size. Images over 64 x 64 pixels (valid, but slow to synthesise) are skipped.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "codec/decoder.hpp"
#include "codec/entropy/context_coder.hpp"
#include "fuzz_common.hpp"
#include "model.inc"

namespace {

using lic::codec::Decoder;

const Decoder& decoder() {
  static const Decoder d(
      lic::Model::from_bytes(kFuzzGs, sizeof kFuzzGs),
      lic::codec::ContextTableCoder::from_bytes(kFuzzTables, sizeof kFuzzTables), kFuzzMultiple,
      fuzz::get_le(kFuzzGa + 16, 8), fuzz::get_le(kFuzzGs + 16, 8));
  return d;
}

constexpr std::uint64_t kMaxDecodedPixels = 64 * 64;

void decode(const std::uint8_t* data, std::size_t size) {
  try {
    const lic::codec::DecodeResult r = decoder().decode(data, size, 1);
    const std::uint64_t w = fuzz::get_le(data + 8, 4), h = fuzz::get_le(data + 12, 4);
    if (r.image.width != w || r.image.height != h || r.image.rgb.size() != w * h * 3)
      fuzz::fail("decoded image does not have the header's size");
  } catch (const lic::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::size_t header = lic::codec::kStreamHeaderSize;
  if (size >= header) {
    const std::uint64_t w = fuzz::get_le(data + 8, 4), h = fuzz::get_le(data + 12, 4);
    if (w * h > kMaxDecodedPixels && w <= 16384 && h <= 16384 && w * h <= (1u << 24))
      return -1;  // a valid size, but too slow for fuzzing: not added to the corpus
  }
  decode(data, size);
  if (size < header) return 0;
  fuzz::Bytes b(data, data + size);
  fuzz::put_le(b, 24, decoder().fingerprint(), 8);
  fuzz::put_le(b, 32, size - header, 4);
  std::uint32_t check = lic::fnv1a32(b.data(), 36);
  check = lic::fnv1a32(b.data() + header, size - header, check);
  fuzz::put_le(b, 36, check, 4);
  decode(b.data(), b.size());
  return 0;
}
