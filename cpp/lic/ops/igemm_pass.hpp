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

  int ntaps() const { return static_cast<int>(dy.size()); }

  // weight_at(co, tap, ci) gives the weight; taps were pushed into dy/dx already.
  template <class WeightAt>
  void pack(const std::vector<float>& bias_in, WeightAt weight_at) {
    constexpr int nr = kern::kNR;
    panels = (cout + nr - 1) / nr;
    const std::size_t nt = dy.size();
    w.assign(std::size_t(panels) * nt * std::size_t(kc) * nr, 0.0f);
    bias.assign(std::size_t(panels) * nr, 0.0f);
    for (int co = 0; co < cout; ++co) {
      const std::size_t p = std::size_t(co / nr), j = std::size_t(co % nr);
      bias[p * nr + j] = bias_in[std::size_t(co)];
      for (std::size_t t = 0; t < nt; ++t)
        for (int ci = 0; ci < kc; ++ci)
          w[((p * nt + t) * std::size_t(kc) + std::size_t(ci)) * nr + j] =
              weight_at(co, static_cast<int>(t), ci);
    }
  }
};

// Run-time geometry of a pass along one axis: output j (0 <= j < n) is at out0 + j * out_step
// and its anchor input pixel at padded coordinate in0 + j * in_step.
struct PassAxis {
  int n = 0;
  int out0 = 0, out_step = 1;
  int in0 = 0, in_step = 1;
};

// A zero-padded copy of an input tensor.
struct PaddedInput {
  std::vector<float> data;
  int height = 0, width = 0, channels = 0;
};

// Storage comes from `pool`; only the margins are zeroed, the interior is copied.
inline PaddedInput pad_input(const Tensor& in, int top, int left, int bottom, int right,
                             BufferPool& pool) {
  PaddedInput p;
  p.height = in.height + top + bottom;
  p.width = in.width + left + right;
  p.channels = in.channels;
  p.data = pool.take(Tensor::checked_size(p.height, p.width, p.channels));
  const std::size_t c = std::size_t(p.channels);
  const std::size_t prow = std::size_t(p.width) * c;
  const std::size_t row = std::size_t(in.width) * c;
  float* d = p.data.data();
  std::fill(d, d + std::size_t(top) * prow, 0.0f);
  std::fill(d + std::size_t(top + in.height) * prow, d + std::size_t(p.height) * prow, 0.0f);
  for (int y = 0; y < in.height; ++y) {
    float* r = d + std::size_t(y + top) * prow;
    std::fill(r, r + std::size_t(left) * c, 0.0f);
    std::memcpy(r + std::size_t(left) * c, in.data.data() + std::size_t(y) * row,
                row * sizeof(float));
    std::fill(r + std::size_t(left) * c + row, r + prow, 0.0f);
  }
  return p;
}

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

// One row of output pixels for every panel: `cols` pixels, anchors at a + x * a_stride,
// results at c + x * c_stride (+ 16 * panel). Loop order: panel, block of taps, pixel
// tiles — a block's weights are read from cache by every tile of the row.
inline void igemm_row(const kern::KernelTable& k, const PackedPass& pp,
                      const std::ptrdiff_t* taps, const float* a, std::ptrdiff_t a_stride,
                      int cols, float* c, std::ptrdiff_t c_stride, int act, float alpha) {
  const int ntaps = pp.ntaps();
  const std::size_t tap_size = std::size_t(pp.kc) * kern::kNR;
  const std::size_t panel_size = std::size_t(ntaps) * tap_size;
  const int block = taps_per_block(pp.kc);
  for (int p = 0; p < pp.panels; ++p) {
    kern::IgemmArgs args;
    args.a_stride = a_stride;
    args.kc = pp.kc;
    args.bias = pp.bias.data() + std::size_t(p) * kern::kNR;
    args.c_stride = c_stride;
    args.nc = std::min(kern::kNR, pp.cout - p * kern::kNR);
    int t0 = 0;
    do {  // runs once even with no taps, to store the bias
      const int nt = std::min(block, ntaps - t0);
      args.taps = taps + t0;
      args.ntaps = nt;
      args.w = pp.w.data() + std::size_t(p) * panel_size + std::size_t(t0) * tap_size;
      args.accumulate = t0 > 0;
      const bool last = t0 + nt >= ntaps;
      args.act = last ? act : kern::kActNone;
      args.alpha = alpha;
      for (int x = 0; x < cols; x += kern::kMR) {
        const int m = std::min(kern::kMR, cols - x);
        args.a = a + x * a_stride;
        args.c = c + x * c_stride + p * kern::kNR;
        k.igemm[m - 1](args);
      }
      t0 += nt;
    } while (t0 < ntaps);
  }
}

// Runs one pass into `out`, splitting output rows over `threads` threads.
inline void run_pass(const PackedPass& pp, const PaddedInput& in, const PassAxis& ay,
                     const PassAxis& ax, Tensor& out, int act, float alpha, int threads) {
  if (ay.n <= 0 || ax.n <= 0) return;
  const kern::KernelTable& k = kern::kernels();
  const std::ptrdiff_t cin = pp.kc;
  std::vector<std::ptrdiff_t> taps(static_cast<std::size_t>(pp.ntaps()));
  for (std::size_t t = 0; t < taps.size(); ++t)
    taps[t] = (std::ptrdiff_t(pp.dy[t]) * in.width + pp.dx[t]) * cin;
  const std::ptrdiff_t cout = out.channels;
  parallel_for(ay.n, threads, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) {
      const std::ptrdiff_t iy = ay.in0 + std::ptrdiff_t(r) * ay.in_step;
      const std::ptrdiff_t oy = ay.out0 + std::ptrdiff_t(r) * ay.out_step;
      const float* a = in.data.data() + (iy * in.width + ax.in0) * cin;
      float* c = out.data.data() + (oy * out.width + ax.out0) * cout;
      igemm_row(k, pp, taps.data(), a, ax.in_step * cin, ax.n, c, ax.out_step * cout, act,
                alpha);
    }
  });
}

}  // namespace lic
