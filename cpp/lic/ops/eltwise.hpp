// ADD: element-wise sum of two tensors of the same shape.
#pragma once

#include "lic/kernels/dispatch.hpp"
#include "base/error.hpp"
#include "lic/tensor.hpp"
#include "lic/workspace.hpp"

namespace lic {

inline Tensor add(const Tensor& a, const Tensor& b, BufferPool& pool) {
  if (a.height != b.height || a.width != b.width || a.channels != b.channels)
    throw Error("add: operand shapes differ");
  Tensor out = pooled_tensor(pool, a.height, a.width, a.channels);
  kern::kernels().add(a.data.data(), b.data.data(), out.data.data(), a.data.size());
  return out;
}

}  // namespace lic
