// lic::Tensor: a float32 image-like tensor, batch 1, HWC (NHWC) layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace lic {

// Largest tensor the runtime agrees to allocate (elements): 2^31 floats = 8 GiB. Anything
// larger is an absurd input size, reported as an error rather than a failed allocation.
constexpr std::size_t kMaxTensorElements = std::size_t(1) << 31;

struct Tensor {
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<float> data;  // element (y, x, c) at (y * width + x) * channels + c

  Tensor() = default;
  // Zero-filled tensor; throws lic::Error on a non-positive or absurd size.
  Tensor(int h, int w, int c) : height(h), width(w), channels(c) {
    data.assign(checked_size(h, w, c), 0.0f);
  }

  std::size_t size() const { return data.size(); }
  float& at(int y, int x, int c) {
    return data[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * std::size_t(channels) +
                std::size_t(c)];
  }
  float at(int y, int x, int c) const {
    return data[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * std::size_t(channels) +
                std::size_t(c)];
  }

  static std::size_t checked_size(long long h, long long w, long long c) {
    if (h <= 0 || w <= 0 || c <= 0)
      throw Error("invalid tensor size " + std::to_string(h) + "x" + std::to_string(w) + "x" +
                  std::to_string(c));
    // Each side is also kept below 2^30 so that int coordinates plus any padding or
    // stride arithmetic inside the operators cannot overflow.
    const long long limit = static_cast<long long>(kMaxTensorElements);
    const long long side = 1LL << 30;
    if (h > side || w > side || c > side || h * w > limit || h * w * c > limit)
      throw Error("tensor size " + std::to_string(h) + "x" + std::to_string(w) + "x" +
                  std::to_string(c) + " is too large");
    return static_cast<std::size_t>(h * w * c);
  }
};

// An int16 tensor of the fixed-point operators (docs/int16.md): element (y, x, c) means
// data[(y * width + x) * channels + c] * 2^-shift. Same layout as Tensor.
struct QTensor {
  int height = 0;
  int width = 0;
  int channels = 0;
  int shift = 0;
  std::vector<std::int16_t> data;

  std::int16_t at(int y, int x, int c) const {
    return data[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * std::size_t(channels) +
                std::size_t(c)];
  }
};

}  // namespace lic
