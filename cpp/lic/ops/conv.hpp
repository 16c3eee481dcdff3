// CONV2D: one implicit-GEMM pass over a zero-padded input. With few input channels (an
// analysis transform's first layer reads 3) each tap would give the micro-kernel only a
// few multiply-adds, so there the windows are first copied into rows (im2col, one output
// row at a time) and the GEMM runs with one long reduction instead.
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "lic/ops/igemm_pass.hpp"
#include "lic/model_format.hpp"
#include "lic/tensor.hpp"

namespace lic {

class Conv2dOp {
 public:
  // Below this many input channels the im2col form is used.
  static constexpr int kIm2colBelow = 16;

  explicit Conv2dOp(const NodeDesc& n) : n_(n) {
    im2col_ = n.cin < kIm2colBelow;
    pass_.cout = n.cout;
    const std::vector<float>& w = n.weight;
    const int kh = n.kh, kw = n.kw, cin = n.cin;
    if (im2col_) {
      // One tap whose channels are the whole (ky, kx, ci) window: the file's layout.
      pass_.kc = kh * kw * cin;
      pass_.dy.push_back(0);
      pass_.dx.push_back(0);
      const std::size_t k = std::size_t(pass_.kc);
      pass_.pack(n.bias, [&](int co, int, int i) { return w[std::size_t(co) * k + std::size_t(i)]; });
    } else {
      pass_.kc = n.cin;
      for (int ky = 0; ky < n.kh; ++ky)
        for (int kx = 0; kx < n.kw; ++kx) {
          pass_.dy.push_back(ky);
          pass_.dx.push_back(kx);
        }
      pass_.pack(n.bias, [&](int co, int t, int ci) {
        return w[((std::size_t(co) * kh + std::size_t(t / kw)) * kw + std::size_t(t % kw)) *
                     cin + std::size_t(ci)];
      });
    }
    // The raw weights are not needed any more.
    n_.weight.clear();
    n_.weight.shrink_to_fit();
  }

  static int out_size(int in, int k, int s, int pad_lo, int pad_hi) {
    const long long span = static_cast<long long>(in) + pad_lo + pad_hi - k;
    return span < 0 ? 0 : static_cast<int>(span / s + 1);
  }

  // Output height and width for an input of h x w; throws when the input is too small.
  void output_size(int h, int w, int& oh, int& ow) const {
    oh = out_size(h, n_.kh, n_.stride_h, n_.pad_top, n_.pad_bottom);
    ow = out_size(w, n_.kw, n_.stride_w, n_.pad_left, n_.pad_right);
    if (oh <= 0 || ow <= 0)
      throw Error("input " + std::to_string(h) + "x" + std::to_string(w) +
                  " is too small for a " + std::to_string(n_.kh) + "x" + std::to_string(n_.kw) +
                  " convolution");
  }

  Tensor run(const Tensor& in, int act, float alpha, int threads, BufferPool& pool) const {
    int oh = 0, ow = 0;
    output_size(in.height, in.width, oh, ow);
    Tensor out = pooled_tensor(pool, oh, ow, n_.cout);  // every element is written below
    // Rows/cols the windows reach past the input end (never more than the file's padding).
    const int need_h = (oh - 1) * n_.stride_h + n_.kh - n_.pad_top;
    const int need_w = (ow - 1) * n_.stride_w + n_.kw - n_.pad_left;
    PaddedInput p = pad_input(in, n_.pad_top, n_.pad_left, std::max(0, need_h - in.height),
                              std::max(0, need_w - in.width), pool);
    if (im2col_) {
      run_im2col(p, out, act, alpha, threads);
      pool.give(std::move(p.data));
      return out;
    }
    PassAxis ay, ax;
    ay.n = oh;
    ay.in_step = n_.stride_h;
    ax.n = ow;
    ax.in_step = n_.stride_w;
    run_pass(pass_, p, ay, ax, out, act, alpha, threads);
    pool.give(std::move(p.data));
    return out;
  }

  const NodeDesc& desc() const { return n_; }

 private:
  void run_im2col(const PaddedInput& p, Tensor& out, int act, float alpha, int threads) const {
    const kern::KernelTable& k = kern::kernels();
    const std::size_t kc = std::size_t(pass_.kc);
    const std::size_t span = std::size_t(n_.kw) * std::size_t(n_.cin);  // one window row
    const std::ptrdiff_t tap0 = 0;
    parallel_for(out.height, threads, [&](int y0, int y1) {
      std::vector<float> rows(std::size_t(out.width) * kc);
      for (int oy = y0; oy < y1; ++oy) {
        for (int ox = 0; ox < out.width; ++ox)
          for (int ky = 0; ky < n_.kh; ++ky) {
            const float* src = p.data.data() +
                               (std::size_t(oy * n_.stride_h + ky) * std::size_t(p.width) +
                                std::size_t(ox * n_.stride_w)) * std::size_t(n_.cin);
            std::memcpy(rows.data() + std::size_t(ox) * kc + std::size_t(ky) * span, src,
                        span * sizeof(float));
          }
        igemm_row(k, pass_, &tap0, rows.data(), std::ptrdiff_t(kc), out.width,
                  &out.at(oy, 0, 0), out.channels, act, alpha);
      }
    });
  }

  NodeDesc n_;
  PackedPass pass_;
  bool im2col_ = false;
};

}  // namespace lic
