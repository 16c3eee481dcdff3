// Contracts of the compute kernels and the table that lic/kernels/dispatch.hpp fills.
// Kernels are pure functions over raw pointers. They live in one folder per data type and
// operation (XNNPACK style: f32-igemm/, f32-vleaky/, ...; the int16 ones go to s16-*/),
// each folder holding the scalar twin (scalar.hpp, the reference and the fallback) and
// its ISA variants (avx2.hpp, avx2-fma.hpp, ...) with the same contract.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lic {
namespace kern {

constexpr int kMR = 6;   // rows (output pixels) of the scalar and AVX2 GEMM micro-tiles
constexpr int kMRAvx512 = 14;  // rows of the AVX-512 16-column tile
constexpr int kMR32Avx512 = 12;  // rows of the AVX-512 32-column tile (two panels)
constexpr int kMaxMR = 16;     // room in the kernel table
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
  // 32-column kernels only: they compute two full panels at once, columns 16..31 with the
  // weights at w + w_next (the next panel) and the bias at bias + 16; nc is 32.
  std::ptrdiff_t w_next;
};

// f32_vlincomb: rows of linear combinations of vectors (the transforms of the Winograd
// convolution, lic/ops/conv_winograd.hpp). For rows r < rows and elements i < n:
//   acc = init ? init[i] : 0;  then for j < terms: acc = fma(coef[j], x[j][r*x_stride + i], acc)
//   y[r*y_stride + i] = act == kActLeaky ? (acc >= 0 ? acc : alpha * acc) : acc
// One chain of fused multiply-adds per result, in term order, at every level: all levels
// give the same bits. y must not overlap any x[j] or init.
struct LincombArgs {
  const float* const* x;
  const float* coef;
  int terms;
  std::ptrdiff_t x_stride;
  const float* init;
  float* y;
  std::ptrdiff_t y_stride;
  int rows;
  std::size_t n;
  int act;
  float alpha;
};

// s16_igemm_MRx16: the int16 implicit-GEMM micro-kernel (arithmetic in docs/int16.md).
// Same addressing as f32_igemm (anchor, a_stride, taps; a and taps in int16 elements), but
// the reduction runs over input-channel pairs, as vpmaddwd multiplies them: `w` is one
// panel packed [tap][kc/2 rounded up][16][2] (w[((t*pairs + q)*16 + j)*2 + h] is the weight
// of channel 2q+h for column j; zero past kc and past the real column count). For rows
// i < MR and columns j < nc, with exact int32 sums (taken modulo 2^32, which a valid model's
// worst-case rule guarantees never matters):
//   acc = bias[j] + sum_t sum_k a[i*a_stride + taps[t] + k] * w(t, k, j)
// then either c32[i*c_stride + j] = acc (when c32 is set: GDN norms, gather columns) or
//   c16[i*c_stride + j] = act(sat16(acc >> shift))   (bias holds the rounding constant)
// with act kActLeaky: v < 0 ? sat16(rs(v * alpha_q, alpha_shift)) : v (ReLU: alpha_q = 0).
// No reduction blocking: the whole reduction is one call (int16 panels are half the size
// of float ones, and partial int32 sums would need a second buffer).
struct S16IgemmArgs {
  const std::int16_t* a;
  std::ptrdiff_t a_stride;
  const std::ptrdiff_t* taps;
  int ntaps;
  int kc;
  const std::int16_t* w;
  const std::int32_t* bias;
  std::int16_t* c16;
  std::int32_t* c32;
  std::ptrdiff_t c_stride;
  int nc;  // 1..16 valid columns
  int shift;  // 0..31
  int act;
  int alpha_q, alpha_shift;
};

// Instruction-set levels, lowest first. A level's table is the one below it with that
// level's own kernels put in (dav1d style), so a level that lacks a kernel keeps the one
// below. kAvx512 adds the float GEMM's taller (14x16) and two-panel (12x32) tiles;
// kAvx512Vnni adds the int16 GEMM with vpdpwssd.
enum class Isa : int { kScalar = 0, kAvx2Fma = 1, kAvx512 = 2, kAvx512Vnni = 3 };
constexpr int kIsaCount = 4;

using IgemmFn = void (*)(const IgemmArgs&);
using LincombFn = void (*)(const LincombArgs&);
// y[i] = x[i] >= 0 ? x[i] : alpha * x[i]   (y may equal x)
using LeakyFn = void (*)(const float* x, float* y, std::size_t n, float alpha);
// y[i] = pos[i] ? g[i] : alpha * g[i]   (y may equal g): the gradient through a leaky ReLU
using LeakyGradFn = void (*)(const std::uint8_t* pos, const float* g, float* y, std::size_t n,
                             float alpha);
// y[i] = a[i] + b[i]
using AddFn = void (*)(const float* a, const float* b, float* y, std::size_t n);
// y[i] = x[i] * x[i]
using SquareFn = void (*)(const float* x, float* y, std::size_t n);
// y[i] = inverse ? x[i] * sqrt(norm[i]) : x[i] / sqrt(norm[i])
using GdnFinishFn = void (*)(const float* x, const float* norm, float* y, std::size_t n,
                             int inverse);

// int16 element-wise kernels (docs/int16.md); y may equal x (or a) in each.
using S16IgemmFn = void (*)(const S16IgemmArgs&);
// y[i] = x[i] >= 0 ? x[i] : sat16(rs(x[i] * alpha_q, alpha_shift))
using S16LeakyFn = void (*)(const std::int16_t* x, std::int16_t* y, std::size_t n, int alpha_q,
                            int alpha_shift);
// y[i] = sat16(rs((a[i] << up_a) + (b[i] << up_b), shift)); one of up_a, up_b is 0, the
// other <= 15, shift <= 16 (so the sum and its rounding constant fit int32)
using S16AddFn = void (*)(const std::int16_t* a, const std::int16_t* b, std::int16_t* y,
                          std::size_t n, int up_a, int up_b, int shift);
// y[i] = min(rs(x[i] * x[i], shift), 32767)   (GDN's square; shift <= 31)
using S16SquareFn = void (*)(const std::int16_t* x, std::int16_t* y, std::size_t n, int shift);
// GDN's last step: r = isqrt(norm[i] << root_shift); inverse: y = sat16(rs(x * r, m));
// otherwise y = sat16(floor((x * 2^(m+1) + r) / (2 r))) (m is docs/int16.md's e).
using S16GdnFinishFn = void (*)(const std::int16_t* x, const std::int32_t* norm,
                                std::int16_t* y, std::size_t n, int root_shift, int inverse,
                                int m);
// QUANTIZE: y[i] = sat16(floor(x[i] * 2^shift + 1/2)), NaN -> 0
using QuantizeFn = void (*)(const float* x, std::int16_t* y, std::size_t n, int shift);
// DEQUANTIZE: y[i] = x[i] * 2^-shift
using DequantizeFn = void (*)(const std::int16_t* x, float* y, std::size_t n, int shift);

struct KernelTable {
  const char* isa;  // name of the level, as isa_name(level)
  Isa level;
  int mr;                 // tile rows of this level's GEMM kernels
  IgemmFn igemm[kMaxMR];  // igemm[m - 1] handles a tile of m rows, m <= mr
  int mr32;                 // tile rows of the 32-column kernels; 0 when there are none
  IgemmFn igemm32[kMaxMR];  // igemm32[m - 1]: two full panels, a tile of m <= mr32 rows
  LincombFn lincomb;
  LeakyFn leaky;
  LeakyGradFn leaky_grad;
  AddFn add;
  SquareFn square;
  GdnFinishFn gdn_finish;
  S16IgemmFn s16_igemm[kMR];
  S16LeakyFn s16_leaky;
  S16AddFn s16_add;
  S16SquareFn s16_square;
  S16GdnFinishFn s16_gdn_finish;
  QuantizeFn quantize;
  DequantizeFn dequantize;
};

}  // namespace kern
}  // namespace lic
