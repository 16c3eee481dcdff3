// The gradient of GDN / inverse GDN with respect to its input (for lic/gradient.hpp).
//
// y_i = x_i n_i^p with n_i = beta_i + sum_j gamma_ij x_j^2, p = -1/2 (GDN) or +1/2 (inverse
// GDN). For an output gradient g:
//   dx_k = g_k n_k^p + 2p x_k sum_i gamma_ik t_i,   t_i = g_i x_i n_i^(p-1)
// Both channel sums are 1x1 convolutions run through the GEMM micro-kernel: n with gamma
// (as the forward op does), the second with gamma transposed.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "base/error.hpp"
#include "lic/model_format.hpp"
#include "lic/ops/igemm_pass.hpp"
#include "lic/parallel.hpp"
#include "lic/tensor.hpp"
#include "lic/workspace.hpp"

namespace lic {

class GdnGradOp {
 public:
  explicit GdnGradOp(const NodeDesc& n) : channels_(n.channels), inverse_(n.inverse) {
    const std::size_t c = std::size_t(n.channels);
    const F32View& g = n.gamma;
    for (PackedPass* p : {&norm_, &back_}) {
      p->kc = n.channels;
      p->cout = n.channels;
      p->dy.push_back(0);
      p->dx.push_back(0);
    }
    // norm_: output i sums gamma[i][j] x_j^2 (+ beta_i); back_: output k sums gamma[i][k] t_i.
    norm_.pack(n.bias, [&](int i, int, int j) { return g[std::size_t(i) * c + std::size_t(j)]; });
    back_.pack(std::vector<float>(c, 0.0f),
               [&](int k, int, int i) { return g[std::size_t(i) * c + std::size_t(k)]; });
  }

  // dx for the GDN input x (as the forward pass saw it) and the output gradient g.
  Tensor run(const Tensor& x, const Tensor& g, ThreadPool& threads, BufferPool& pool) const {
    if (x.height != g.height || x.width != g.width || x.channels != channels_ ||
        g.channels != channels_)
      throw Error("gdn gradient: shapes of the input and the gradient differ");
    Tensor out = pooled_tensor(pool, x.height, x.width, x.channels);
    const kern::KernelTable& k = kern::kernels();
    const std::size_t row = std::size_t(x.width) * std::size_t(channels_);
    const std::ptrdiff_t tap0 = 0;
    const float two_p = inverse_ ? 1.0f : -1.0f;
    threads.parallel_for(x.height, [&](int y0, int y1) {
      std::vector<float> buf(row), norm(row), scale(row), u(row);
      for (int y = y0; y < y1; ++y) {
        const float* xr = x.data.data() + std::size_t(y) * row;
        const float* gr = g.data.data() + std::size_t(y) * row;
        float* o = out.data.data() + std::size_t(y) * row;
        k.square(xr, buf.data(), row);
        igemm_row(k, norm_, &tap0, buf.data(), channels_, x.width, norm.data(), channels_,
                  kern::kActNone, 0.0f);
        for (std::size_t i = 0; i < row; ++i) {
          const float s = std::sqrt(norm[i]);
          scale[i] = inverse_ ? s : 1.0f / s;         // n^p
          buf[i] = gr[i] * xr[i] * scale[i] / norm[i];  // t = g x n^(p-1)
        }
        igemm_row(k, back_, &tap0, buf.data(), channels_, x.width, u.data(), channels_,
                  kern::kActNone, 0.0f);
        for (std::size_t i = 0; i < row; ++i) o[i] = gr[i] * scale[i] + two_p * xr[i] * u[i];
      }
    });
    return out;
  }

 private:
  int channels_;
  int inverse_;
  PackedPass norm_, back_;
};

}  // namespace lic
