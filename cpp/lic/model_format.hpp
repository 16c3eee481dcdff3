// Parsing and validating a .licm model file (docs/model-format.md, version 1.0).
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
};

inline const char* op_name(Op op) {
  switch (op) {
    case Op::kConv2d: return "conv2d";
    case Op::kConvTranspose2d: return "conv_transpose2d";
    case Op::kRelu: return "relu";
    case Op::kLeakyRelu: return "leaky_relu";
    case Op::kGdn: return "gdn";
    case Op::kAdd: return "add";
  }
  return "?";
}

constexpr std::uint16_t kFormatMajor = 1;
constexpr std::size_t kModelHeaderSize = 24;
constexpr std::uint32_t kMaxNodes = 4096;
constexpr std::uint32_t kMaxChannels = 4096;
constexpr std::uint32_t kMaxKernel = 15;
constexpr std::uint32_t kMaxStride = 8;
constexpr std::uint32_t kMaxName = 256;

struct NodeDesc {
  Op op = Op::kRelu;
  std::vector<int> inputs;  // value ids: 0 = model input, node i gives i + 1
  // CONV2D / CONV_TRANSPOSE2D
  int cin = 0, cout = 0, kh = 0, kw = 0, stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0, out_pad_h = 0, out_pad_w = 0;
  std::vector<float> weight;  // [cout][kh][kw][cin]
  std::vector<float> bias;    // [cout]; GDN: beta [C]
  // LEAKY_RELU
  float alpha = 0.0f;
  // GDN
  int channels = 0;
  int inverse = 0;
  std::vector<float> gamma;  // [C][C]
  // Derived while validating: channels of this node's output.
  int out_channels = 0;
};

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
  std::vector<float> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    out[i] = r.f32(what);
    if (!std::isfinite(out[i])) throw Error("non-finite value in " + what);
  }
  return out;
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
  const bool transposed = n.op == Op::kConvTranspose2d;
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
  n.weight = finite_f32s(r, wcount, where + " weight");
  n.bias = finite_f32s(r, std::size_t(n.cout), where + " bias");
}

inline NodeDesc read_node(ByteReader& r, int index) {
  std::string where = "node " + std::to_string(index);
  NodeDesc n;
  const std::uint32_t code = r.u32(where + " op");
  if (code < 1 || code > 6) throw Error(where + ": unknown op code " + std::to_string(code));
  n.op = static_cast<Op>(code);
  where += std::string(" (") + op_name(n.op) + ")";
  const std::uint32_t n_inputs = r.u32(where + " input count");
  const std::uint32_t expected = n.op == Op::kAdd ? 2 : 1;
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
      read_conv(r, n, where);
      break;
    case Op::kLeakyRelu:
      n.alpha = r.f32(where + " alpha");
      if (!std::isfinite(n.alpha)) throw Error("non-finite value in " + where + " alpha");
      break;
    case Op::kGdn: {
      n.channels = checked_channels(r.u32(where + " channels"), where + " channels");
      const std::uint32_t inv = r.u32(where + " inverse flag");
      if (inv > 1)
        throw Error(where + " inverse flag is " + std::to_string(inv) + ", expected 0 or 1");
      n.inverse = static_cast<int>(inv);
      n.bias = finite_f32s(r, std::size_t(n.channels), where + " beta");
      n.gamma = finite_f32s(r, std::size_t(n.channels) * std::size_t(n.channels), where + " gamma");
      break;
    }
    case Op::kRelu:
    case Op::kAdd:
      break;
  }
  return n;
}

// Channel counts must chain from the model input through every node to the output.
inline void check_graph(ModelDesc& m) {
  std::vector<int> ch{m.in_channels};
  for (std::size_t i = 0; i < m.nodes.size(); ++i) {
    NodeDesc& n = m.nodes[i];
    const std::string where = "node " + std::to_string(i) + " (" + op_name(n.op) + ")";
    const int c = ch[static_cast<std::size_t>(n.inputs[0])];
    int out = c;
    if (n.op == Op::kConv2d || n.op == Op::kConvTranspose2d) {
      if (n.cin != c)
        throw Error(where + " expects " + std::to_string(n.cin) + " input channels, gets " +
                    std::to_string(c));
      out = n.cout;
    } else if (n.op == Op::kGdn && n.channels != c) {
      throw Error(where + " expects " + std::to_string(n.channels) + " channels, gets " +
                  std::to_string(c));
    } else if (n.op == Op::kAdd) {
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
}

}  // namespace detail

// Parses and validates a complete .licm file held in memory.
inline ModelDesc parse_model(const std::uint8_t* data, std::size_t size) {
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
  if (fnv1a64(data + kModelHeaderSize, size - kModelHeaderSize) != m.fingerprint)
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
    m.nodes.push_back(detail::read_node(r, static_cast<int>(i)));
  if (r.remaining() != 0)
    throw Error(std::to_string(r.remaining()) + " trailing bytes after the last node");
  detail::check_graph(m);
  return m;
}

}  // namespace lic
