// CONV_TRANSPOSE2D by sub-pixel (phase) decomposition: the outputs whose position is
// congruent to (ry, rx) modulo the stride receive contributions only from kernel taps
// ky = ry + s*t (and likewise in x), so each phase is an ordinary stride-1 convolution
// with a small kernel over the input. stride_h * stride_w passes, no scatter, no col2im.
//
// With few output channels (a synthesis transform's last layer has 3) a 16-channel GEMM
// panel would be mostly padding, so there the op runs as one GEMM that gives every input
// pixel's kh*kw*cout contributions, followed by a gather into each output pixel
// ("GEMM + col2im", in output order, so no two threads ever write the same value).
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "lic/ops/igemm_pass.hpp"
#include "lic/model_format.hpp"
#include "lic/tensor.hpp"

namespace lic {

// One axis of one phase r: outputs o = out0 + j*s (j < count) read input q - t for taps
// t < taps, with q = q0 + j and kernel index r + s*t.
struct PhaseAxis {
  int out0 = 0;
  int q0 = 0;
  int taps = 0;

  static PhaseAxis make(int r, int s, int k, int pad) {
    PhaseAxis a;
    a.out0 = ((r - pad) % s + s) % s;
    a.q0 = (a.out0 + pad) / s;
    a.taps = r < k ? (k - r + s - 1) / s : 0;
    return a;
  }
  int count(int out_size, int s) const {
    return out0 < out_size ? (out_size - out0 + s - 1) / s : 0;
  }
};

class ConvTranspose2dOp {
 public:
  // Below this many output channels the GEMM + gather form wastes less of the 16-wide panels.
  static constexpr int kGatherBelow = 16;

  explicit ConvTranspose2dOp(const NodeDesc& n) : n_(n) {
    n_.weight.clear();
    n_.weight.shrink_to_fit();
    if (n.cout < kGatherBelow) {
      prepare_gather(n);
      return;
    }
    const int sh = n.stride_h, sw = n.stride_w;
    for (int ry = 0; ry < sh; ++ry) py_.push_back(PhaseAxis::make(ry, sh, n.kh, n.pad_top));
    for (int rx = 0; rx < sw; ++rx) px_.push_back(PhaseAxis::make(rx, sw, n.kw, n.pad_left));
    const std::vector<float>& w = n.weight;
    for (int ry = 0; ry < sh; ++ry)
      for (int rx = 0; rx < sw; ++rx) {
        PackedPass pass;
        pass.kc = n.cin;
        pass.cout = n.cout;
        std::vector<int> kys, kxs;
        for (int ty = 0; ty < py_[std::size_t(ry)].taps; ++ty)
          for (int tx = 0; tx < px_[std::size_t(rx)].taps; ++tx) {
            pass.dy.push_back(-ty);
            pass.dx.push_back(-tx);
            kys.push_back(ry + sh * ty);
            kxs.push_back(rx + sw * tx);
          }
        const int kh = n.kh, kw = n.kw, cin = n.cin;
        pass.pack(n.bias, [&](int co, int t, int ci) {
          return w[((std::size_t(co) * kh + std::size_t(kys[std::size_t(t)])) * kw +
                    std::size_t(kxs[std::size_t(t)])) * cin + std::size_t(ci)];
        });
        passes_.push_back(std::move(pass));
      }
  }

  static long long out_size(int in, int k, int s, int pad_lo, int pad_hi, int out_pad) {
    return (static_cast<long long>(in) - 1) * s - pad_lo - pad_hi + k + out_pad;
  }

  void output_size(int h, int w, int& oh, int& ow) const {
    const long long lh = out_size(h, n_.kh, n_.stride_h, n_.pad_top, n_.pad_bottom, n_.out_pad_h);
    const long long lw = out_size(w, n_.kw, n_.stride_w, n_.pad_left, n_.pad_right, n_.out_pad_w);
    if (lh <= 0 || lw <= 0)
      throw Error("input " + std::to_string(h) + "x" + std::to_string(w) +
                  " is too small for this transposed convolution");
    if (lh > (1 << 30) || lw > (1 << 30))
      throw Error("input " + std::to_string(h) + "x" + std::to_string(w) + " is too large");
    oh = static_cast<int>(lh);
    ow = static_cast<int>(lw);
  }

  Tensor run(const Tensor& in, int act, float alpha, int threads, BufferPool& pool) const {
    int oh = 0, ow = 0;
    output_size(in.height, in.width, oh, ow);
    Tensor out = pooled_tensor(pool, oh, ow, n_.cout);  // every element is written below
    if (gather_) {
      run_gather(in, out, act, alpha, threads, pool);
      return out;
    }
    int top = 0, bottom = 0, left = 0, right = 0;
    padding(py_, n_.stride_h, in.height, oh, top, bottom);
    padding(px_, n_.stride_w, in.width, ow, left, right);
    PaddedInput p = pad_input(in, top, left, bottom, right, pool);
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
        run_pass(passes_[std::size_t(ry * n_.stride_w + rx)], p, ay, ax, out, act, alpha,
                 threads);
      }
    pool.give(std::move(p.data));
    return out;
  }

  const NodeDesc& desc() const { return n_; }

 private:
  // Zero rows needed before/after the input so every phase reads q - t inside the buffer.
  static void padding(const std::vector<PhaseAxis>& phases, int s, int in, int out, int& lo,
                      int& hi) {
    lo = 0;
    hi = 0;
    for (const PhaseAxis& f : phases) {
      const int n = f.count(out, s);
      if (n == 0) continue;
      lo = std::max(lo, std::max(f.taps - 1, 0) - f.q0);
      hi = std::max(hi, f.q0 + n - 1 - (in - 1));
    }
  }

  // Gather form: columns of the GEMM are (ky, kx, co), no bias (added once per output).
  void prepare_gather(const NodeDesc& n) {
    gather_ = true;
    cols_.kc = n.cin;
    cols_.cout = n.kh * n.kw * n.cout;
    cols_.dy.push_back(0);
    cols_.dx.push_back(0);
    bias_ = n.bias;
    const std::vector<float>& w = n.weight;
    const int kk = n.kh * n.kw, cout = n.cout, cin = n.cin;
    cols_.pack(std::vector<float>(std::size_t(cols_.cout), 0.0f), [&](int col, int, int ci) {
      const int co = col % cout, k = col / cout;  // k = ky * kw + kx
      return w[(std::size_t(co) * std::size_t(kk) + std::size_t(k)) * std::size_t(cin) +
               std::size_t(ci)];
    });
  }

  // Output rows are done in fixed bands (whatever the thread count) so the column buffer
  // stays small; the few input rows two bands share are computed twice.
  void run_gather(const Tensor& in, Tensor& out, int act, float alpha, int threads,
                  BufferPool& pool) const {
    constexpr int kBand = 32;
    const kern::KernelTable& k = kern::kernels();
    const int sh = n_.stride_h, sw = n_.stride_w, kh = n_.kh, kw = n_.kw, cout = n_.cout;
    const std::size_t ncol = std::size_t(cols_.cout);
    const std::ptrdiff_t tap0 = 0;
    // Input row ranges of the bands; the column buffer is sized once for the largest.
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
    std::vector<float> y = pool.take(most * std::size_t(in.width) * ncol);
    for (int b0 = 0; b0 < out.height; b0 += kBand) {
      const int b1 = std::min(out.height, b0 + kBand);
      // Input rows iy with iy*sh - pad_top + ky in [b0, b1) for some ky < kh.
      int iy0 = 0, iy1 = 0;
      band_rows(b0, iy0, iy1);
      if (iy1 >= iy0) {
        parallel_for(iy1 - iy0 + 1, threads, [&](int r0, int r1) {
          for (int r = r0; r < r1; ++r)
            igemm_row(k, cols_, &tap0,
                      in.data.data() + std::size_t(iy0 + r) * std::size_t(in.width) * n_.cin,
                      n_.cin, in.width, y.data() + std::size_t(r) * std::size_t(in.width) * ncol,
                      std::ptrdiff_t(ncol), kern::kActNone, 0.0f);
        });
      }
      parallel_for(b1 - b0, threads, [&](int r0, int r1) {
        std::vector<int> kys, iys;
        for (int oy = b0 + r0; oy < b0 + r1; ++oy) {
          // Kernel rows reaching this output row, and the input row each comes from.
          kys.clear();
          iys.clear();
          for (int ky = (oy + n_.pad_top) % sh; ky < kh; ky += sh) {
            const int iy = (oy + n_.pad_top - ky) / sh;
            if (iy >= iy0 && iy <= iy1) {
              kys.push_back(ky);
              iys.push_back(iy - iy0);
            }
          }
          // q, r: (ox + pad_left) divided by the stride, kept incrementally (no division).
          int q = n_.pad_left / sw, r = n_.pad_left % sw;
          for (int ox = 0; ox < out.width; ++ox) {
            float* o = &out.at(oy, ox, 0);
            for (int co = 0; co < cout; ++co) o[co] = bias_[std::size_t(co)];
            for (std::size_t t = 0; t < kys.size(); ++t) {
              const float* row = y.data() + std::size_t(iys[t]) * std::size_t(in.width) * ncol +
                                 std::size_t(kys[t] * kw) * std::size_t(cout);
              for (int kx = r, ix = q; kx < kw && ix >= 0; kx += sw, --ix) {
                if (ix >= in.width) continue;
                const float* c = row + std::size_t(ix) * ncol + std::size_t(kx) * std::size_t(cout);
                for (int co = 0; co < cout; ++co) o[co] += c[co];
              }
            }
            if (act == kern::kActLeaky)
              for (int co = 0; co < cout; ++co)
                if (!(o[co] >= 0.0f)) o[co] *= alpha;
            if (++r == sw) {
              r = 0;
              ++q;
            }
          }
        }
      });
    }
    pool.give(std::move(y));
  }

  static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
  static int ceil_div(int a, int b) { return -floor_div(-a, b); }

  NodeDesc n_;
  std::vector<PhaseAxis> py_, px_;
  std::vector<PackedPass> passes_;
  bool gather_ = false;
  PackedPass cols_;
  std::vector<float> bias_;
};

}  // namespace lic
