// CONV_TRANSPOSE2D by sub-pixel (phase) decomposition: the outputs whose position is
// congruent to (ry, rx) modulo the stride receive contributions only from kernel taps
// ky = ry + s*t (and likewise in x), so each phase is an ordinary stride-1 convolution
// with a small kernel over the input. stride_h * stride_w passes, no scatter, no col2im.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "lic/error.hpp"
#include "lic/igemm.hpp"
#include "lic/model.hpp"
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
  explicit ConvTranspose2dOp(const NodeDesc& n) : n_(n) {
    n_.weight.clear();
    n_.weight.shrink_to_fit();
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

  Tensor run(const Tensor& in, int act, float alpha, int threads) const {
    int oh = 0, ow = 0;
    output_size(in.height, in.width, oh, ow);
    Tensor out(oh, ow, n_.cout);
    int top = 0, bottom = 0, left = 0, right = 0;
    padding(py_, n_.stride_h, in.height, oh, top, bottom);
    padding(px_, n_.stride_w, in.width, ow, left, right);
    const PaddedInput p = pad_input(in, top, left, bottom, right);
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

  NodeDesc n_;
  std::vector<PhaseAxis> py_, px_;
  std::vector<PackedPass> passes_;
};

}  // namespace lic
