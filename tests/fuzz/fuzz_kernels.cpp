// libFuzzer target, differential: every SIMD kernel against its scalar twin
// (lic/kernels/*/scalar.hpp), on shapes and values the fuzzer chooses: tile sizes and
// tails, tap offsets, strides, accumulate/activation flags and shifts, float values
// including NaN, infinities, signed zeros and denormals, int16 values including the
// extremes.
//
// float (best level of the CPU): the element-wise kernels must agree bit for bit (NaN: any
// NaN). The GEMM micro-kernel uses FMA in SIMD and not in scalar code, so finite results
// must agree within a bound from the magnitudes summed; specials must agree exactly.
// int16 (every level of the CPU with kernels of its own: AVX2, AVX-512 VNNI): every kernel
// must give the scalar twin's bytes, whatever the inputs (docs/int16.md: bit-exact; int32
// sums are taken modulo 2^32 by every level alike), and the GEMM must also equal an int64
// reference whenever no partial sum can leave int32.
// Buffers are sized exactly so ASan sees any read or write outside the contract, and the
// columns past `nc` (inside the stride) must stay untouched.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "lic/kernels/dispatch.hpp"

namespace {

using lic::kern::IgemmArgs;
using lic::kern::KernelTable;
using lic::kern::S16IgemmArgs;

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

// int16 values: mostly anything, often an extreme, sometimes small.
std::int16_t s16_value(Input& in) {
  const std::uint8_t kind = in.byte();
  const auto raw = static_cast<std::int16_t>(in.byte() | (in.byte() << 8));
  switch (kind % 8) {
    case 0: return INT16_MIN;
    case 1: return INT16_MAX;
    case 2: return static_cast<std::int16_t>(raw % 300);
    default: return raw;
  }
}

// The tables of every level above scalar that this CPU runs and that has kernels of its own.
const std::vector<KernelTable>& simd_levels() {
  static const std::vector<KernelTable> levels = [] {
    std::vector<KernelTable> v;
    for (int i = 1; i < lic::kern::kIsaCount; ++i) {
      const auto isa = static_cast<lic::kern::Isa>(i);
      if (lic::kern::cpu_supports(isa) && lic::kern::has_kernels(isa))
        v.push_back(lic::kern::kernels_for(isa));
    }
    return v;
  }();
  return levels;
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
  const int mr = in.pick(1, best().mr);  // up to the level's own tile (AVX-512: 14 rows)
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
              nullptr, c_stride, nc, accumulate, act, alpha, 0};
  // The scalar twin's tiles are shorter: rows are independent, so it runs in row chunks.
  for (int r0 = 0; r0 < mr; r0 += scalar().mr) {
    IgemmArgs q = p;
    q.a = p.a + r0 * a_stride;
    q.c = c_ref.data() + r0 * c_stride;
    scalar().igemm[std::min(scalar().mr, mr - r0) - 1](q);
  }
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
  // f32-vlincomb: up to 3 terms (x, y, norm) over 2 rows of n / 2, the same FMA chain at
  // every level: bit-identical.
  const int terms = in.pick(0, 3), half = int(n / 2);
  const float* xs[3] = {x.data(), y.data(), norm.data()};
  const float coef[3] = {in.value(), in.value(), in.value()};
  const float* init = in.byte() & 1 ? norm.data() : nullptr;
  const int act = in.byte() & 1 ? lic::kern::kActLeaky : lic::kern::kActNone;
  lic::kern::LincombArgs a{xs, coef, terms, half, init, r.data(), half, 2, std::size_t(half),
                           act, alpha};
  scalar().lincomb(a);
  a.y = s.data();
  best().lincomb(a);
  for (int i = 0; i < 2 * half; ++i)
    if (!same(r[std::size_t(i)], s[std::size_t(i)])) fuzz::fail("lincomb differs");
}

constexpr std::int16_t kSentinel16 = -12345;
constexpr std::int32_t kSentinel32 = -123456789;

// One s16 GEMM call on a fresh copy of `init` (the output, int16 or int32 by p.c32).
template <class T>
std::vector<T> run_s16_igemm(const KernelTable& t, int mr, S16IgemmArgs p,
                             const std::vector<T>& init) {
  std::vector<T> c = init;
  if constexpr (sizeof(T) == 4) p.c32 = c.data();
  else p.c16 = c.data();
  t.s16_igemm[mr - 1](p);
  return c;
}

// The documented result (docs/int16.md) of element (i, j) in int64; `fits` says whether
// every partial sum stayed within int32 (only then is the reference the kernels' result).
std::int64_t s16_reference(const S16IgemmArgs& p, int i, int j, bool& fits) {
  const int pairs = (p.kc + 1) / 2;
  std::int64_t acc = p.bias[j], lo = std::min<std::int64_t>(acc, 0), hi = std::max<std::int64_t>(acc, 0);
  for (int t = 0; t < p.ntaps; ++t)
    for (int k = 0; k < p.kc; ++k) {
      const std::int64_t term =
          std::int64_t(p.a[i * p.a_stride + p.taps[t] + k]) *
          p.w[((std::size_t(t) * std::size_t(pairs) + std::size_t(k / 2)) * lic::kern::kNR +
               std::size_t(j)) * 2 + std::size_t(k % 2)];
      acc += term;
      (term < 0 ? lo : hi) += term;
    }
  fits = lo >= INT32_MIN && hi <= INT32_MAX;
  return acc;
}

std::int64_t s16_finish(std::int64_t acc, const S16IgemmArgs& p) {
  std::int64_t v = acc >> p.shift;  // bias carries the rounding constant
  v = std::max<std::int64_t>(INT16_MIN, std::min<std::int64_t>(INT16_MAX, v));
  if (p.act == lic::kern::kActLeaky && v < 0) v = lic::kern::s16_leaky_negative(std::int32_t(v), p.alpha_q, p.alpha_shift);
  return v;
}

void check_s16_igemm(Input& in) {
  const int mr = in.pick(1, lic::kern::kMR);
  const int nc = in.pick(1, lic::kern::kNR);
  const int kc = in.pick(1, 40);
  const int ntaps = in.pick(0, 9);
  const int pairs = (kc + 1) / 2;
  S16IgemmArgs p{};
  p.a_stride = kc + in.pick(0, 3);
  p.c_stride = nc + in.pick(0, 5);
  p.kc = kc;
  p.ntaps = ntaps;
  p.nc = nc;
  p.shift = in.pick(0, 31);
  p.act = in.byte() & 1 ? lic::kern::kActLeaky : lic::kern::kActNone;
  p.alpha_q = in.byte() & 1 ? 0 : static_cast<std::int16_t>(in.byte() | (in.byte() << 8));
  p.alpha_shift = in.pick(0, 30);
  const bool out32 = (in.byte() % 5) == 0;
  std::vector<std::ptrdiff_t> taps(static_cast<std::size_t>(ntaps) + 1);
  std::ptrdiff_t lo = 0, hi = 1;
  for (int t = 0; t < ntaps; ++t) {
    taps[std::size_t(t)] = static_cast<std::int8_t>(in.byte());
    lo = std::min(lo, taps[std::size_t(t)]);
    hi = std::max(hi, taps[std::size_t(t)] + (mr - 1) * p.a_stride + kc);
  }
  std::vector<std::int16_t> abuf(static_cast<std::size_t>(hi - lo));  // exactly what may be read
  for (auto& v : abuf) v = s16_value(in);
  // The packed panel: zero past kc, as the packer makes it.
  std::vector<std::int16_t> w(static_cast<std::size_t>(ntaps) * std::size_t(pairs) * 2 * lic::kern::kNR + 1);
  for (int t = 0; t < ntaps; ++t)
    for (int q = 0; q < pairs; ++q)
      for (int j = 0; j < lic::kern::kNR; ++j)
        for (int h = 0; h < 2; ++h)
          if (2 * q + h < kc)
            w[((std::size_t(t) * std::size_t(pairs) + std::size_t(q)) * lic::kern::kNR + std::size_t(j)) * 2 +
              std::size_t(h)] = s16_value(in);
  std::int32_t bias[lic::kern::kNR];
  for (auto& b : bias)
    b = static_cast<std::int32_t>(in.byte() | (in.byte() << 8) | (in.byte() << 16) |
                                  (std::uint32_t(in.byte()) << 24));
  p.a = abuf.data() - lo;
  p.taps = taps.data();
  p.w = w.data();
  p.bias = bias;

  const std::size_t c_size = static_cast<std::size_t>((mr - 1) * p.c_stride + nc);
  auto inside = [&](std::size_t at) { return std::ptrdiff_t(at) % p.c_stride < nc; };
  // Either output form: against the scalar twin, the sentinels past nc, and the int64
  // reference (`finish` maps it to what the kernel stores) wherever it fits.
  auto check = [&](auto sentinel, auto finish, const char* form) {
    using T = decltype(sentinel);
    const std::vector<T> init(c_size, sentinel);
    for (const KernelTable& t : simd_levels()) {
      const auto want = run_s16_igemm(scalar(), mr, p, init), got = run_s16_igemm(t, mr, p, init);
      if (want != got) fuzz::fail((std::string("s16 igemm") + form + " differs from the scalar twin").c_str());
      for (std::size_t at = 0; at < c_size; ++at) {
        if (!inside(at)) {
          if (got[at] != sentinel) fuzz::fail("s16 igemm wrote past nc");
          continue;
        }
        bool fits = false;
        const std::int64_t ref = s16_reference(p, int(at / std::size_t(p.c_stride)),
                                               int(at % std::size_t(p.c_stride)), fits);
        if (fits && finish(ref) != got[at])
          fuzz::fail((std::string("s16 igemm") + form + " differs from int64 reference").c_str());
      }
    }
  };
  if (out32)
    check(kSentinel32, [](std::int64_t acc) { return acc; }, " (int32 output)");
  else
    check(kSentinel16, [&](std::int64_t acc) { return s16_finish(acc, p); }, "");
}

// Runs `call` with the scalar table and each SIMD level into fresh outputs; all must agree.
template <class T, class Call>
void same_bytes(const char* what, std::size_t n, Call call) {
  std::vector<T> want(n), got(n);
  call(scalar(), want.data());
  for (const KernelTable& t : simd_levels()) {
    call(t, got.data());
    if (want != got) fuzz::fail(what);
  }
}

void check_s16_elementwise(Input& in) {
  const std::size_t n = in.pick(0, 70);
  std::vector<std::int16_t> x(n), y(n);
  std::vector<std::int32_t> norm(n);
  std::vector<float> f(n);
  for (auto& v : x) v = s16_value(in);
  for (auto& v : y) v = s16_value(in);
  const int root_shift = in.pick(0, 31);
  for (auto& v : norm) {  // norm >= 1 and norm << root_shift < 2^62 (docs/int16.md)
    const auto raw = static_cast<std::uint32_t>(in.byte() | (in.byte() << 8) | (in.byte() << 16) |
                                                (std::uint32_t(in.byte()) << 24));
    v = static_cast<std::int32_t>(1 + raw % 0x7fffffffu);
  }
  for (auto& v : f) v = in.value();
  const int alpha_q = static_cast<std::int16_t>(in.byte() | (in.byte() << 8));
  const int alpha_shift = in.pick(0, 30);
  const int up = in.pick(0, 15), add_shift = in.pick(0, 16), swap = in.byte() & 1;
  const int square_shift = in.pick(0, 31);
  const int inverse = in.byte() & 1;
  const int m = inverse ? in.pick(0, 62) : in.pick(0, 46);
  const int cvt_shift = in.pick(0, 24);

  same_bytes<std::int16_t>("s16 leaky differs", n, [&](const KernelTable& t, std::int16_t* out) {
    t.s16_leaky(x.data(), out, n, alpha_q, alpha_shift);
  });
  same_bytes<std::int16_t>("s16 leaky in place differs", n, [&](const KernelTable& t, std::int16_t* out) {
    std::copy(x.begin(), x.end(), out);
    t.s16_leaky(out, out, n, alpha_q, alpha_shift);
  });
  same_bytes<std::int16_t>("s16 add differs", n, [&](const KernelTable& t, std::int16_t* out) {
    t.s16_add(x.data(), y.data(), out, n, swap ? 0 : up, swap ? up : 0, add_shift);
  });
  same_bytes<std::int16_t>("s16 square differs", n, [&](const KernelTable& t, std::int16_t* out) {
    t.s16_square(x.data(), out, n, square_shift);
  });
  same_bytes<std::int16_t>("s16 gdn_finish differs", n, [&](const KernelTable& t, std::int16_t* out) {
    t.s16_gdn_finish(x.data(), norm.data(), out, n, root_shift, inverse, m);
  });
  same_bytes<std::int16_t>("f32->s16 quantize differs", n, [&](const KernelTable& t, std::int16_t* out) {
    t.quantize(f.data(), out, n, cvt_shift);
  });
  same_bytes<float>("s16->f32 dequantize differs", n, [&](const KernelTable& t, float* out) {
    t.dequantize(x.data(), out, n, cvt_shift);
  });
}

}  // namespace

// The first byte picks the family: float GEMM, float element-wise, int16 GEMM, int16
// element-wise (with the float <-> int16 conversions).
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in{data, size};
  switch (in.byte() % 4) {
    case 1: check_igemm(in); break;
    case 0: check_elementwise(in); break;
    case 3: check_s16_igemm(in); break;
    default: check_s16_elementwise(in); break;
  }
  return 0;
}
