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

  explicit Conv2dOp(const NodeDesc& n) : n_(node_shape(n)) {
    im2col_ = n.cin < kIm2colBelow;
    pass_.cout = n.cout;
    const F32View& w = n.weight;
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
  }

  // Input rows [i0, i1) that output rows [o0, o1) read (rows outside the input are zeros).
  void input_rows(int o0, int o1, int& i0, int& i1) const {
    i0 = o0 * n_.stride_h - n_.pad_top;
    i1 = (o1 - 1) * n_.stride_h - n_.pad_top + n_.kh;
  }

  // Output rows [o0, o1) (ow pixels each) from the input rows in `in`.
  void compute_rows(const RowWindow& in, int o0, int o1, int ow, const RowOut& out, int act,
                    float alpha, ThreadPool& threads) const {
    if (o1 <= o0) return;
    const kern::KernelTable& k = kern::kernels();
    const int sh = n_.stride_h, sw = n_.stride_w, cin = n_.cin;
    if (im2col_) {
      const std::size_t kc = std::size_t(pass_.kc);
      const std::size_t span = std::size_t(n_.kw) * std::size_t(cin);  // one window row
      const std::ptrdiff_t tap0 = 0;
      threads.parallel_for(o1 - o0, [&](int r0, int r1) {
        std::vector<float> rows(std::size_t(ow) * kc);
        for (int oy = o0 + r0; oy < o0 + r1; ++oy) {
          for (int ky = 0; ky < n_.kh; ++ky) {
            const float* src = in.row(oy * sh - n_.pad_top + ky);
            for (int ox = 0; ox < ow; ++ox)
              std::memcpy(rows.data() + std::size_t(ox) * kc + std::size_t(ky) * span,
                          src + std::size_t(ox) * std::size_t(sw) * std::size_t(cin),
                          span * sizeof(float));
          }
          igemm_row(k, pass_, &tap0, rows.data(), std::ptrdiff_t(kc), ow, out.row(oy),
                    n_.cout, act, alpha);
        }
      });
      return;
    }
    const std::vector<std::ptrdiff_t> taps = tap_offsets(pass_, in.width);
    const int groups = panel_groups(k, pass_), g = panel_group(k);
    // Items are (row, group of panels) pairs: enough of them to share even one row.
    threads.parallel_for((o1 - o0) * groups, [&](int i0, int i1) {
      for (int i = i0; i < i1; ++i) {
        const int oy = o0 + i / groups, p = (i % groups) * g;
        igemm_row(k, pass_, taps.data(), in.row(oy * sh - n_.pad_top),
                  std::ptrdiff_t(sw) * cin, ow, out.row(oy), n_.cout, act, alpha, p,
                  std::min(p + g, pass_.panels));
      }
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
    compute_rows(p.window, 0, oh, ow, rows_of(out), act, alpha, threads);
    pool.give(std::move(p.data));
    return out;
  }

  const NodeDesc& desc() const { return n_; }

 private:
  NodeDesc n_;
  PackedPass pass_;
  bool im2col_ = false;
};

}  // namespace lic
