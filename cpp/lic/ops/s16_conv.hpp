// S16_CONV2D and S16_CONV_TRANSPOSE2D: the int16 convolutions of docs/int16.md, by the same
// design as the float ones (lic/ops/conv.hpp, lic/ops/conv_transpose.hpp): weights packed
// once into 16-channel panels, one implicit-GEMM pass per convolution or per sub-pixel
// phase of a transposed one, im2col rows for few input channels, GEMM + gather for few
// output channels. The panels hold channel pairs for vpmaddwd, the sums are exact int32,
// and the store shifts, saturates and applies the fused activation.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "lic/kernels/dispatch.hpp"
#include "lic/kernels/s16-arith.hpp"
#include "lic/model_format.hpp"
#include "lic/ops/conv.hpp"
#include "lic/ops/conv_transpose.hpp"
#include "lic/ops/igemm_pass.hpp"
#include "lic/parallel.hpp"
#include "lic/tensor.hpp"
#include "lic/workspace.hpp"

namespace lic {

// The buffers the int16 operators recycle (see lic/workspace.hpp).
struct S16Pools {
  S16BufferPool s16;
  BasicBufferPool<std::int32_t> s32;
};

// How an int16 convolution stores: accumulator shift, fused activation (docs/int16.md).
struct S16Store {
  int shift = 0;
  int act = kern::kActNone;
  int alpha_q = 0, alpha_shift = 0;
};

// Weights of one pass, packed [panel][tap][pair][16][2] (channel pairs for vpmaddwd; zero
// past kc and past cout) and the bias per panel, int32 at the accumulator's shift with the
// rounding constant folded in.
struct PackedPassS16 {
  int kc = 0;
  int cout = 0;
  int panels = 0;
  std::vector<int> dy, dx;
  std::vector<std::int16_t> w;
  std::vector<std::int32_t> bias;

  int ntaps() const { return static_cast<int>(dy.size()); }
  int pairs() const { return (kc + 1) / 2; }

  template <class WeightAt>
  void pack(const std::vector<std::int32_t>& bias_in, std::int32_t round, WeightAt weight_at) {
    constexpr int nr = kern::kNR;
    panels = (cout + nr - 1) / nr;
    const std::size_t nt = dy.size(), np = std::size_t(pairs());
    w.clear();
    resize_populated(w, std::size_t(panels) * nt * np * 2 * nr);  // zeros
    bias.assign(std::size_t(panels) * nr, 0);
    for (int co = 0; co < cout; ++co) {
      const std::size_t p = std::size_t(co / nr), j = std::size_t(co % nr);
      // bias + 2^(n-1) <= 2^31 - 1: part of the file's worst case (docs/int16.md)
      bias[p * nr + j] = kern::wrap_add(bias_in.empty() ? 0 : bias_in[std::size_t(co)], round);
      for (std::size_t t = 0; t < nt; ++t)
        for (int ci = 0; ci < kc; ++ci)
          w[(((p * nt + t) * np + std::size_t(ci / 2)) * nr + j) * 2 + std::size_t(ci % 2)] =
              weight_at(co, static_cast<int>(t), ci);
    }
  }
};

// A zero-padded copy of an int16 input (margins zeroed, interior copied).
struct PaddedS16 {
  std::vector<std::int16_t> data;
  int height = 0, width = 0, channels = 0;
};

inline PaddedS16 pad_s16(const QTensor& in, int top, int left, int bottom, int right,
                         S16BufferPool& pool) {
  PaddedS16 p;
  p.height = in.height + top + bottom;
  p.width = in.width + left + right;
  p.channels = in.channels;
  p.data = pool.take(Tensor::checked_size(p.height, p.width, p.channels));
  const std::size_t c = std::size_t(p.channels);
  const std::size_t prow = std::size_t(p.width) * c, row = std::size_t(in.width) * c;
  std::int16_t* d = p.data.data();
  std::fill(d, d + std::size_t(top) * prow, std::int16_t(0));
  std::fill(d + std::size_t(top + in.height) * prow, d + std::size_t(p.height) * prow,
            std::int16_t(0));
  for (int y = 0; y < in.height; ++y) {
    std::int16_t* r = d + std::size_t(y + top) * prow;
    std::fill(r, r + std::size_t(left) * c, std::int16_t(0));
    std::memcpy(r + std::size_t(left) * c, in.data.data() + std::size_t(y) * row,
                row * sizeof(std::int16_t));
    std::fill(r + std::size_t(left) * c + row, r + prow, std::int16_t(0));
  }
  return p;
}

// One row of output pixels for every panel (no reduction blocking: docs in contracts.hpp).
// Writes int16 through `st` into c16, or raw int32 sums into c32 when it is set.
inline void s16_igemm_row(const kern::KernelTable& k, const PackedPassS16& pp,
                          const std::ptrdiff_t* taps, const std::int16_t* a,
                          std::ptrdiff_t a_stride, int cols, std::int16_t* c16,
                          std::int32_t* c32, std::ptrdiff_t c_stride, const S16Store& st) {
  const std::size_t panel_size = std::size_t(pp.ntaps()) * std::size_t(pp.pairs()) * 2 * kern::kNR;
  for (int p = 0; p < pp.panels; ++p) {
    kern::S16IgemmArgs args{};
    args.a_stride = a_stride;
    args.taps = taps;
    args.ntaps = pp.ntaps();
    args.kc = pp.kc;
    args.w = pp.w.data() + std::size_t(p) * panel_size;
    args.bias = pp.bias.data() + std::size_t(p) * kern::kNR;
    args.c_stride = c_stride;
    args.nc = std::min(kern::kNR, pp.cout - p * kern::kNR);
    args.shift = st.shift;
    args.act = st.act;
    args.alpha_q = st.alpha_q;
    args.alpha_shift = st.alpha_shift;
    for (int x = 0; x < cols; x += kern::kMR) {
      const int m = std::min(kern::kMR, cols - x);
      args.a = a + x * a_stride;
      args.c16 = c16 != nullptr ? c16 + x * c_stride + p * kern::kNR : nullptr;
      args.c32 = c32 != nullptr ? c32 + x * c_stride + p * kern::kNR : nullptr;
      k.s16_igemm[m - 1](args);
    }
  }
}

inline void run_pass_s16(const PackedPassS16& pp, const PaddedS16& in, const PassAxis& ay,
                         const PassAxis& ax, QTensor& out, const S16Store& st, int threads) {
  if (ay.n <= 0 || ax.n <= 0) return;
  const kern::KernelTable& k = kern::kernels();
  const std::ptrdiff_t cin = pp.kc;
  std::vector<std::ptrdiff_t> taps(std::size_t(pp.ntaps()) + 1, 0);
  for (int t = 0; t < pp.ntaps(); ++t)
    taps[std::size_t(t)] = (std::ptrdiff_t(pp.dy[std::size_t(t)]) * in.width + pp.dx[std::size_t(t)]) * cin;
  const std::ptrdiff_t cout = out.channels;
  parallel_for(ay.n, threads, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) {
      const std::ptrdiff_t iy = ay.in0 + std::ptrdiff_t(r) * ay.in_step;
      const std::ptrdiff_t oy = ay.out0 + std::ptrdiff_t(r) * ay.out_step;
      const std::int16_t* a = in.data.data() + (iy * in.width + ax.in0) * cin;
      std::int16_t* c = out.data.data() + (oy * out.width + ax.out0) * cout;
      s16_igemm_row(k, pp, taps.data(), a, ax.in_step * cin, ax.n, c, nullptr,
                    ax.out_step * cout, st);
    }
  });
}

inline std::int32_t rounding_constant(int shift) {
  return shift > 0 ? std::int32_t(1) << (shift - 1) : 0;
}

class S16Conv2dOp {
 public:
  explicit S16Conv2dOp(const NodeDesc& n) : n_(n) {
    shift_ = n.in_shift + n.weight_shift - n.out_shift;
    im2col_ = n.cin < Conv2dOp::kIm2colBelow;
    pass_.cout = n.cout;
    const std::vector<std::int16_t>& w = n.qweight;
    const int kh = n.kh, kw = n.kw, cin = n.cin;
    if (im2col_) {
      pass_.kc = kh * kw * cin;
      pass_.dy.push_back(0);
      pass_.dx.push_back(0);
      const std::size_t k = std::size_t(pass_.kc);
      pass_.pack(n.qbias, rounding_constant(shift_),
                 [&](int co, int, int i) { return w[std::size_t(co) * k + std::size_t(i)]; });
    } else {
      pass_.kc = cin;
      for (int ky = 0; ky < kh; ++ky)
        for (int kx = 0; kx < kw; ++kx) {
          pass_.dy.push_back(ky);
          pass_.dx.push_back(kx);
        }
      pass_.pack(n.qbias, rounding_constant(shift_), [&](int co, int t, int ci) {
        return w[((std::size_t(co) * std::size_t(kh) + std::size_t(t / kw)) * std::size_t(kw) +
                  std::size_t(t % kw)) * std::size_t(cin) + std::size_t(ci)];
      });
    }
    n_.qweight.clear();
    n_.qweight.shrink_to_fit();
  }

  void output_size(int h, int w, int& oh, int& ow) const {
    oh = Conv2dOp::out_size(h, n_.kh, n_.stride_h, n_.pad_top, n_.pad_bottom);
    ow = Conv2dOp::out_size(w, n_.kw, n_.stride_w, n_.pad_left, n_.pad_right);
    if (oh <= 0 || ow <= 0)
      throw Error("input " + std::to_string(h) + "x" + std::to_string(w) +
                  " is too small for a " + std::to_string(n_.kh) + "x" + std::to_string(n_.kw) +
                  " convolution");
  }

  QTensor run(const QTensor& in, S16Store st, int threads, S16Pools& pools) const {
    st.shift = shift_;
    int oh = 0, ow = 0;
    output_size(in.height, in.width, oh, ow);
    QTensor out = pooled_qtensor(pools.s16, oh, ow, n_.cout, n_.out_shift);
    const int need_h = (oh - 1) * n_.stride_h + n_.kh - n_.pad_top;
    const int need_w = (ow - 1) * n_.stride_w + n_.kw - n_.pad_left;
    PaddedS16 p = pad_s16(in, n_.pad_top, n_.pad_left, std::max(0, need_h - in.height),
                          std::max(0, need_w - in.width), pools.s16);
    if (im2col_) {
      run_im2col(p, out, st, threads);
    } else {
      PassAxis ay, ax;
      ay.n = oh;
      ay.in_step = n_.stride_h;
      ax.n = ow;
      ax.in_step = n_.stride_w;
      run_pass_s16(pass_, p, ay, ax, out, st, threads);
    }
    pools.s16.give(std::move(p.data));
    return out;
  }

  const NodeDesc& desc() const { return n_; }

 private:
  void run_im2col(const PaddedS16& p, QTensor& out, const S16Store& st, int threads) const {
    const kern::KernelTable& k = kern::kernels();
    const std::size_t kc = std::size_t(pass_.kc);
    const std::size_t span = std::size_t(n_.kw) * std::size_t(n_.cin);
    const std::ptrdiff_t tap0 = 0;
    parallel_for(out.height, threads, [&](int y0, int y1) {
      std::vector<std::int16_t> rows(std::size_t(out.width) * kc);
      for (int oy = y0; oy < y1; ++oy) {
        for (int ox = 0; ox < out.width; ++ox)
          for (int ky = 0; ky < n_.kh; ++ky) {
            const std::int16_t* src = p.data.data() +
                (std::size_t(oy * n_.stride_h + ky) * std::size_t(p.width) +
                 std::size_t(ox * n_.stride_w)) * std::size_t(n_.cin);
            std::memcpy(rows.data() + std::size_t(ox) * kc + std::size_t(ky) * span, src,
                        span * sizeof(std::int16_t));
          }
        s16_igemm_row(k, pass_, &tap0, rows.data(), std::ptrdiff_t(kc), out.width,
                      out.data.data() + std::size_t(oy) * std::size_t(out.width) * std::size_t(out.channels),
                      nullptr, out.channels, st);
      }
    });
  }

  NodeDesc n_;
  PackedPassS16 pass_;
  int shift_ = 0;
  bool im2col_ = false;
};

class S16ConvTranspose2dOp {
 public:
  explicit S16ConvTranspose2dOp(const NodeDesc& n) : n_(n) {
    shift_ = n.in_shift + n.weight_shift - n.out_shift;
    n_.qweight.clear();
    n_.qweight.shrink_to_fit();
    if (n.cout < ConvTranspose2dOp::kGatherBelow) {
      prepare_gather(n);
      return;
    }
    py_ = phase_axes(n.stride_h, n.kh, n.pad_top);
    px_ = phase_axes(n.stride_w, n.kw, n.pad_left);
    const std::vector<std::int16_t>& w = n.qweight;
    for (int ry = 0; ry < n.stride_h; ++ry)
      for (int rx = 0; rx < n.stride_w; ++rx) {
        PackedPassS16 pass;
        pass.kc = n.cin;
        pass.cout = n.cout;
        const PhaseTaps taps = phase_taps(py_, px_, ry, rx);
        pass.dy = taps.dy;
        pass.dx = taps.dx;
        const int kh = n.kh, kw = n.kw, cin = n.cin;
        pass.pack(n.qbias, rounding_constant(shift_), [&](int co, int t, int ci) {
          return w[((std::size_t(co) * std::size_t(kh) + std::size_t(taps.ky[std::size_t(t)])) *
                        std::size_t(kw) + std::size_t(taps.kx[std::size_t(t)])) *
                       std::size_t(cin) +
                   std::size_t(ci)];
        });
        passes_.push_back(std::move(pass));
      }
  }

  void output_size(int h, int w, int& oh, int& ow) const {
    const long long lh = ConvTranspose2dOp::out_size(h, n_.kh, n_.stride_h, n_.pad_top,
                                                     n_.pad_bottom, n_.out_pad_h);
    const long long lw = ConvTranspose2dOp::out_size(w, n_.kw, n_.stride_w, n_.pad_left,
                                                     n_.pad_right, n_.out_pad_w);
    if (lh <= 0 || lw <= 0)
      throw Error("input " + std::to_string(h) + "x" + std::to_string(w) +
                  " is too small for this transposed convolution");
    if (lh > (1 << 30) || lw > (1 << 30))
      throw Error("input " + std::to_string(h) + "x" + std::to_string(w) + " is too large");
    oh = static_cast<int>(lh);
    ow = static_cast<int>(lw);
  }

  QTensor run(const QTensor& in, S16Store st, int threads, S16Pools& pools) const {
    st.shift = shift_;
    int oh = 0, ow = 0;
    output_size(in.height, in.width, oh, ow);
    QTensor out = pooled_qtensor(pools.s16, oh, ow, n_.cout, n_.out_shift);
    if (gather_) {
      run_gather(in, out, st, threads, pools);
      return out;
    }
    int top = 0, bottom = 0, left = 0, right = 0;
    phase_padding(py_, n_.stride_h, in.height, oh, top, bottom);
    phase_padding(px_, n_.stride_w, in.width, ow, left, right);
    PaddedS16 p = pad_s16(in, top, left, bottom, right, pools.s16);
    for (int ry = 0; ry < n_.stride_h; ++ry)
      for (int rx = 0; rx < n_.stride_w; ++rx) {
        const PhaseAxis& fy = py_[std::size_t(ry)];
        const PhaseAxis& fx = px_[std::size_t(rx)];
        PassAxis ay, ax;
        ay.n = fy.count(oh, n_.stride_h);
        ay.out0 = fy.out0;
        ay.out_step = n_.stride_h;
        ay.in0 = fy.q0 + top;
        ax.n = fx.count(ow, n_.stride_w);
        ax.out0 = fx.out0;
        ax.out_step = n_.stride_w;
        ax.in0 = fx.q0 + left;
        run_pass_s16(passes_[std::size_t(ry * n_.stride_w + rx)], p, ay, ax, out, st, threads);
      }
    pools.s16.give(std::move(p.data));
    return out;
  }

  const NodeDesc& desc() const { return n_; }

 private:
  // Gather form: int32 columns (ky, kx, co) per input pixel, no bias; each output sums its
  // columns exactly, then bias, shift, saturation and activation (docs/int16.md).
  void prepare_gather(const NodeDesc& n) {
    gather_ = true;
    cols_.kc = n.cin;
    cols_.cout = n.kh * n.kw * n.cout;
    cols_.dy.push_back(0);
    cols_.dx.push_back(0);
    bias_.resize(std::size_t(n.cout));
    for (int co = 0; co < n.cout; ++co)
      bias_[std::size_t(co)] = kern::wrap_add(n.qbias[std::size_t(co)], rounding_constant(shift_));
    const std::vector<std::int16_t>& w = n.qweight;
    const int kk = n.kh * n.kw, cout = n.cout, cin = n.cin;
    cols_.pack({}, 0, [&](int col, int, int ci) {
      const int co = col % cout, k = col / cout;
      return w[(std::size_t(co) * std::size_t(kk) + std::size_t(k)) * std::size_t(cin) + std::size_t(ci)];
    });
  }

  void run_gather(const QTensor& in, QTensor& out, const S16Store& st, int threads,
                  S16Pools& pools) const {
    constexpr int kBand = 32;
    const kern::KernelTable& k = kern::kernels();
    const int sh = n_.stride_h, sw = n_.stride_w, kh = n_.kh, kw = n_.kw, cout = n_.cout;
    const std::size_t ncol = std::size_t(cols_.cout);
    const std::ptrdiff_t tap0 = 0;
    auto band_rows = [&](int b0, int& iy0, int& iy1) {
      const int b1 = std::min(out.height, b0 + kBand);
      iy0 = std::max(0, ceil_div(b0 + n_.pad_top - (kh - 1), sh));
      iy1 = std::min(in.height - 1, floor_div(b1 - 1 + n_.pad_top, sh));
    };
    std::size_t most = 0;
    for (int b0 = 0; b0 < out.height; b0 += kBand) {
      int iy0 = 0, iy1 = 0;
      band_rows(b0, iy0, iy1);
      most = std::max(most, std::size_t(std::max(0, iy1 - iy0 + 1)));
    }
    std::vector<std::int32_t> y = pools.s32.take(most * std::size_t(in.width) * ncol);
    const S16Store raw;
    for (int b0 = 0; b0 < out.height; b0 += kBand) {
      const int b1 = std::min(out.height, b0 + kBand);
      int iy0 = 0, iy1 = 0;
      band_rows(b0, iy0, iy1);
      if (iy1 >= iy0) {
        parallel_for(iy1 - iy0 + 1, threads, [&](int r0, int r1) {
          for (int r = r0; r < r1; ++r)
            s16_igemm_row(k, cols_, &tap0,
                          in.data.data() + std::size_t(iy0 + r) * std::size_t(in.width) * std::size_t(n_.cin),
                          n_.cin, in.width, nullptr,
                          y.data() + std::size_t(r) * std::size_t(in.width) * ncol,
                          std::ptrdiff_t(ncol), raw);
        });
      }
      parallel_for(b1 - b0, threads, [&](int r0, int r1) {
        std::vector<int> kys, iys;
        std::vector<std::int32_t> acc(static_cast<std::size_t>(cout));
        for (int oy = b0 + r0; oy < b0 + r1; ++oy) {
          kys.clear();
          iys.clear();
          for (int ky = (oy + n_.pad_top) % sh; ky < kh; ky += sh) {
            const int iy = (oy + n_.pad_top - ky) / sh;
            if (iy >= iy0 && iy <= iy1) {
              kys.push_back(ky);
              iys.push_back(iy - iy0);
            }
          }
          int q = n_.pad_left / sw, r = n_.pad_left % sw;
          for (int ox = 0; ox < out.width; ++ox) {
            for (int co = 0; co < cout; ++co) acc[std::size_t(co)] = bias_[std::size_t(co)];
            for (std::size_t t = 0; t < kys.size(); ++t) {
              const std::int32_t* row = y.data() + std::size_t(iys[t]) * std::size_t(in.width) * ncol +
                                        std::size_t(kys[t] * kw) * std::size_t(cout);
              for (int kx = r, ix = q; kx < kw && ix >= 0; kx += sw, --ix) {
                if (ix >= in.width) continue;
                const std::int32_t* c = row + std::size_t(ix) * ncol + std::size_t(kx) * std::size_t(cout);
                for (int co = 0; co < cout; ++co)
                  acc[std::size_t(co)] = kern::wrap_add(acc[std::size_t(co)], c[co]);
              }
            }
            std::int16_t* o = out.data.data() +
                (std::size_t(oy) * std::size_t(out.width) + std::size_t(ox)) * std::size_t(cout);
            for (int co = 0; co < cout; ++co)
              o[co] = kern::s16_requantize(acc[std::size_t(co)], st.shift, st.act, st.alpha_q,
                                           st.alpha_shift);
            if (++r == sw) {
              r = 0;
              ++q;
            }
          }
        }
      });
    }
    pools.s32.give(std::move(y));
  }

  static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
  static int ceil_div(int a, int b) { return -floor_div(-a, b); }

  NodeDesc n_;
  std::vector<PhaseAxis> py_, px_;
  std::vector<PackedPassS16> passes_;
  bool gather_ = false;
  PackedPassS16 cols_;
  std::vector<std::int32_t> bias_;
  int shift_ = 0;
};

}  // namespace lic
