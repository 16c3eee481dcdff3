// CONV2D: one implicit-GEMM pass over a zero-padded input.
#pragma once

#include <algorithm>
#include <string>

#include "lic/error.hpp"
#include "lic/igemm.hpp"
#include "lic/model.hpp"
#include "lic/tensor.hpp"

namespace lic {

class Conv2dOp {
 public:
  explicit Conv2dOp(const NodeDesc& n) : n_(n) {
    pass_.kc = n.cin;
    pass_.cout = n.cout;
    for (int ky = 0; ky < n.kh; ++ky)
      for (int kx = 0; kx < n.kw; ++kx) {
        pass_.dy.push_back(ky);
        pass_.dx.push_back(kx);
      }
    const std::vector<float>& w = n.weight;
    const int kh = n.kh, kw = n.kw, cin = n.cin;
    pass_.pack(n.bias, [&](int co, int t, int ci) {
      return w[((std::size_t(co) * kh + std::size_t(t / kw)) * kw + std::size_t(t % kw)) * cin +
               std::size_t(ci)];
    });
    // The raw weights are not needed any more.
    n_.weight.clear();
    n_.weight.shrink_to_fit();
  }

  static int out_size(int in, int k, int s, int pad_lo, int pad_hi) {
    const int span = in + pad_lo + pad_hi - k;
    return span < 0 ? 0 : span / s + 1;
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

  Tensor run(const Tensor& in, int act, float alpha, int threads) const {
    int oh = 0, ow = 0;
    output_size(in.height, in.width, oh, ow);
    Tensor out(oh, ow, n_.cout);
    // Rows/cols the windows reach past the input end (never more than the file's padding).
    const int need_h = (oh - 1) * n_.stride_h + n_.kh - n_.pad_top;
    const int need_w = (ow - 1) * n_.stride_w + n_.kw - n_.pad_left;
    const PaddedInput p = pad_input(in, n_.pad_top, n_.pad_left, std::max(0, need_h - in.height),
                                    std::max(0, need_w - in.width));
    PassAxis ay, ax;
    ay.n = oh;
    ay.in_step = n_.stride_h;
    ax.n = ow;
    ax.in_step = n_.stride_w;
    run_pass(pass_, p, ay, ax, out, act, alpha, threads);
    return out;
  }

  const NodeDesc& desc() const { return n_; }

 private:
  NodeDesc n_;
  PackedPass pass_;
};

}  // namespace lic
