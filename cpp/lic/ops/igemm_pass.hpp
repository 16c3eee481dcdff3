// Shared machinery of the convolution operators: weights packed once at load time into
// 16-channel panels, and the row loop that feeds the implicit-GEMM micro-kernel.
//
// A "pass" is one ordinary stride-s convolution over a zero-padded copy of the input:
// CONV2D is one pass; CONV_TRANSPOSE2D is split into stride_h * stride_w passes (its
// sub-pixel phases), each an ordinary small convolution, so no scatter is ever needed.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "lic/kernels/dispatch.hpp"
#include "lic/kernels/contracts.hpp"
#include "lic/parallel.hpp"
#include "lic/tensor.hpp"
#include "lic/workspace.hpp"

namespace lic {

// Weights of one pass: taps (dy, dx) relative to the anchor input pixel, packed as
// [panel][tap][ci][16] with output channels past `cout` zero, and the bias per panel.
struct PackedPass {
  int kc = 0;    // input channels
  int cout = 0;  // output channels
  int panels = 0;
  std::vector<int> dy, dx;
  std::vector<float> w;
  std::vector<float> bias;
  // Where the weights are when they live in a buffer shared by many passes (the Winograd
  // form's, conv_winograd.hpp: one allocation mapped in at once rather than a page fault per
  // page of each pass); otherwise w.
  float* shared_w = nullptr;

  int ntaps() const { return static_cast<int>(dy.size()); }
  const float* weights() const { return shared_w ? shared_w : w.data(); }
  float* weights() { return shared_w ? shared_w : w.data(); }

  // weight_at(co, tap, ci) gives the weight; taps were pushed into dy/dx already.
  template <class WeightAt>
  void pack(const std::vector<float>& bias_in, WeightAt weight_at) {
    constexpr int nr = kern::kNR;
    panels = (cout + nr - 1) / nr;
    const std::size_t nt = dy.size();
    w.clear();
    resize_populated(w, std::size_t(panels) * nt * std::size_t(kc) * nr);  // zeros
    bias.assign(std::size_t(panels) * nr, 0.0f);
    for (int co = 0; co < cout; ++co) bias[std::size_t(co)] = bias_in[std::size_t(co)];
    // In the packed array's order (16 source rows read at a time): writing it column by
    // column was 2x slower, and packing is much of a program's start-up.
    float* dst = w.data();
    for (int p = 0; p < panels; ++p) {
      const int cols = std::min(nr, cout - p * nr);
      for (std::size_t t = 0; t < nt; ++t)
        for (int ci = 0; ci < kc; ++ci, dst += nr)
          for (int j = 0; j < cols; ++j) dst[j] = weight_at(p * nr + j, static_cast<int>(t), ci);
    }
  }
};

// Run-time geometry of a whole-tensor pass along one axis (the int16 ops, s16_conv.hpp):
// output j (0 <= j < n) is at out0 + j * out_step and its anchor input pixel at padded
// coordinate in0 + j * in_step.
struct PassAxis {
  int n = 0;
  int out0 = 0, out_step = 1;
  int in0 = 0, in_step = 1;
};

// Input rows an operator reads, in the zero-padded layout it needs. Row r (input
// coordinates; rows before 0 or past the end are zero padding rows) starts at
// data + (r - row0) * width * channels; padded column 0 is input column -left, and the
// margins (left, and width - left - input width on the right) are zero. A whole padded
// tensor and a band of a streamed run (lic/stream.hpp) are both windows.
struct RowWindow {
  const float* data = nullptr;
  int row0 = 0;
  int width = 0, channels = 0, left = 0;
  const float* row(int r) const {
    return data + std::ptrdiff_t(r - row0) * width * channels;
  }
};

// Where an operator writes its output rows: row r at data + (r - row0) * stride floats
// (pixels `channels` floats apart).
struct RowOut {
  float* data = nullptr;
  int row0 = 0;
  std::ptrdiff_t stride = 0;
  float* row(int r) const { return data + std::ptrdiff_t(r - row0) * stride; }
};

// A zero-padded copy of a whole input tensor (the whole-tensor execution path).
struct PaddedInput {
  std::vector<float> data;
  RowWindow window;
};

// Storage comes from `pool`; only the margins are zeroed, the interior is copied.
inline PaddedInput pad_input(const Tensor& in, int top, int left, int bottom, int right,
                             BufferPool& pool) {
  PaddedInput p;
  const int height = in.height + top + bottom;
  const int width = in.width + left + right;
  p.data = pool.take(Tensor::checked_size(height, width, in.channels));
  p.window = RowWindow{p.data.data(), -top, width, in.channels, left};
  const std::size_t c = std::size_t(in.channels);
  const std::size_t prow = std::size_t(width) * c;
  const std::size_t row = std::size_t(in.width) * c;
  float* d = p.data.data();
  std::fill(d, d + std::size_t(top) * prow, 0.0f);
  std::fill(d + std::size_t(top + in.height) * prow, d + std::size_t(height) * prow, 0.0f);
  for (int y = 0; y < in.height; ++y) {
    float* r = d + std::size_t(y + top) * prow;
    std::fill(r, r + std::size_t(left) * c, 0.0f);
    std::memcpy(r + std::size_t(left) * c, in.data.data() + std::size_t(y) * row,
                row * sizeof(float));
    std::fill(r + std::size_t(left) * c + row, r + prow, 0.0f);
  }
  return p;
}

// Output rows of a whole tensor.
inline RowOut rows_of(Tensor& t) {
  return RowOut{t.data.data(), 0, std::ptrdiff_t(t.width) * t.channels};
}

inline int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline int ceil_div(int a, int b) { return -floor_div(-a, b); }

// A reduction is split into blocks of whole taps whose weights (per 16-channel panel) fit
// in half of a 512 KiB L2, so they stay cached while every tile of the row uses them.
// Measured on g_a/g_s (128 channels, 25 taps = 200 KiB per panel, so one block): blocks
// sized for L1 (16 or 32 KiB) were 5-25% slower per layer than no split at all, the
// partial-sum reloads costing more than the L2 reads they save.
constexpr std::size_t kBlockWeightFloats = 65536;

// Taps per reduction block for `kc` input channels (at least one).
inline int taps_per_block(int kc) {
  return static_cast<int>(std::max<std::size_t>(
      1, kBlockWeightFloats / (std::size_t(kc) * std::size_t(kern::kNR))));
}

// Panels are computed in groups: two at a time where the kernels have a 32-column form
// (and both panels are full), otherwise one. Work is split between threads by group.
inline int panel_group(const kern::KernelTable& k) { return k.mr32 > 0 ? 2 : 1; }
inline int panel_groups(const kern::KernelTable& k, const PackedPass& pp) {
  return (pp.panels + panel_group(k) - 1) / panel_group(k);
}

// Pieces to cut each output row into for a parallel loop over `rows` rows of `width`
// pixels: one per thread when there are fewer rows than threads (a streamed band of a
// wide image may hold a single row, and splitting it by panels instead would have every
// thread read the whole input row), none narrower than 64 pixels. Every output value is
// computed the same way whatever the split.
inline int column_pieces(const ThreadPool& threads, int rows, int width) {
  if (rows >= threads.size()) return 1;
  return std::max(1, std::min(threads.size(), width / 64));
}

// Bounds of piece `piece` of `pieces` over [0, n).
inline void piece_bounds(int n, int pieces, int piece, int& begin, int& end) {
  begin = static_cast<int>(static_cast<long long>(n) * piece / pieces);
  end = static_cast<int>(static_cast<long long>(n) * (piece + 1) / pieces);
}

// fn(row, x0, x1, p0, p1) for every item (row, column piece [x0, x1), panels [p0, p1)) of
// rows [r0, r1) of `width` pixels computed with pass `pp`, the items shared out between
// the threads in that order (column pieces only when rows are fewer than threads).
template <class Fn>
void for_row_pieces(ThreadPool& threads, const kern::KernelTable& k, const PackedPass& pp, int r0,
                    int r1, int width, Fn&& fn) {
  const int groups = panel_groups(k, pp), g = panel_group(k);
  const int pieces = column_pieces(threads, r1 - r0, width);
  threads.parallel_for((r1 - r0) * pieces * groups, [&](int i0, int i1) {
    for (int i = i0; i < i1; ++i) {
      const int p = (i % groups) * g;
      int x0 = 0, x1 = 0;
      piece_bounds(width, pieces, i / groups % pieces, x0, x1);
      fn(r0 + i / (pieces * groups), x0, x1, p, std::min(p + g, pp.panels));
    }
  });
}

// One row of output pixels for panels [p0, p1) (all by default): `cols` pixels, anchors at
// a + x * a_stride, results at c + x * c_stride (+ 16 * panel). Loop order: panel (or pair
// of panels), block of taps, pixel tiles — a block's weights are read from cache by every
// tile of the row.
inline void igemm_row(const kern::KernelTable& k, const PackedPass& pp,
                      const std::ptrdiff_t* taps, const float* a, std::ptrdiff_t a_stride,
                      int cols, float* c, std::ptrdiff_t c_stride, int act, float alpha,
                      int p0 = 0, int p1 = -1) {
  const int ntaps = pp.ntaps();
  const std::size_t tap_size = std::size_t(pp.kc) * kern::kNR;
  const std::size_t panel_size = std::size_t(ntaps) * tap_size;
  const int block = taps_per_block(pp.kc);
  if (p1 < 0) p1 = pp.panels;
  for (int p = p0; p < p1;) {
    // Two panels at once when both are full and the kernels have the 32-column form.
    const bool pair = k.mr32 > 0 && p + 1 < p1 && (p + 2) * kern::kNR <= pp.cout;
    const int mr = pair ? k.mr32 : k.mr;
    const kern::IgemmFn* fns = pair ? k.igemm32 : k.igemm;
    kern::IgemmArgs args;
    args.a_stride = a_stride;
    args.kc = pp.kc;
    args.bias = pp.bias.data() + std::size_t(p) * kern::kNR;
    args.c_stride = c_stride;
    args.nc = pair ? 2 * kern::kNR : std::min(kern::kNR, pp.cout - p * kern::kNR);
    args.w_next = std::ptrdiff_t(panel_size);
    int t0 = 0;
    do {  // runs once even with no taps, to store the bias
      const int nt = std::min(block, ntaps - t0);
      args.taps = taps + t0;
      args.ntaps = nt;
      args.w = pp.weights() + std::size_t(p) * panel_size + std::size_t(t0) * tap_size;
      args.accumulate = t0 > 0;
      const bool last = t0 + nt >= ntaps;
      args.act = last ? act : kern::kActNone;
      args.alpha = alpha;
      for (int x = 0; x < cols; x += mr) {
        const int m = std::min(mr, cols - x);
        args.a = a + x * a_stride;
        args.c = c + x * c_stride + p * kern::kNR;
        fns[m - 1](args);
      }
      t0 += nt;
    } while (t0 < ntaps);
    p += pair ? 2 : 1;
  }
}

// Tap offsets (floats from the anchor) of a pass over rows of `width` pixels of
// `channels` (the pass's kc unless its taps are whole kernel rows, conv.hpp).
inline std::vector<std::ptrdiff_t> tap_offsets(const PackedPass& pp, int width, int channels) {
  std::vector<std::ptrdiff_t> taps(static_cast<std::size_t>(pp.ntaps()));
  for (std::size_t t = 0; t < taps.size(); ++t)
    taps[t] = (std::ptrdiff_t(pp.dy[t]) * width + pp.dx[t]) * channels;
  return taps;
}

}  // namespace lic
