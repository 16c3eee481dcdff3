// ADD: element-wise sum of two tensors of the same shape.
#pragma once

#include "lic/dispatch.hpp"
#include "lic/error.hpp"
#include "lic/tensor.hpp"

namespace lic {

inline Tensor add(const Tensor& a, const Tensor& b) {
  if (a.height != b.height || a.width != b.width || a.channels != b.channels)
    throw Error("add: operand shapes differ");
  Tensor out;
  out.height = a.height;
  out.width = a.width;
  out.channels = a.channels;
  out.data.resize(a.data.size());
  kern::kernels().add(a.data.data(), b.data.data(), out.data.data(), a.data.size());
  return out;
}

}  // namespace lic
