// Contracts of the compute kernels and the table that lic/kernels/dispatch.hpp fills.
// Kernels are pure functions over raw pointers. They live in one folder per data type and
// operation (XNNPACK style: f32-igemm/, f32-vleaky/, ...; the int16 ones go to s16-*/),
// each folder holding the scalar twin (scalar.hpp, the reference and the fallback) and
// its ISA variants (avx2.hpp, avx2-fma.hpp, ...) with the same contract.
#pragma once

#include <cstddef>

namespace lic {
namespace kern {

constexpr int kMR = 6;   // rows (output pixels) of one GEMM micro-tile
constexpr int kNR = 16;  // columns (output channels) of one GEMM micro-tile

enum Activation : int { kActNone = 0, kActLeaky = 1 };  // ReLU is leaky with alpha 0

// f32_igemm_MRx16: an implicit-GEMM convolution micro-kernel ("indirect" GEMM).
// For rows i < MR and columns j < nc:
//   c[i*c_stride + j] = act(init + sum_t sum_k a[i*a_stride + taps[t] + k] * w[(t*kc + k)*16 + j])
// where init is bias[j], or the value already in c when `accumulate` is set (the caller
// splits a long reduction into blocks that keep their weights in L1).
// `a` points at the input pixel that anchors output pixel 0; each tap is a fixed offset (in
// floats) from the anchor, so the taps of a convolution window are read straight from the
// NHWC input without an im2col copy. `w` is one packed panel of 16 output channels (zero
// padded past the real channel count), `bias` 16 floats. act: x >= 0 ? x : alpha * x.
struct IgemmArgs {
  const float* a;
  std::ptrdiff_t a_stride;
  const std::ptrdiff_t* taps;
  int ntaps;
  int kc;
  const float* w;
  const float* bias;
  float* c;
  std::ptrdiff_t c_stride;
  int nc;  // 1..16 valid columns
  int accumulate;
  int act;
  float alpha;
};

// Instruction-set levels, lowest first. A level's table is the one below it with that
// level's own kernels put in (dav1d style), so a level that lacks a kernel keeps the one
// below; kAvx512 has no kernels of its own yet (see dispatch.hpp).
enum class Isa : int { kScalar = 0, kAvx2Fma = 1, kAvx512 = 2 };
constexpr int kIsaCount = 3;

using IgemmFn = void (*)(const IgemmArgs&);
// y[i] = x[i] >= 0 ? x[i] : alpha * x[i]   (y may equal x)
using LeakyFn = void (*)(const float* x, float* y, std::size_t n, float alpha);
// y[i] = a[i] + b[i]
using AddFn = void (*)(const float* a, const float* b, float* y, std::size_t n);
// y[i] = x[i] * x[i]
using SquareFn = void (*)(const float* x, float* y, std::size_t n);
// y[i] = inverse ? x[i] * sqrt(norm[i]) : x[i] / sqrt(norm[i])
using GdnFinishFn = void (*)(const float* x, const float* norm, float* y, std::size_t n,
                             int inverse);

struct KernelTable {
  const char* isa;  // name of the level, as isa_name(level)
  Isa level;
  IgemmFn igemm[kMR];  // igemm[m - 1] handles a tile of m rows
  LeakyFn leaky;
  AddFn add;
  SquareFn square;
  GdnFinishFn gdn_finish;
};

}  // namespace kern
}  // namespace lic
