// Parsing and validating a .licm model file (docs/model-format.md, version 1.1: float ops
// and the int16 fixed-point ops of docs/int16.md).
// Every read is bounds-checked: a truncated or corrupt file gives lic::Error, never a crash.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/bytes.hpp"
#include "base/error.hpp"
#include "base/hash.hpp"

namespace lic {

enum class Op : std::uint32_t {
  kConv2d = 1,
  kConvTranspose2d = 2,
  kRelu = 3,
  kLeakyRelu = 4,
  kGdn = 5,
  kAdd = 6,
  // 1.1: int16 fixed point (docs/int16.md)
  kQuantize = 7,
  kDequantize = 8,
  kS16Conv2d = 9,
  kS16ConvTranspose2d = 10,
  kS16Relu = 11,
  kS16LeakyRelu = 12,
  kS16Gdn = 13,
  kS16Add = 14,
};
constexpr std::uint32_t kLastOp = 14;
constexpr std::uint32_t kFirstV11Op = 7;

inline const char* op_name(Op op) {
  switch (op) {
    case Op::kConv2d: return "conv2d";
    case Op::kConvTranspose2d: return "conv_transpose2d";
    case Op::kRelu: return "relu";
    case Op::kLeakyRelu: return "leaky_relu";
    case Op::kGdn: return "gdn";
    case Op::kAdd: return "add";
    case Op::kQuantize: return "quantize";
    case Op::kDequantize: return "dequantize";
    case Op::kS16Conv2d: return "s16_conv2d";
    case Op::kS16ConvTranspose2d: return "s16_conv_transpose2d";
    case Op::kS16Relu: return "s16_relu";
    case Op::kS16LeakyRelu: return "s16_leaky_relu";
    case Op::kS16Gdn: return "s16_gdn";
    case Op::kS16Add: return "s16_add";
  }
  return "?";
}

inline bool is_conv(Op op) {
  return op == Op::kConv2d || op == Op::kConvTranspose2d || op == Op::kS16Conv2d ||
         op == Op::kS16ConvTranspose2d;
}
inline bool is_transposed(Op op) { return op == Op::kConvTranspose2d || op == Op::kS16ConvTranspose2d; }
// Ops whose inputs and output are int16 values (QUANTIZE gives one, DEQUANTIZE reads one).
inline bool is_s16(Op op) { return static_cast<std::uint32_t>(op) >= 9; }

constexpr std::uint16_t kFormatMajor = 1;
constexpr std::size_t kModelHeaderSize = 24;
constexpr std::uint32_t kMaxNodes = 4096;
constexpr std::uint32_t kMaxChannels = 4096;
constexpr std::uint32_t kMaxKernel = 15;
constexpr std::uint32_t kMaxStride = 8;
constexpr std::uint32_t kMaxName = 256;
constexpr int kMinShift = -32, kMaxShift = 32;  // every shift stored in a file

// Float32 values stored little-endian in the model bytes, read in place: weights are read
// once, to be packed, so copying them out first would only cost a pass over 6 MB and as
// many fresh pages. Valid while the bytes the model was parsed from are.
class F32View {
 public:
  F32View() = default;
  F32View(const std::uint8_t* p, std::size_t n) : p_(p), n_(n) {}
  std::size_t size() const { return n_; }
  float operator[](std::size_t i) const {
    const std::uint8_t* b = p_ + 4 * i;
    const std::uint32_t bits = std::uint32_t{b[0]} | std::uint32_t{b[1]} << 8 |
                               std::uint32_t{b[2]} << 16 | std::uint32_t{b[3]} << 24;
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
  }

 private:
  const std::uint8_t* p_ = nullptr;
  std::size_t n_ = 0;
};

struct NodeDesc {
  Op op = Op::kRelu;
  std::vector<int> inputs;  // value ids: 0 = model input, node i gives i + 1
  // CONV2D / CONV_TRANSPOSE2D
  int cin = 0, cout = 0, kh = 0, kw = 0, stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0, out_pad_h = 0, out_pad_w = 0;
  F32View weight;             // [cout][kh][kw][cin]
  std::vector<float> bias;    // [cout]; GDN: beta [C]
  // LEAKY_RELU
  float alpha = 0.0f;
  // GDN
  int channels = 0;
  int inverse = 0;
  F32View gamma;             // [C][C]
  // int16 ops (docs/int16.md): QUANTIZE's shift; convolutions' weight and output shifts;
  // LeakyReLU's slope; GDN's square, gamma and root shifts
  int shift = 0, weight_shift = 0, out_shift = 0, alpha_q = 0, alpha_shift = 0;
  int square_shift = 0, gamma_shift = 0, root_shift = 0;
  std::vector<std::int16_t> qweight;  // [cout][kh][kw][cin]; S16_GDN: gamma [C][C]
  std::vector<std::int32_t> qbias;    // [cout] at the accumulator's shift; S16_GDN: beta [C]
  // Derived while validating: channels of this node's output; for int16 ops the shift of
  // the (first) input and of the output (docs/int16.md).
  int out_channels = 0;
  int in_shift = 0, value_shift = 0;
};

// A node's description without its weight arrays (what an operator keeps after packing
// them; copying the whole node would copy megabytes only to free them).
inline NodeDesc node_shape(const NodeDesc& n) {
  NodeDesc d;
  d.op = n.op;
  d.inputs = n.inputs;
  d.cin = n.cin;
  d.cout = n.cout;
  d.kh = n.kh;
  d.kw = n.kw;
  d.stride_h = n.stride_h;
  d.stride_w = n.stride_w;
  d.pad_top = n.pad_top;
  d.pad_left = n.pad_left;
  d.pad_bottom = n.pad_bottom;
  d.pad_right = n.pad_right;
  d.out_pad_h = n.out_pad_h;
  d.out_pad_w = n.out_pad_w;
  d.alpha = n.alpha;
  d.channels = n.channels;
  d.inverse = n.inverse;
  d.shift = n.shift;
  d.weight_shift = n.weight_shift;
  d.out_shift = n.out_shift;
  d.alpha_q = n.alpha_q;
  d.alpha_shift = n.alpha_shift;
  d.square_shift = n.square_shift;
  d.gamma_shift = n.gamma_shift;
  d.root_shift = n.root_shift;
  d.out_channels = n.out_channels;
  d.in_shift = n.in_shift;
  d.value_shift = n.value_shift;
  return d;
}

struct ModelDesc {
  std::uint16_t version_major = 0;
  std::uint16_t version_minor = 0;
  std::uint64_t fingerprint = 0;
  std::string name;
  int in_channels = 0;
  int out_channels = 0;
  std::vector<NodeDesc> nodes;
};

namespace detail {

// `count` finite floats; the size is checked before allocating, so a corrupt count cannot
// make us allocate more than the file holds.
inline std::vector<float> finite_f32s(ByteReader& r, std::size_t count, const std::string& what) {
  if (count > r.remaining() / 4) throw Error("model file truncated while reading " + what);
  // Decoded (little-endian, whatever the host) and checked in two simple loops the
  // compiler vectorises: reading ~1.4 M weights one by one took 6 ms.
  std::vector<float> out(count);
  const std::uint8_t* p = r.here();
  std::uint32_t bad = 0;  // an exponent of all ones is an infinity or a NaN
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint32_t bits = std::uint32_t{p[4 * i]} | std::uint32_t{p[4 * i + 1]} << 8 |
                               std::uint32_t{p[4 * i + 2]} << 16 | std::uint32_t{p[4 * i + 3]} << 24;
    bad |= (bits & 0x7f800000u) == 0x7f800000u;
    std::memcpy(&out[i], &bits, 4);
  }
  if (bad) throw Error("non-finite value in " + what);
  r.skip(count * 4, what);
  return out;
}

// `count` int16 values in [lo, hi] and the zero padding to a multiple of 4 bytes.
inline std::vector<std::int16_t> i16s(ByteReader& r, std::size_t count, int lo, int hi,
                                      const std::string& what) {
  const std::size_t padded = 2 * count + (2 * count) % 4;
  if (count > r.remaining() / 2 || padded > r.remaining())
    throw Error("model file truncated while reading " + what);
  std::vector<std::int16_t> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::int16_t v = static_cast<std::int16_t>(r.u16(what));
    if (v < lo || v > hi)
      throw Error(what + " has values outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    out[i] = v;
  }
  if (count % 2 != 0 && r.u16(what) != 0) throw Error("non-zero padding after " + what);
  return out;
}

inline std::vector<std::int32_t> i32s(ByteReader& r, std::size_t count, std::int64_t lo,
                                      const std::string& what) {
  if (count > r.remaining() / 4) throw Error("model file truncated while reading " + what);
  std::vector<std::int32_t> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    out[i] = r.i32(what);
    if (out[i] < lo)
      throw Error(what + " has values outside [" + std::to_string(lo) + ", 2147483647]");
  }
  return out;
}

inline int shift_field(ByteReader& r, const std::string& what) {
  const std::int32_t v = r.i32(what);
  if (v < kMinShift || v > kMaxShift)
    throw Error(what + " = " + std::to_string(v) + " is outside " + std::to_string(kMinShift) +
                ".." + std::to_string(kMaxShift));
  return v;
}

inline bool host_is_little_endian() {
  const std::uint32_t one = 1;
  std::uint8_t first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// `count` finite floats, checked where they lie and returned as a view of them.
inline F32View finite_f32_view(ByteReader& r, std::size_t count, const std::string& what) {
  if (count > r.remaining() / 4) throw Error("model file truncated while reading " + what);
  const std::uint8_t* p = r.here();
  // An exponent of all ones is an infinity or a NaN. The words are read as host integers
  // (a memcpy the compiler turns into vector loads) and byte-swapped on big-endian hosts.
  // Eight independent lanes, so that the loop runs at memory speed (it reads every weight
  // of the network at start-up).
  const std::uint32_t mask = host_is_little_endian() ? 0x7f800000u : 0x0000807fu;
  std::uint32_t bad[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= count; i += 8)
    for (int l = 0; l < 8; ++l) {
      std::uint32_t w;
      std::memcpy(&w, p + 4 * (i + std::size_t(l)), 4);
      bad[l] |= std::uint32_t((w & mask) == mask);
    }
  for (; i < count; ++i) {
    std::uint32_t w;
    std::memcpy(&w, p + 4 * i, 4);
    bad[0] |= std::uint32_t((w & mask) == mask);
  }
  if (bad[0] | bad[1] | bad[2] | bad[3] | bad[4] | bad[5] | bad[6] | bad[7])
    throw Error("non-finite value in " + what);
  r.skip(count * 4, what);
  return F32View(p, count);
}

// Well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
inline bool valid_utf8(const std::uint8_t* s, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    const std::uint8_t c = s[i];
    std::size_t len = 0;
    std::uint32_t cp = 0, min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1Fu, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0Fu, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07u, min = 0x10000;
    } else {
      return false;
    }
    if (len > n - i) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

inline int checked_channels(std::uint32_t v, const std::string& what) {
  if (v < 1 || v > kMaxChannels)
    throw Error(what + " = " + std::to_string(v) + " is outside 1.." +
                std::to_string(kMaxChannels));
  return static_cast<int>(v);
}

inline int checked_range(std::uint32_t v, std::uint32_t lo, std::uint32_t hi,
                         const std::string& what) {
  if (v < lo || v > hi)
    throw Error(what + " = " + std::to_string(v) + " is outside " + std::to_string(lo) + ".." +
                std::to_string(hi));
  return static_cast<int>(v);
}

inline void read_conv(ByteReader& r, NodeDesc& n, const std::string& where) {
  const bool transposed = is_transposed(n.op);
  n.cin = checked_channels(r.u32(where + " cin"), where + " cin");
  n.cout = checked_channels(r.u32(where + " cout"), where + " cout");
  n.kh = checked_range(r.u32(where + " kh"), 1, kMaxKernel, where + " kh");
  n.kw = checked_range(r.u32(where + " kw"), 1, kMaxKernel, where + " kw");
  n.stride_h = checked_range(r.u32(where + " stride_h"), 1, kMaxStride, where + " stride_h");
  n.stride_w = checked_range(r.u32(where + " stride_w"), 1, kMaxStride, where + " stride_w");
  const std::uint32_t kh = static_cast<std::uint32_t>(n.kh);
  const std::uint32_t kw = static_cast<std::uint32_t>(n.kw);
  n.pad_top = checked_range(r.u32(where + " pad_top"), 0, kh - 1, where + " pad_top");
  n.pad_left = checked_range(r.u32(where + " pad_left"), 0, kw - 1, where + " pad_left");
  n.pad_bottom = checked_range(r.u32(where + " pad_bottom"), 0, kh - 1, where + " pad_bottom");
  n.pad_right = checked_range(r.u32(where + " pad_right"), 0, kw - 1, where + " pad_right");
  if (transposed) {
    // As in PyTorch (dilation 1): an output padding must be smaller than the stride.
    n.out_pad_h = checked_range(r.u32(where + " out_pad_h"), 0,
                                static_cast<std::uint32_t>(n.stride_h - 1), where + " out_pad_h");
    n.out_pad_w = checked_range(r.u32(where + " out_pad_w"), 0,
                                static_cast<std::uint32_t>(n.stride_w - 1), where + " out_pad_w");
  }
  const std::size_t wcount = std::size_t(n.cout) * std::size_t(n.kh) * std::size_t(n.kw) *
                             std::size_t(n.cin);
  if (is_s16(n.op)) {
    n.weight_shift = shift_field(r, where + " weight_shift");
    n.out_shift = shift_field(r, where + " out_shift");
    n.qweight = i16s(r, wcount, -32767, 32767, where + " weight");
    n.qbias = i32s(r, std::size_t(n.cout), INT32_MIN, where + " bias");
    return;
  }
  n.weight = finite_f32_view(r, wcount, where + " weight");
  n.bias = finite_f32s(r, std::size_t(n.cout), where + " bias");
}

inline void read_gdn_head(ByteReader& r, NodeDesc& n, const std::string& where) {
  n.channels = checked_channels(r.u32(where + " channels"), where + " channels");
  const std::uint32_t inv = r.u32(where + " inverse flag");
  if (inv > 1) throw Error(where + " inverse flag is " + std::to_string(inv) + ", expected 0 or 1");
  n.inverse = static_cast<int>(inv);
}

inline NodeDesc read_node(ByteReader& r, int index, int minor) {
  std::string where = "node " + std::to_string(index);
  NodeDesc n;
  const std::uint32_t code = r.u32(where + " op");
  if (code < 1 || code > kLastOp) throw Error(where + ": unknown op code " + std::to_string(code));
  n.op = static_cast<Op>(code);
  where += std::string(" (") + op_name(n.op) + ")";
  if (code >= kFirstV11Op && minor < 1)
    throw Error(where + ": op code " + std::to_string(code) +
                " needs format version 1.1, the file says 1." + std::to_string(minor));
  const std::uint32_t n_inputs = r.u32(where + " input count");
  const std::uint32_t expected = n.op == Op::kAdd || n.op == Op::kS16Add ? 2 : 1;
  if (n_inputs != expected)
    throw Error(where + " has " + std::to_string(n_inputs) + " inputs, expected " +
                std::to_string(expected));
  for (std::uint32_t k = 0; k < n_inputs; ++k) {
    const std::uint32_t v = r.u32(where + " inputs");
    if (v > static_cast<std::uint32_t>(index))
      throw Error(where + " reads value " + std::to_string(v) +
                  ", which is not computed before it");
    n.inputs.push_back(static_cast<int>(v));
  }
  switch (n.op) {
    case Op::kConv2d:
    case Op::kConvTranspose2d:
    case Op::kS16Conv2d:
    case Op::kS16ConvTranspose2d:
      read_conv(r, n, where);
      break;
    case Op::kQuantize:
      n.shift = shift_field(r, where + " shift");
      break;
    case Op::kS16LeakyRelu: {
      const std::int32_t a = r.i32(where + " alpha_q");
      if (a < -32767 || a > 32767)
        throw Error(where + " alpha_q = " + std::to_string(a) + " does not fit int16");
      n.alpha_q = a;
      const std::int32_t t = r.i32(where + " alpha_shift");
      if (t < 0 || t > 30)
        throw Error(where + " alpha_shift = " + std::to_string(t) + " is outside 0..30");
      n.alpha_shift = t;
      break;
    }
    case Op::kS16Gdn:
      read_gdn_head(r, n, where);
      n.square_shift = shift_field(r, where + " square_shift");
      n.gamma_shift = shift_field(r, where + " gamma_shift");
      n.root_shift = shift_field(r, where + " root_shift");
      n.out_shift = shift_field(r, where + " out_shift");
      n.qbias = i32s(r, std::size_t(n.channels), 1, where + " beta");
      n.qweight = i16s(r, std::size_t(n.channels) * std::size_t(n.channels), 0, 32767,
                       where + " gamma");
      break;
    case Op::kS16Add:
      n.out_shift = shift_field(r, where + " out_shift");
      break;
    case Op::kDequantize:
    case Op::kS16Relu:
      break;
    case Op::kLeakyRelu:
      n.alpha = r.f32(where + " alpha");
      if (!std::isfinite(n.alpha)) throw Error("non-finite value in " + where + " alpha");
      break;
    case Op::kGdn: {
      read_gdn_head(r, n, where);
      n.bias = finite_f32s(r, std::size_t(n.channels), where + " beta");
      n.gamma = finite_f32_view(r, std::size_t(n.channels) * std::size_t(n.channels), where + " gamma");
      break;
    }
    case Op::kRelu:
    case Op::kAdd:
      break;
  }
  return n;
}

inline void need(bool ok, const std::string& where, const std::string& what) {
  if (!ok) throw Error(where + ": " + what);
}

// Least and greatest partial sum of a convolution (docs/int16.md "Worst case"): for every
// output channel, and for a transposed one every sub-pixel phase (taps ky = ry mod stride),
// sum over the products w * x with x in [lo, hi], plus min/max(0, bias + rounding).
inline void conv_worst_case(const NodeDesc& n, int lo, int hi, std::int64_t round,
                            std::int64_t& least, std::int64_t& most) {
  const bool tr = is_transposed(n.op);
  const int ry_n = tr ? n.stride_h : 1, rx_n = tr ? n.stride_w : 1;
  const int sy = tr ? n.stride_h : 1, sx = tr ? n.stride_w : 1;
  least = 0;
  most = 0;
  for (int co = 0; co < n.cout; ++co) {
    const std::int64_t b = std::int64_t(n.qbias[std::size_t(co)]) + round;
    for (int ry = 0; ry < ry_n; ++ry)
      for (int rx = 0; rx < rx_n; ++rx) {
        std::int64_t l = std::min<std::int64_t>(0, b), h = std::max<std::int64_t>(0, b);
        for (int ky = ry; ky < n.kh; ky += sy)
          for (int kx = rx; kx < n.kw; kx += sx) {
            const std::int16_t* w = n.qweight.data() +
                ((std::size_t(co) * std::size_t(n.kh) + std::size_t(ky)) * std::size_t(n.kw) +
                 std::size_t(kx)) * std::size_t(n.cin);
            for (int ci = 0; ci < n.cin; ++ci) {
              const std::int64_t a = std::int64_t(w[ci]) * lo, c = std::int64_t(w[ci]) * hi;
              l += std::min(a, c);
              h += std::max(a, c);
            }
          }
        least = std::min(least, l);
        most = std::max(most, h);
      }
  }
}

// Value types, shifts and int32 worst cases of the int16 ops (docs/model-format.md "int16
// operators"): a file a reader accepts cannot make an int16 kernel overflow.
inline void check_int16(ModelDesc& m) {
  constexpr int kFloat = INT32_MIN;  // the "shift" of a float value
  std::vector<int> shift{kFloat};
  std::vector<int> lo{-32768};  // least value of each int16 value (0 after a ReLU)
  for (std::size_t i = 0; i < m.nodes.size(); ++i) {
    NodeDesc& n = m.nodes[i];
    const std::string where = "node " + std::to_string(i) + " (" + op_name(n.op) + ")";
    const int sx = shift[std::size_t(n.inputs[0])];
    const bool reads_s16 = is_s16(n.op) || n.op == Op::kDequantize;
    for (int v : n.inputs) {
      const bool s16 = shift[std::size_t(v)] != kFloat;
      need(s16 == reads_s16, where, s16 ? "reads an int16 value (needs a float one)"
                                        : "reads a float value (needs an int16 one)");
    }
    n.in_shift = reads_s16 ? sx : 0;
    int sy = kFloat, least = -32768;
    switch (n.op) {
      case Op::kQuantize: sy = n.shift; break;
      case Op::kS16Relu: sy = sx; least = 0; break;
      case Op::kS16LeakyRelu: sy = sx; break;
      case Op::kS16Conv2d:
      case Op::kS16ConvTranspose2d: {
        sy = n.out_shift;
        const int sh = sx + n.weight_shift - sy;
        need(sh >= 0 && sh <= 31, where, "accumulator shift " + std::to_string(sh) + " is outside 0..31");
        std::int64_t l = 0, h = 0;
        conv_worst_case(n, lo[std::size_t(n.inputs[0])], 32767, sh > 0 ? std::int64_t(1) << (sh - 1) : 0, l, h);
        need(l >= INT32_MIN && h <= INT32_MAX, where, "worst-case sum (" + std::to_string(l) + ", " +
             std::to_string(h) + ") does not fit int32 (docs/int16.md)");
        break;
      }
      case Op::kS16Add: {
        sy = n.out_shift;
        const int sb = shift[std::size_t(n.inputs[1])];
        need(sx - sb <= 15 && sb - sx <= 15, where, "input shifts " + std::to_string(sx) + " and " +
             std::to_string(sb) + " differ by more than 15");
        const int sh = std::max(sx, sb) - sy;
        need(sh >= 0 && sh <= 16, where, "output shift leaves a shift of " + std::to_string(sh) + ", outside 0..16");
        break;
      }
      case Op::kS16Gdn: {
        sy = n.out_shift;
        const int n2 = 2 * sx - n.square_shift;
        need(n2 >= 0 && n2 <= 31, where, "square shift leaves a shift of " + std::to_string(n2) + ", outside 0..31");
        const int k = n.root_shift, sn = n.gamma_shift + n.square_shift;
        need(k >= 0 && k <= 62 && ((sn + k) % 2 + 2) % 2 == 0, where,
             "root shift " + std::to_string(k) + " must be in 0..62 and make the norm's shift even");
        const int sr = (sn + k) / 2;
        if (n.inverse) {
          const int mm = sx + sr - sy;
          need(mm >= 0 && mm <= 62, where, "output shift leaves a shift of " + std::to_string(mm) + ", outside 0..62");
        } else {
          const int e = sy - sx + sr;
          need(e >= 0 && e <= 46, where, "division exponent " + std::to_string(e) + " is outside 0..46");
        }
        std::int64_t most = 0;
        const std::size_t c = std::size_t(n.channels);
        for (std::size_t r = 0; r < c; ++r) {
          std::int64_t v = n.qbias[r];
          for (std::size_t j = 0; j < c; ++j) v += std::int64_t(32767) * n.qweight[r * c + j];
          most = std::max(most, v);
        }
        need(most <= INT32_MAX, where, "worst-case norm " + std::to_string(most) + " does not fit int32");
        need(most < (std::int64_t(1) << (62 - k)), where, "norm * 2^root_shift can reach 2^62");
        break;
      }
      default: break;  // float ops and DEQUANTIZE give float values
    }
    n.value_shift = sy == kFloat ? 0 : sy;
    shift.push_back(sy);
    lo.push_back(least);
  }
  need(shift.back() == kFloat, "model", "the output is int16; an int16 network ends with DEQUANTIZE");
}

// Channel counts must chain from the model input through every node to the output.
inline void check_graph(ModelDesc& m) {
  std::vector<int> ch{m.in_channels};
  for (std::size_t i = 0; i < m.nodes.size(); ++i) {
    NodeDesc& n = m.nodes[i];
    const std::string where = "node " + std::to_string(i) + " (" + op_name(n.op) + ")";
    const int c = ch[static_cast<std::size_t>(n.inputs[0])];
    int out = c;
    if (is_conv(n.op)) {
      if (n.cin != c)
        throw Error(where + " expects " + std::to_string(n.cin) + " input channels, gets " +
                    std::to_string(c));
      out = n.cout;
    } else if ((n.op == Op::kGdn || n.op == Op::kS16Gdn) && n.channels != c) {
      throw Error(where + " expects " + std::to_string(n.channels) + " channels, gets " +
                  std::to_string(c));
    } else if (n.op == Op::kAdd || n.op == Op::kS16Add) {
      const int c2 = ch[static_cast<std::size_t>(n.inputs[1])];
      if (c2 != c)
        throw Error(where + " adds " + std::to_string(c) + " and " + std::to_string(c2) +
                    " channels");
    }
    n.out_channels = out;
    ch.push_back(out);
  }
  if (ch.back() != m.out_channels)
    throw Error("model declares " + std::to_string(m.out_channels) +
                " output channels, its last node gives " + std::to_string(ch.back()));
  check_int16(m);
}

}  // namespace detail

// Parses and validates a complete .licm file held in memory. `verify_hash = false` skips
// recomputing the body's FNV-1a (7 ms for a 6 MB model) for bytes compiled into a program,
// which were hashed when it was built; every other check is made.
inline ModelDesc parse_model(const std::uint8_t* data, std::size_t size, bool verify_hash = true) {
  if (data == nullptr || size < kModelHeaderSize)
    throw Error("model file too short (" + std::to_string(size) + " bytes) for a .licm header");
  if (std::memcmp(data, "LICM", 4) != 0) throw Error("not a lic2cpp model file (bad magic)");
  ByteReader r(data, size, "model file", 4);
  ModelDesc m;
  m.version_major = r.u16();
  m.version_minor = r.u16();
  if (m.version_major != kFormatMajor)
    throw Error("unsupported model format version " + std::to_string(m.version_major) +
                ".x (this reader: 1.x)");
  const std::uint64_t body_size = r.u64();
  if (body_size != size - kModelHeaderSize)
    throw Error("model body size " + std::to_string(body_size) +
                " disagrees with the file size (" + std::to_string(size - kModelHeaderSize) +
                " bytes after the header)");
  m.fingerprint = r.u64();
  if (verify_hash && fnv1a64(data + kModelHeaderSize, size - kModelHeaderSize) != m.fingerprint)
    throw Error("model fingerprint mismatch (corrupt file)");

  m.in_channels = detail::checked_channels(r.u32("in_channels"), "in_channels");
  m.out_channels = detail::checked_channels(r.u32("out_channels"), "out_channels");
  const std::uint32_t count = r.u32("node_count");
  if (count < 1 || count > kMaxNodes)
    throw Error("node_count = " + std::to_string(count) + " is outside 1.." +
                std::to_string(kMaxNodes));
  const std::uint32_t name_len = r.u32("name length");
  if (name_len > kMaxName)
    throw Error("model name length " + std::to_string(name_len) + " exceeds " +
                std::to_string(kMaxName));
  const std::size_t padded = (name_len + 3u) & ~std::size_t(3);
  r.need(padded, "name");
  if (!detail::valid_utf8(r.here(), name_len)) throw Error("model name is not valid UTF-8");
  m.name.assign(reinterpret_cast<const char*>(r.here()), name_len);
  for (std::size_t i = name_len; i < padded; ++i)
    if (r.here()[i] != 0) throw Error("non-zero padding after the model name");
  r.skip(padded, "name");
  m.nodes.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i)
    m.nodes.push_back(detail::read_node(r, static_cast<int>(i), m.version_minor));
  if (r.remaining() != 0)
    throw Error(std::to_string(r.remaining()) + " trailing bytes after the last node");
  detail::check_graph(m);
  return m;
}

}  // namespace lic
