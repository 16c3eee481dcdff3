// Running a transform in tiles: the geometry that lets g_a or g_s run on overlapping windows
// of its input and give, inside each tile, exactly the values of a whole-image run
// (docs/library.md#tiled-decoding).
//
// Why tiles are exact. Every operator of the format computes each output value from the
// input values in its kernel window only, with the same code and in the same order wherever
// the value lies (the GEMM micro-kernel accumulates one pixel's taps in a fixed order whatever
// tile of 1-6 pixels it sits in; transposed convolutions pick their phase from the parity of
// the global position, which a tile keeps because its origin is a whole latent cell; the
// gather sums a pixel's contributions in kernel order; element-wise kernels are bit-identical
// to their scalar twins at any offset). So a value in a tile equals the whole-image value when
// every input value it reads holds the whole-image value, and reads outside the tensor (zero
// padding) fall outside the whole image too. TilePlan checks that second condition for every
// tile and every value of the graph before any work: the spans each value must provide
// (back-propagated from the tile's interior) must lie in the tile's extent of that value, and
// where a span reaches past the image's edge the tile must end on that edge.
//
// Tiles are placed on the latent grid: interiors of T cells, windows of T + halo cells
// shifted (not clipped) at the borders, so every window of a plan has the same shape and
// the runtime's buffer pool is reused from tile to tile without growing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "lic/model_format.hpp"
#include "lic/ops/conv.hpp"
#include "lic/ops/conv_transpose.hpp"

namespace lic::codec {

// The memory budget cannot hold even the smallest tile (the message gives the minimum).
class BudgetError : public Error {
 public:
  using Error::Error;
};

// A half-open interval [lo, hi) on one axis.
struct Span {
  long long lo = 0, hi = 0;
  bool empty() const { return hi <= lo; }
  Span clamp(long long size) const { return {std::max(lo, 0LL), std::min(hi, size)}; }
  Span hull(const Span& o) const {
    if (empty()) return o;
    if (o.empty()) return *this;
    return {std::min(lo, o.lo), std::max(hi, o.hi)};
  }
  bool operator==(const Span& o) const {
    return (empty() && o.empty()) || (lo == o.lo && hi == o.hi);
  }
};

inline long long floor_div(long long a, long long b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline long long ceil_div(long long a, long long b) { return -floor_div(-a, b); }

// "1.5 GiB", "256.0 MiB", "12.3 KiB": sizes in messages.
inline std::string size_text(double bytes) {
  char buf[32];
  if (bytes >= 1024.0 * 1024 * 1024)
    std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
  else if (bytes >= 1024.0 * 1024)
    std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / (1024.0 * 1024));
  else
    std::snprintf(buf, sizeof buf, "%.1f KiB", bytes / 1024.0);
  return buf;
}

// The spatial shape of a network's graph (no weights): what tiling needs to know.
class NetGeometry {
 public:
  struct Node {
    Op op = Op::kRelu;
    std::vector<int> inputs;
    int k[2] = {1, 1}, s[2] = {1, 1}, pad_lo[2] = {0, 0}, pad_hi[2] = {0, 0}, out_pad[2] = {0, 0};
    int cin = 0, cout = 0;  // cout: channels of the node's output (every op)
    bool fused = false;     // an activation folded into the convolution before it
    bool winograd = false;  // computed in tiles of kM outputs along x (conv_winograd.hpp)
    bool pairs = false;     // and its output rows in pairs, by the parity of their pair indexes
  };

  explicit NetGeometry(const ModelDesc& d) : in_channels_(d.in_channels), out_channels_(d.out_channels) {
    std::vector<int> readers(d.nodes.size() + 1, 0);
    for (const NodeDesc& n : d.nodes)
      for (int v : n.inputs) ++readers[size_t(v)];
    for (const NodeDesc& n : d.nodes) {
      Node g;
      g.op = n.op;
      g.inputs = n.inputs;
      g.cout = n.out_channels;
      // The int16 operators (docs/int16.md) have the float ones' geometry.
      if (n.op == Op::kS16Conv2d) g.op = Op::kConv2d;
      if (n.op == Op::kS16ConvTranspose2d) g.op = Op::kConvTranspose2d;
      if (n.op == Op::kS16Relu || n.op == Op::kS16LeakyRelu) g.op = Op::kLeakyRelu;
      if (n.op == Op::kS16Add) g.op = Op::kAdd;
      if (n.op == Op::kS16Gdn) g.op = Op::kGdn;
      if (is_conv(n.op)) {
        g.k[0] = n.kh, g.k[1] = n.kw, g.s[0] = n.stride_h, g.s[1] = n.stride_w;
        g.pad_lo[0] = n.pad_top, g.pad_lo[1] = n.pad_left;
        g.pad_hi[0] = n.pad_bottom, g.pad_hi[1] = n.pad_right;
        g.out_pad[0] = n.out_pad_h, g.out_pad[1] = n.out_pad_w;
        g.cin = n.cin;
        g.cout = n.cout;
      }
      g.winograd = (n.op == Op::kConv2d && WinogradConv::suits(n)) ||
                   (n.op == Op::kConvTranspose2d &&
                    ConvTranspose2dOp::uses_winograd(n.cin, n.cout, n.kh, n.kw, n.stride_h, n.stride_w));
      g.pairs = g.winograd && WinogradConv::pairs_rows_of(
                                  n.op == Op::kConv2d ? WinogradConv::conv2d_geometry(n)
                                                      : ConvTranspose2dOp::winograd_geometry(n));
      nodes_.push_back(g);
    }
    // The runtime's activation fusion (lic/runtime.hpp): such an activation allocates nothing.
    for (size_t i = 0; i + 1 < nodes_.size(); ++i) {
      const bool conv = nodes_[i].op == Op::kConv2d || nodes_[i].op == Op::kConvTranspose2d;
      const Node& next = nodes_[i + 1];
      const bool act = next.op == Op::kRelu || next.op == Op::kLeakyRelu;
      if (conv && !nodes_[i].fused && act && next.inputs[0] == int(i + 1) && readers[i + 1] == 1)
        nodes_[i + 1].fused = true;
    }
  }

  int in_channels() const { return in_channels_; }
  int out_channels() const { return out_channels_; }
  const std::vector<Node>& nodes() const { return nodes_; }

  // Size of every value along `axis` (0 rows, 1 columns) for an input of n; 0 where the
  // input is too small for some kernel.
  std::vector<long long> sizes(int axis, long long n) const {
    std::vector<long long> z(1, n);
    for (const Node& g : nodes_) {
      long long v = z[size_t(g.inputs[0])];
      if (v > 0 && g.op == Op::kConv2d)
        v = Conv2dOp::out_size(int(std::min(v, 1LL << 30)), g.k[axis], g.s[axis], g.pad_lo[axis],
                               g.pad_hi[axis]);
      else if (v > 0 && g.op == Op::kConvTranspose2d)
        v = std::max(0LL, ConvTranspose2dOp::out_size(int(std::min(v, 1LL << 30)), g.k[axis],
                                                      g.s[axis], g.pad_lo[axis], g.pad_hi[axis],
                                                      g.out_pad[axis]));
      z.push_back(v);
    }
    return z;
  }

  // The span of every value that the model output's span `out` reads, directly or not
  // (unclamped: negative or past-the-end positions are the operators' zero padding).
  std::vector<Span> needs(int axis, Span out) const {
    std::vector<Span> need(nodes_.size() + 1);
    need.back() = out;
    for (size_t i = nodes_.size(); i-- > 0;) {
      const Node& g = nodes_[i];
      Span o = need[i + 1];
      if (o.empty()) continue;
      const long long k = g.k[axis], s = g.s[axis], p = g.pad_lo[axis];
      if (axis == 1 && g.winograd) o = whole_tiles(o, g.op == Op::kConv2d ? 1 : s);
      Span in = o;
      if (g.op == Op::kConv2d) {
        in = {o.lo * s - p, (o.hi - 1) * s - p + k};
      } else if (g.op == Op::kConvTranspose2d) {
        // output o = i*s - p + kk for kernel taps kk < k
        in = {ceil_div(o.lo + p - k + 1, s), floor_div(o.hi - 1 + p, s) + 1};
      }
      for (int v : g.inputs) need[size_t(v)] = need[size_t(v)].hull(in);
    }
    return need;
  }

  // The outputs a Winograd layer computes with the outputs `o`: whole tiles of kM outputs of
  // each phase (outputs c + j * s, j counted from 0 in the whole image; s = 1 for CONV2D).
  // Transforms mix a tile's inputs, so every input of a needed output's tile must be exact.
  static Span whole_tiles(Span o, long long s) {
    const long long m = WinogradConv::kM;
    Span all;
    for (long long c = 0; c < s; ++c) {
      const long long first = o.lo + ((c - o.lo) % s + s) % s;  // first output of phase c in o
      if (first >= o.hi) continue;
      const long long j0 = floor_div(first - c, s), j1 = floor_div(o.hi - 1 - c, s);
      all = all.hull({c + s * (floor_div(j0, m) * m), c + s * (floor_div(j1, m) * m + m - 1) + 1});
    }
    return all;
  }

  // Whether, with the values starting at `orgs` (origins()), every Winograd layer's tiles
  // fall on the whole image's grid along `axis`: along x its first phase index a multiple
  // of kM; along y, where it pairs rows, its input's origin a multiple of two anchor steps
  // (a CONV2D's stride, a transposed convolution's 1: the rows' pair indexes keep their
  // parity).
  bool tiles_aligned(int axis, const std::vector<long long>& orgs) const {
    if (axis == 0) {
      for (const Node& g : nodes_) {
        const long long unit = 2LL * (g.op == Op::kConv2d ? g.s[0] : 1);
        if (g.pairs && orgs[size_t(g.inputs[0])] % unit != 0) return false;
      }
      return true;
    }
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const Node& g = nodes_[i];
      const long long step = WinogradConv::kM * (g.op == Op::kConv2d ? 1 : g.s[axis]);
      if (g.winograd && orgs[i + 1] % step != 0) return false;
    }
    return true;
  }

  // Origin (global position of the first element) of every value when the input starts at
  // global position `org`; false when a strided convolution's grid would not be the whole
  // image's (the input origin must be a multiple of its stride) or ADD operands disagree.
  bool origins(int axis, long long org, std::vector<long long>& orgs) const {
    orgs.assign(1, org);
    for (const Node& g : nodes_) {
      long long o = orgs[size_t(g.inputs[0])];
      if (g.op == Op::kConv2d) {
        if (o % g.s[axis] != 0) return false;
        o /= g.s[axis];
      } else if (g.op == Op::kConvTranspose2d) {
        o *= g.s[axis];
      } else if (g.op == Op::kAdd && orgs[size_t(g.inputs[1])] != o) {
        return false;
      }
      orgs.push_back(o);
    }
    return true;
  }

  // Bytes that Model::run may allocate for an h x w input, the output included (not the
  // input): the sum of every buffer the operators take (as if the runtime's pool reused
  // none) plus the largest per-thread scratch. An upper bound of the whole-tensor executor
  // (lic/runtime.hpp and lic/ops/), which is tight for the growing tensors of g_s. The
  // int16 operators (lic/ops/s16_*.hpp) take the same buffers with 2-byte values (4-byte
  // accumulators): counted as float ones, an upper bound too.
  size_t run_bytes(long long h, long long w, int threads) const {
    std::vector<long long> hs = sizes(0, h), ws = sizes(1, w);
    std::vector<int> cs(1, in_channels_);
    long long total = 0, scratch = 0;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const Node& g = nodes_[i];
      cs.push_back(g.cout);
      const size_t in = size_t(g.inputs[0]);
      const long long ih = hs[in], iw = ws[in], oh = hs[i + 1], ow = ws[i + 1];
      if (g.fused) continue;
      total += oh * ow * g.cout;
      if (g.op == Op::kConv2d) {
        // pad_input: the file's top/left padding and what the windows reach past the end
        const long long need_h = (oh - 1) * g.s[0] + g.k[0] - g.pad_lo[0];
        const long long need_w = (ow - 1) * g.s[1] + g.k[1] - g.pad_lo[1];
        total += (ih + g.pad_lo[0] + std::max(0LL, need_h - ih)) *
                 (iw + g.pad_lo[1] + std::max(0LL, need_w - iw)) * g.cin;
        if (g.cin < Conv2dOp::kIm2colBelow)
          scratch = std::max(scratch, threads * ow * g.k[0] * g.k[1] * (long long)g.cin);
        if (WinogradConv::suits(g.cin, g.k[0], g.k[1], g.s[1]))
          scratch = std::max(scratch, WinogradConv::scratch_floats(g.cin, g.cout, g.k[0], g.k[1],
                                                                   g.s[0], g.s[1], ow, threads));
      } else if (g.op == Op::kConvTranspose2d) {
        if (g.cout < ConvTranspose2dOp::kGatherBelow) {
          // column buffer of a band of 32 output rows: the input rows it reads
          const long long rows = std::min<long long>(ih, (32 + g.k[0] - 1) / g.s[0] + 2);
          total += rows * iw * g.k[0] * g.k[1] * g.cout;
        } else {
          // zero padding of the phases: at most ceil(k/s) before and after, plus the
          // output padding's extra row (and the Winograd form's last whole tile)
          const long long py = ceil_div(g.k[0], g.s[0]) + 1, px = ceil_div(g.k[1], g.s[1]) + 1;
          total += (ih + 2 * py) * (iw + 2 * px + (g.winograd ? WinogradConv::kM : 0)) * g.cin;
          if (g.winograd)
            scratch = std::max(scratch, WinogradConv::transposed_scratch_floats(
                                            g.cin, g.cout, int(py), g.k[1], g.s[1], ow, threads));
        }
      } else if (g.op == Op::kGdn) {
        scratch = std::max(scratch, threads * 2 * ow * (long long)g.cout);
      }
    }
    return size_t(total + scratch) * sizeof(float);
  }

 private:
  int in_channels_ = 0, out_channels_ = 0;
  std::vector<Node> nodes_;
};

// Tiles along one axis, in latent cells: interiors [a, b) that partition [0, L) and windows
// [w0, w0 + window) that hold each interior plus the halo.
struct AxisTile {
  long long a = 0, b = 0, w0 = 0;
};

struct AxisPlan {
  long long length = 0, interior = 0, window = 0;
  std::vector<AxisTile> tiles;
};

// Where a network runs from and to: `in_unit` and `out_unit` are the sizes of one latent
// cell at the network's input and output (g_s: 1 and the downsampling factor m; g_a: m and 1).
struct TileGrid {
  const NetGeometry* net = nullptr;
  long long in_unit = 1, out_unit = 1;
  long long halo_lo[2] = {0, 0}, halo_hi[2] = {0, 0};
  // Window origins are multiples of this many cells (Winograd layers' tiles on the whole
  // image's grid); 0 where no origin short of 64 cells does, so the axis is not cut.
  long long align[2] = {1, 1};

  TileGrid(const NetGeometry& g, long long in_u, long long out_u) : net(&g), in_unit(in_u), out_unit(out_u) {
    // The halo: latent cells beyond an interior cell that its output reads, over every phase
    // (and every position of a cell in the Winograd layers' tiles).
    for (int axis = 0; axis < 2; ++axis)
      for (long long K = 64; K < 64 + 64; ++K) {
        const Span in = net->needs(axis, {K * out_unit, (K + 1) * out_unit})[0];
        if (in.empty()) continue;
        halo_lo[axis] = std::max(halo_lo[axis], K - floor_div(in.lo, in_unit));
        halo_hi[axis] = std::max(halo_hi[axis], ceil_div(in.hi, in_unit) - (K + 1));
      }
    std::vector<long long> orgs;
    for (int axis = 0; axis < 2; ++axis) {
      align[axis] = 0;
      for (long long a = 1; a <= 64 && align[axis] == 0; ++a)
        if (net->origins(axis, a * in_unit, orgs) && net->tiles_aligned(axis, orgs)) align[axis] = a;
    }
  }

  AxisPlan plan(int axis, long long length, long long interior) const {
    AxisPlan p;
    p.length = length;
    p.interior = std::max(1LL, std::min(interior, length));
    const long long a_cells = align[axis];
    if (a_cells == 0) p.interior = length;
    // One cell short of alignment on the left is made up on the right; the last window
    // ends on the image's edge, so the window is sized to leave an aligned origin there.
    p.window = std::min(length, p.interior + halo_lo[axis] + halo_hi[axis] + std::max(0LL, a_cells - 1));
    if (p.interior == length) p.window = length;
    if (a_cells > 0 && p.window < length) p.window += (length - p.window) % a_cells;
    for (long long a = 0; a < length; a += p.interior) {
      AxisTile t;
      t.a = a;
      t.b = std::min(length, a + p.interior);
      t.w0 = std::min(std::max(0LL, a - halo_lo[axis]), length - p.window);
      if (a_cells > 0) t.w0 -= t.w0 % a_cells;
      p.tiles.push_back(t);
    }
    return p;
  }

  // Throws unless every tile of `p` gives the whole-image values inside its interior.
  void check(int axis, const AxisPlan& p, const char* what) const {
    const std::vector<long long> whole = net->sizes(axis, p.length * in_unit);
    std::vector<long long> orgs;
    for (const AxisTile& t : p.tiles) {
      const std::vector<long long> size = net->sizes(axis, p.window * in_unit);
      const std::vector<Span> need = net->needs(axis, {t.a * out_unit, t.b * out_unit});
      bool ok = net->origins(axis, t.w0 * in_unit, orgs) && net->tiles_aligned(axis, orgs);
      for (size_t v = 0; ok && v < need.size(); ++v) {
        // positions the tile reads as data must be exactly those the whole image holds
        const Span tile_extent{orgs[v], orgs[v] + size[v]};
        const Span in_image = Span{need[v]}.clamp(whole[v]);
        const Span in_tile{std::max(need[v].lo, tile_extent.lo), std::min(need[v].hi, tile_extent.hi)};
        ok = size[v] > 0 && in_image == in_tile;
      }
      if (!ok)
        throw Error(std::string("the ") + what +
                    " network cannot run in tiles (its strides or padding do not keep the "
                    "latent grid)");
    }
  }
};

}  // namespace lic::codec
