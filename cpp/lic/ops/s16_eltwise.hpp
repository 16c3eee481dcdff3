// The int16 element-wise operators of docs/int16.md: QUANTIZE (float -> int16),
// DEQUANTIZE (int16 -> float), S16_RELU / S16_LEAKY_RELU (usually fused into the
// convolution before them), S16_ADD, and S16_GDN (a 1x1 int16 GEMM of the requantized
// squares, then the exact integer root and product or quotient).
#pragma once

#include <cstdint>
#include <vector>

#include "base/error.hpp"
#include "lic/kernels/dispatch.hpp"
#include "lic/model_format.hpp"
#include "lic/ops/s16_conv.hpp"
#include "lic/parallel.hpp"
#include "lic/tensor.hpp"
#include "lic/workspace.hpp"

namespace lic {

inline QTensor quantize(const Tensor& in, int shift, S16Pools& pools) {
  QTensor out = pooled_qtensor(pools.s16, in.height, in.width, in.channels, shift);
  kern::kernels().quantize(in.data.data(), out.data.data(), in.data.size(), shift);
  return out;
}

inline Tensor dequantize(const QTensor& in, BufferPool& pool) {
  Tensor out = pooled_tensor(pool, in.height, in.width, in.channels);
  kern::kernels().dequantize(in.data.data(), out.data.data(), in.data.size(), in.shift);
  return out;
}

// S16_RELU is S16_LEAKY_RELU with alpha_q = 0.
inline QTensor s16_leaky_relu(const QTensor& in, int alpha_q, int alpha_shift, S16Pools& pools) {
  QTensor out = pooled_qtensor(pools.s16, in.height, in.width, in.channels, in.shift);
  kern::kernels().s16_leaky(in.data.data(), out.data.data(), in.data.size(), alpha_q, alpha_shift);
  return out;
}

inline QTensor s16_add(const QTensor& a, const QTensor& b, int out_shift, S16Pools& pools) {
  if (a.height != b.height || a.width != b.width || a.channels != b.channels)
    throw Error("s16_add: operand shapes differ");
  const int s = std::max(a.shift, b.shift);
  QTensor out = pooled_qtensor(pools.s16, a.height, a.width, a.channels, out_shift);
  kern::kernels().s16_add(a.data.data(), b.data.data(), out.data.data(), a.data.size(),
                          s - a.shift, s - b.shift, s - out_shift);
  return out;
}

class S16GdnOp {
 public:
  explicit S16GdnOp(const NodeDesc& n)
      : channels_(n.channels), inverse_(n.inverse), root_shift_(n.root_shift),
        out_shift_(n.out_shift) {
    square_shift_ = 2 * n.in_shift - n.square_shift;
    const int sr = (n.gamma_shift + n.square_shift + n.root_shift) / 2;
    m_ = n.inverse ? n.in_shift + sr - n.out_shift : n.out_shift - n.in_shift + sr;
    pass_.kc = n.channels;
    pass_.cout = n.channels;
    pass_.dy.push_back(0);
    pass_.dx.push_back(0);
    const std::size_t c = std::size_t(n.channels);
    // column i sums gamma[i][j] * x2_j; the bias is beta (no rounding: the sum is kept)
    pass_.pack(n.qbias, 0, [&](int i, int, int j) { return n.qweight[std::size_t(i) * c + std::size_t(j)]; });
  }

  QTensor run(const QTensor& in, int threads, S16Pools& pools) const {
    QTensor out = pooled_qtensor(pools.s16, in.height, in.width, in.channels, out_shift_);
    const kern::KernelTable& k = kern::kernels();
    const std::size_t row = std::size_t(in.width) * std::size_t(channels_);
    const std::ptrdiff_t tap0 = 0;
    const S16Store raw;
    parallel_for(in.height, threads, [&](int y0, int y1) {
      std::vector<std::int16_t> sq(row);
      std::vector<std::int32_t> norm(row);
      for (int y = y0; y < y1; ++y) {
        const std::int16_t* x = in.data.data() + std::size_t(y) * row;
        k.s16_square(x, sq.data(), row, square_shift_);
        s16_igemm_row(k, pass_, &tap0, sq.data(), channels_, in.width, nullptr, norm.data(),
                      channels_, raw);
        k.s16_gdn_finish(x, norm.data(), out.data.data() + std::size_t(y) * row, row,
                         root_shift_, inverse_, m_);
      }
    });
    return out;
  }

 private:
  int channels_, inverse_, root_shift_, out_shift_;
  int square_shift_ = 0, m_ = 0;
  PackedPassS16 pass_;
};

}  // namespace lic
