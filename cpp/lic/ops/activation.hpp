// RELU and LEAKY_RELU (ReLU is leaky with alpha 0). Usually fused into the preceding
// convolution's store by the executor; this is the stand-alone version.
#pragma once

#include "lic/kernels/dispatch.hpp"
#include "lic/ops/igemm_pass.hpp"
#include "lic/tensor.hpp"
#include "lic/workspace.hpp"

namespace lic {

inline Tensor leaky_relu(const Tensor& in, float alpha, BufferPool& pool) {
  Tensor out = pooled_tensor(pool, in.height, in.width, in.channels);
  kern::kernels().leaky(in.data.data(), out.data.data(), in.data.size(), alpha);
  return out;
}

// Rows [o0, o1) of `in` (width pixels of `channels`) into `out` (the streamed form).
inline void leaky_relu_rows(const RowWindow& in, int o0, int o1, int width, int channels,
                            float alpha, const RowOut& out) {
  const std::size_t n = std::size_t(width) * std::size_t(channels);
  for (int y = o0; y < o1; ++y)
    kern::kernels().leaky(in.row(y) + std::ptrdiff_t(in.left) * channels, out.row(y), n, alpha);
}

// In place, for a value nobody else reads any more.
inline void leaky_relu_inplace(Tensor& t, float alpha) {
  kern::kernels().leaky(t.data.data(), t.data.data(), t.data.size(), alpha);
}

}  // namespace lic
