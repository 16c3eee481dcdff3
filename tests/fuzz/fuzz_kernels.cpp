// libFuzzer target, differential: every SIMD kernel of the best instruction set this CPU
// has against its scalar twin (lic/kernels/*/scalar.hpp), on shapes and values the fuzzer
// chooses: tile sizes and tails, tap offsets, strides, accumulate/activation flags, and
// float values including NaN, infinities, signed zeros and denormals.
//
// The element-wise kernels must agree bit for bit (NaN: any NaN). The GEMM micro-kernel
// uses FMA in SIMD and not in scalar code, so finite results must agree within a bound
// from the magnitudes summed; specials must agree exactly. Buffers are sized exactly so
// ASan sees any read or write outside the contract, and the columns past `nc` (inside the
// stride) must stay untouched.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_common.hpp"
#include "lic/kernels/dispatch.hpp"

namespace {

using lic::kern::IgemmArgs;
using lic::kern::KernelTable;

// Reads the fuzz input front to back; past its end every read gives 0.
struct Input {
  const std::uint8_t* p;
  std::size_t n;
  std::uint8_t byte() { return n ? (--n, *p++) : 0; }
  int pick(int lo, int hi) { return lo + byte() % (hi - lo + 1); }
  // A float: mostly small fractions, sometimes a special or extreme value. Magnitudes stay
  // below 1e15 so that sums of products cannot overflow in one order and not the other.
  float value() {
    const std::uint8_t kind = byte();
    const auto raw = static_cast<std::int16_t>(byte() | (byte() << 8));
    switch (kind % 16) {
      case 0: return std::nanf("");
      case 1: return kind & 16 ? INFINITY : -INFINITY;
      case 2: return kind & 16 ? 0.0f : -0.0f;
      case 3: return raw * 1e-42f;  // denormals
      case 4: return raw * 3e10f;   // large
      default: return raw / 4096.0f;
    }
  }
};

const KernelTable& scalar() {
  static const KernelTable t = lic::kern::kernels_for(lic::kern::Isa::kScalar);
  return t;
}

const KernelTable& best() {
  static const KernelTable t = lic::kern::kernels_for(lic::kern::best_isa());
  return t;
}

bool same(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::memcmp(&a, &b, sizeof a) == 0;
}

constexpr float kSentinel = -7.25e-3f;

void check_igemm(Input& in) {
  const int mr = in.pick(1, lic::kern::kMR);
  const int nc = in.pick(1, lic::kern::kNR);
  const int kc = in.pick(1, 24);
  const int ntaps = in.pick(0, 9);
  const std::ptrdiff_t a_stride = kc + in.pick(0, 3);
  const std::ptrdiff_t c_stride = nc + in.pick(0, 5);
  const int accumulate = in.byte() & 1;
  const int act = in.byte() & 1;
  const float alpha = in.value();
  std::vector<std::ptrdiff_t> taps(static_cast<std::size_t>(ntaps) + 1);
  std::ptrdiff_t lo = 0, hi = 1;
  for (int t = 0; t < ntaps; ++t) {
    taps[std::size_t(t)] = static_cast<std::int8_t>(in.byte());
    lo = std::min(lo, taps[std::size_t(t)]);
    hi = std::max(hi, taps[std::size_t(t)] + (mr - 1) * a_stride + kc);
  }
  std::vector<float> abuf(static_cast<std::size_t>(hi - lo));  // exactly what may be read
  for (float& v : abuf) v = in.value();
  std::vector<float> w(static_cast<std::size_t>(ntaps) * kc * lic::kern::kNR + 1);
  for (float& v : w) v = in.value();
  float bias[lic::kern::kNR];
  for (float& v : bias) v = in.value();
  const std::size_t c_size = static_cast<std::size_t>((mr - 1) * c_stride + nc);
  std::vector<float> init(c_size);
  for (std::size_t i = 0; i < c_size; ++i)
    init[i] = (i % std::size_t(c_stride)) < std::size_t(nc) ? in.value() : kSentinel;
  std::vector<float> c_ref = init, c_simd = init;
  IgemmArgs p{abuf.data() - lo, a_stride, taps.data(), ntaps, kc, w.data(), bias,
              nullptr, c_stride, nc, accumulate, act, alpha};
  p.c = c_ref.data();
  scalar().igemm[mr - 1](p);
  p.c = c_simd.data();
  best().igemm[mr - 1](p);
  for (int i = 0; i < mr; ++i) {
    for (std::ptrdiff_t j = 0; j < c_stride && i * c_stride + j < std::ptrdiff_t(c_size); ++j) {
      const std::size_t at = static_cast<std::size_t>(i * c_stride + j);
      if (j >= nc) {
        if (!same(c_simd[at], kSentinel) || !same(c_ref[at], kSentinel))
          fuzz::fail("igemm wrote past nc");
        continue;
      }
      const float r = c_ref[at], s = c_simd[at];
      if (!std::isfinite(r) || !std::isfinite(s)) {
        if (!same(r, s)) fuzz::fail("igemm: special values differ between scalar and SIMD");
        continue;
      }
      // Bound: FMA skips one rounding per product; each partial sum is rounded in both.
      double mag = std::fabs(accumulate ? init[at] : bias[j]);
      for (int t = 0; t < ntaps; ++t)
        for (int k = 0; k < kc; ++k)
          mag += std::fabs(double(p.a[i * a_stride + taps[std::size_t(t)] + k]) *
                           w[(std::size_t(t) * kc + k) * lic::kern::kNR + std::size_t(j)]);
      if (act) mag *= std::max(1.0, std::fabs(double(alpha)));  // either side of 0
      const double tol = 1e-5 * mag + 1e-38;
      if (std::fabs(double(r) - double(s)) > tol) fuzz::fail("igemm differs beyond rounding");
    }
  }
}

void check_elementwise(Input& in) {
  const std::size_t n = in.pick(0, 70);
  std::vector<float> x(n), y(n), norm(n);
  for (float& v : x) v = in.value();
  for (float& v : y) v = in.value();
  for (float& v : norm) v = in.value();
  const float alpha = in.value();
  const int inverse = in.byte() & 1;
  std::vector<float> r(n), s(n);
  auto compare = [&](const char* what) {
    for (std::size_t i = 0; i < n; ++i)
      if (!same(r[i], s[i])) fuzz::fail(what);
  };
  scalar().leaky(x.data(), r.data(), n, alpha);
  best().leaky(x.data(), s.data(), n, alpha);
  compare("leaky differs");
  s = x;  // in place, as the contract allows
  best().leaky(s.data(), s.data(), n, alpha);
  compare("leaky in place differs");
  scalar().add(x.data(), y.data(), r.data(), n);
  best().add(x.data(), y.data(), s.data(), n);
  compare("add differs");
  scalar().square(x.data(), r.data(), n);
  best().square(x.data(), s.data(), n);
  compare("square differs");
  scalar().gdn_finish(x.data(), norm.data(), r.data(), n, inverse);
  best().gdn_finish(x.data(), norm.data(), s.data(), n, inverse);
  compare("gdn_finish differs");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in{data, size};
  if (in.byte() & 1)
    check_igemm(in);
  else
    check_elementwise(in);
  return 0;
}
