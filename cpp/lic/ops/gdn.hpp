// GDN / inverse GDN: norm = beta + gamma · x² is a 1x1 convolution of x², run through the
// same GEMM micro-kernel as the convolutions; then x / sqrt(norm) or x * sqrt(norm).
#pragma once

#include <vector>

#include "lic/ops/igemm_pass.hpp"
#include "lic/model_format.hpp"
#include "lic/tensor.hpp"

namespace lic {

class GdnOp {
 public:
  explicit GdnOp(const NodeDesc& n) : channels_(n.channels), inverse_(n.inverse) {
    pass_.kc = n.channels;
    pass_.cout = n.channels;
    pass_.dy.push_back(0);
    pass_.dx.push_back(0);
    const F32View& g = n.gamma;
    const std::size_t c = std::size_t(n.channels);
    // B[j][i] = gamma[i][j]: output channel i sums gamma[i][j] * x_j².
    pass_.pack(n.bias, [&](int i, int, int j) { return g[std::size_t(i) * c + std::size_t(j)]; });
  }

  // Rows [o0, o1) of `in` (width pixels, no margins) into `out`.
  void compute_rows(const RowWindow& in, int o0, int o1, int width, const RowOut& out,
                    ThreadPool& threads) const {
    const kern::KernelTable& k = kern::kernels();
    const std::size_t row = std::size_t(width) * std::size_t(channels_);
    const std::ptrdiff_t tap0 = 0;
    threads.parallel_for(o1 - o0, [&](int r0, int r1) {
      std::vector<float> sq(row), norm(row);
      for (int y = o0 + r0; y < o0 + r1; ++y) {
        const float* x = in.row(y) + std::ptrdiff_t(in.left) * channels_;
        k.square(x, sq.data(), row);
        igemm_row(k, pass_, &tap0, sq.data(), channels_, width, norm.data(), channels_,
                  kern::kActNone, 0.0f);
        k.gdn_finish(x, norm.data(), out.row(y), row, inverse_);
      }
    });
  }

  Tensor run(const Tensor& in, ThreadPool& threads, BufferPool& pool) const {
    Tensor out = pooled_tensor(pool, in.height, in.width, in.channels);  // all overwritten
    const RowWindow win{in.data.data(), 0, in.width, in.channels, 0};
    compute_rows(win, 0, in.height, in.width, rows_of(out), threads);
    return out;
  }

 private:
  int channels_;
  int inverse_;
  PackedPass pass_;
};

}  // namespace lic
