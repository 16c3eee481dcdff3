// CONV2D: one implicit-GEMM pass over a zero-padded input. With few input channels (an
// analysis transform's first layer reads 3) each tap would give the micro-kernel only a
// few multiply-adds, so there a tap is a whole window row instead: in an NHWC row the
// kw x cin inputs of one kernel row are contiguous, so the pass has one tap per kernel row
// with kw * cin "channels" read in place (an im2col without the copy; same order of
// multiply-adds as im2col's one long reduction, which copied 30 MB per Kodak image).
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "lic/ops/conv_winograd.hpp"
#include "lic/ops/igemm_pass.hpp"
#include "lic/model_format.hpp"
#include "lic/tensor.hpp"

namespace lic {

class Conv2dOp {
 public:
  // Below this many input channels a tap is a whole kernel row (the int16 op: im2col).
  static constexpr int kIm2colBelow = 16;

  explicit Conv2dOp(const NodeDesc& n) : n_(node_shape(n)) {
    if (WinogradConv::suits(n)) {
      wino_ = std::make_shared<const WinogradConv>(n, WinogradConv::conv2d_geometry(n));
      return;
    }
    pass_.cout = n.cout;
    const F32View& w = n.weight;
    const int kh = n.kh, kw = n.kw, cin = n.cin;
    if (cin < kIm2colBelow) {
      // Tap ky: the (kx, ci) inputs of kernel row ky, the file's layout.
      pass_.kc = kw * cin;
      for (int ky = 0; ky < kh; ++ky) {
        pass_.dy.push_back(ky);
        pass_.dx.push_back(0);
      }
      const std::size_t k = std::size_t(pass_.kc);
      pass_.pack(n.bias, [&](int co, int t, int i) {
        return w[(std::size_t(co) * kh + std::size_t(t)) * k + std::size_t(i)];
      });
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

  // Zero columns the input rows need on each side (never more than the file's padding).
  void margins(int in_w, int& left, int& right) const {
    int oh = 0, ow = 0;
    output_size(n_.kh, in_w, oh, ow);
    left = n_.pad_left;
    right = std::max(0, (ow - 1) * n_.stride_w + n_.kw - n_.pad_left - in_w);
    if (wino_) {  // whole tiles are read
      int lo = 0, hi = 0;
      wino_->columns_read(ow, lo, hi);
      right = std::max(right, hi - in_w);
    }
  }

  // Input rows [i0, i1) that output rows [o0, o1) read (rows outside the input are zeros).
  void input_rows(int o0, int o1, int& i0, int& i1) const {
    i0 = o0 * n_.stride_h - n_.pad_top;
    i1 = (o1 - 1) * n_.stride_h - n_.pad_top + n_.kh;
  }

  // Output rows [o0, o1) (ow pixels each) from the input rows in `in`.
  void compute_rows(const RowWindow& in, int o0, int o1, int ow, const RowOut& out, int act,
                    float alpha, ThreadPool& threads, BufferPool& pool) const {
    if (o1 <= o0) return;
    if (wino_) return wino_->compute_rows(in, o0, o1, ow, out, act, alpha, threads, pool);
    const kern::KernelTable& k = kern::kernels();
    const int sh = n_.stride_h, sw = n_.stride_w, cin = n_.cin;
    const std::vector<std::ptrdiff_t> taps = tap_offsets(pass_, in.width, cin);
    for_row_pieces(threads, k, pass_, o0, o1, ow, [&](int oy, int x0, int x1, int p0, int p1) {
      igemm_row(k, pass_, taps.data(), in.row(oy * sh - n_.pad_top) + std::ptrdiff_t(x0) * sw * cin,
                std::ptrdiff_t(sw) * cin, x1 - x0, out.row(oy) + std::ptrdiff_t(x0) * n_.cout,
                n_.cout, act, alpha, p0, p1);
    });
  }

  // The whole tensor at once.
  Tensor run(const Tensor& in, int act, float alpha, ThreadPool& threads,
             BufferPool& pool) const {
    int oh = 0, ow = 0;
    output_size(in.height, in.width, oh, ow);
    Tensor out = pooled_tensor(pool, oh, ow, n_.cout);  // every element is written below
    int left = 0, right = 0;
    margins(in.width, left, right);
    int i0 = 0, i1 = 0;
    input_rows(0, oh, i0, i1);
    PaddedInput p = pad_input(in, -i0, left, std::max(0, i1 - in.height), right, pool);
    compute_rows(p.window, 0, oh, ow, rows_of(out), act, alpha, threads, pool);
    pool.give(std::move(p.data));
    return out;
  }

  const NodeDesc& desc() const { return n_; }
  // The Winograd form, when this layer uses it (a streamed run keeps its transformed
  // input rows: lic/stream.hpp).
  const WinogradConv* winograd() const { return wino_.get(); }

 private:
  NodeDesc n_;
  PackedPass pass_;                            // the direct form
  std::shared_ptr<const WinogradConv> wino_;  // or the Winograd form, where it suits n
};

}  // namespace lic
