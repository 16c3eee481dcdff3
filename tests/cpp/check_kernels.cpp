// checkasm-style kernel harness: every kernel, at every instruction-set level this CPU
// offers, against its scalar twin (and the GEMM against a double-precision reference too),
// on random and extreme inputs at sizes that hit every tail, with sentinel guard zones
// around outputs and inputs sized exactly (so ASan sees any over-read).
//
//   check_kernels [--seed N] [--bench] [--break overrun|value]
//
// Tolerances. Element-wise kernels (f32-vleaky, f32-vadd, f32-vsquare, f32-gdn-finish) use
// the same correctly rounded IEEE operations as their twins: results must be identical
// bit for bit (two NaNs count as equal whatever their payloads). f32-igemm's SIMD versions
// use FMA (one rounding per multiply-add instead of two), so they are held to an error
// bound instead: |got - exact| <= 2 (n + 2) 2^-24 sum|terms|, exact computed in double,
// n the length of the reduction; non-finite inputs must give non-finite outputs in the
// same places (NaN where the twin has NaN, the same infinity where it has one). Tiles taller
// than the scalar twin's (AVX-512: up to 14 rows of 16 columns, 12 rows of 32) are checked
// against the twin run tile by tile, and every AVX-512 GEMM result must equal the AVX2
// kernel's bit for bit (the same chain of FMAs per output value).
//
// int16 kernels (s16-*, f32-s16-vcvt, s16-f32-vcvt; docs/int16.md) are integer arithmetic:
// every level must give the scalar twin's bytes exactly, on random inputs, on extreme ones
// (±32767, -32768, sums that saturate int16, sums past the int32 worst case, which the
// twin takes modulo 2^32 as vpmaddwd/vpaddd do), and the twins must equal an int64
// recomputation of docs/int16.md wherever the int32 worst case holds.
//
// --bench prints each kernel's time per call at each level and the speed-up over scalar.
// --break injects a faulty kernel at the highest level (a write past the output, or a
// wrong value), to show that the harness catches it (the run must then fail).
//
// Adding a kernel: write its check (usually one call to check_vector_kernel) and its
// bench, and add one row to the table in kernel_cases().
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lic/kernels/dispatch.hpp"

namespace {

using lic::kern::IgemmArgs;
using lic::kern::Isa;
using lic::kern::KernelTable;
using lic::kern::kNR;

constexpr float kSentinel = -12345.6789f;
constexpr std::size_t kGuard = 16;  // sentinel floats before and after every output
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

int failures = 0;

bool fail(const std::string& what) {
  if (failures < 20) std::printf("FAIL: %s\n", what.c_str());
  ++failures;
  return false;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }
bool same_value(float a, float b) { return same_bits(a, b) || (std::isnan(a) && std::isnan(b)); }

struct Rng {
  std::mt19937 g;
  explicit Rng(unsigned seed) : g(seed) {}
  float uni(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(g); }
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g); }
  // Mostly ordinary values, with the extremes every kernel must survive mixed in.
  float any() {
    static const float special[] = {0.0f, -0.0f, kInf, -kInf, kNaN, 1e-40f, -1e-40f,
                                    std::numeric_limits<float>::max(),
                                    -std::numeric_limits<float>::max(),
                                    std::numeric_limits<float>::min(), 1e30f, -1e30f};
    if (pick(0, 7) == 0) return special[pick(0, int(sizeof special / sizeof *special) - 1)];
    return uni(-3.0f, 3.0f);
  }
};

// An output buffer of n floats between two sentinel zones.
struct Guarded {
  std::vector<float> buf;
  explicit Guarded(std::size_t n) : buf(n + 2 * kGuard, kSentinel) {}
  float* data() { return buf.data() + kGuard; }
  // The guard zones are untouched; `inside(i)` says which of the n floats may be written.
  template <class Inside>
  bool guards_intact(const std::string& where, Inside inside) const {
    for (std::size_t i = 0; i < buf.size(); ++i) {
      const long off = long(i) - long(kGuard);
      const bool in = off >= 0 && std::size_t(off) < buf.size() - 2 * kGuard && inside(off);
      if (!in && !same_bits(buf[i], kSentinel))
        return fail(where + ": wrote outside its output at offset " + std::to_string(off));
    }
    return true;
  }
};

// ---------------------------------------------------------------------------- f32-igemm

struct IgemmCase {
  int mr, nc, kc, ntaps, accumulate, act;
  float alpha;
  bool special;      // NaN/inf in the inputs
  bool wide = false;  // a 32-column kernel: two full panels, the second at w + w_next
};

// Columns of the case's output (32 for the wide kernels).
int columns(const IgemmCase& k) { return k.wide ? 2 * kNR : kNR; }

// Inputs of one igemm call, sized exactly to what the kernel may read.
struct IgemmInputs {
  std::vector<float> abuf, w, init;
  std::vector<std::ptrdiff_t> taps;
  float bias[2 * kNR];
  std::ptrdiff_t a_stride = 0, c_stride = 0, a_lo = 0, w_next = 0;

  IgemmInputs(const IgemmCase& k, Rng& rng) {
    a_stride = k.kc + rng.pick(0, 3);
    c_stride = k.nc + rng.pick(0, 5);
    taps.assign(std::size_t(k.ntaps) + 1, 0);  // +1: non-null even for 0 taps
    std::ptrdiff_t hi = 0;
    for (int t = 0; t < k.ntaps; ++t) {
      taps[std::size_t(t)] = rng.pick(-40, 40);
      a_lo = std::min(a_lo, taps[std::size_t(t)]);
      hi = std::max(hi, taps[std::size_t(t)] + (k.mr - 1) * a_stride + k.kc);
    }
    abuf.resize(std::size_t(std::max<std::ptrdiff_t>(hi - a_lo, 1)));
    for (float& v : abuf) v = rng.uni(-1.0f, 1.0f);
    // The second panel of a wide case lies a little past the first (as in a packed pass).
    const std::size_t panel = std::size_t(k.ntaps) * std::size_t(k.kc) * kNR;
    w_next = k.wide ? std::ptrdiff_t(panel) + rng.pick(0, 3) * kNR : 0;
    w.resize(k.wide ? std::size_t(w_next) + panel + 1 : panel + 1);
    for (float& v : w) v = rng.uni(-1.0f, 1.0f);
    for (float& v : bias) v = rng.uni(-1.0f, 1.0f);
    const int cols = columns(k);
    init.resize(std::size_t(k.mr) * std::size_t(cols));
    for (int i = 0; i < k.mr; ++i)
      for (int j = 0; j < cols; ++j)
        init[std::size_t(i * cols + j)] = k.accumulate ? rng.uni(-2.0f, 2.0f) : bias[j];
    if (k.special) {
      for (int s = 0; s < 3; ++s) abuf[std::size_t(rng.pick(0, int(abuf.size()) - 1))] = rng.any();
      w[std::size_t(rng.pick(0, int(w.size()) - 1))] = s_pick(rng);
    }
  }
  static float s_pick(Rng& rng) {
    const float v[] = {kInf, -kInf, kNaN};
    return v[rng.pick(0, 2)];
  }
  const float* a() const { return abuf.data() - a_lo; }
};

// Runs `fn` on the inputs into a guarded C; returns false (after reporting) on an overrun.
IgemmArgs igemm_args(const IgemmCase& k, const IgemmInputs& in, float* c);

bool run_igemm(lic::kern::IgemmFn fn, const IgemmCase& k, const IgemmInputs& in, Guarded& out,
               const std::string& where) {
  float* c = out.data();
  const int cols = columns(k);
  if (k.accumulate)
    for (int i = 0; i < k.mr; ++i)
      for (int j = 0; j < k.nc; ++j) c[i * in.c_stride + j] = in.init[std::size_t(i * cols + j)];
  fn(igemm_args(k, in, c));
  const std::ptrdiff_t cs = in.c_stride;
  return out.guards_intact(where, [&](long off) { return off < k.mr * cs && off % cs < k.nc; });
}

// The scalar twin's result for any tile: rows in tiles of at most scalar.mr, a wide case
// as its two panels (rows and panels are independent, so this is the same computation).
bool run_scalar(const KernelTable& scalar, const IgemmCase& k, const IgemmInputs& in,
                Guarded& out, const std::string& where) {
  float* c = out.data();
  const int cols = columns(k);
  if (k.accumulate)
    for (int i = 0; i < k.mr; ++i)
      for (int j = 0; j < k.nc; ++j) c[i * in.c_stride + j] = in.init[std::size_t(i * cols + j)];
  for (int half = 0; half < (k.wide ? 2 : 1); ++half)
    for (int r0 = 0; r0 < k.mr; r0 += scalar.mr) {
      IgemmArgs p = igemm_args(k, in, c);
      const int m = std::min(scalar.mr, k.mr - r0);
      p.a += r0 * in.a_stride;
      p.c += r0 * in.c_stride + half * kNR;
      p.w += half * in.w_next;
      p.bias += half * kNR;
      p.nc = k.wide ? kNR : k.nc;
      scalar.igemm[m - 1](p);
    }
  const std::ptrdiff_t cs = in.c_stride;
  return out.guards_intact(where, [&](long off) { return off < k.mr * cs && off % cs < k.nc; });
}

IgemmArgs igemm_args(const IgemmCase& k, const IgemmInputs& in, float* c) {
  IgemmArgs p;
  p.a = k.ntaps > 0 ? in.a() : in.abuf.data();
  p.a_stride = in.a_stride;
  p.taps = in.taps.data();
  p.ntaps = k.ntaps;
  p.kc = k.kc;
  p.w = in.w.data();
  p.bias = in.bias;
  p.c = c;
  p.c_stride = in.c_stride;
  p.nc = k.nc;
  p.accumulate = k.accumulate;
  p.act = k.act;
  p.alpha = k.alpha;
  p.w_next = in.w_next;
  return p;
}

// Exact value (double) of element (i, j) and the sum of the magnitudes of its terms.
void igemm_reference(const IgemmCase& k, const IgemmInputs& in, int i, int j, double& ref,
                     double& mag) {
  const double start = in.init[std::size_t(i * columns(k) + j)];
  ref = start;
  mag = std::fabs(start);
  const std::size_t w0 = j < kNR ? 0 : std::size_t(in.w_next), jj = std::size_t(j % kNR);
  for (int t = 0; t < k.ntaps; ++t)
    for (int q = 0; q < k.kc; ++q) {
      const double term = double(in.a()[in.taps[std::size_t(t)] + i * in.a_stride + q]) *
                          double(in.w[w0 + (std::size_t(t) * std::size_t(k.kc) + std::size_t(q)) * kNR +
                                      jj]);
      ref += term;
      mag += std::fabs(term);
    }
  if (k.act && !(ref >= 0)) ref *= k.alpha, mag *= std::fabs(k.alpha);
}

// The AVX2 table, whose GEMM results the AVX-512 kernels must equal bit for bit (the same
// chain of FMAs for every output value; docs/runtime.md#dispatch); null when absent.
const KernelTable* fma_reference = nullptr;

bool check_igemm_case(const KernelTable& t, const KernelTable& scalar, const IgemmCase& k,
                      Rng& rng) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s f32-igemm-%dx%d nc=%d kc=%d taps=%d acc=%d act=%d%s", t.isa,
                k.mr, columns(k), k.nc, k.kc, k.ntaps, k.accumulate, k.act,
                k.special ? " (NaN/inf)" : "");
  const std::string where = buf;
  const IgemmInputs in(k, rng);
  const std::size_t n = std::size_t(k.mr) * std::size_t(in.c_stride);
  Guarded got(n), want(n);
  const lic::kern::IgemmFn fn = k.wide ? t.igemm32[k.mr - 1] : t.igemm[k.mr - 1];
  if (!run_igemm(fn, k, in, got, where)) return false;
  if (!run_scalar(scalar, k, in, want, where + " (scalar twin)")) return false;
  if (fma_reference && &t != fma_reference && t.level > fma_reference->level) {
    // The FMA chains of the AVX2 kernel, run tile by tile like the scalar twin.
    Guarded same(n);
    if (!run_scalar(*fma_reference, k, in, same, where + " (avx2 reference)")) return false;
    for (int i = 0; i < k.mr; ++i)
      for (int j = 0; j < k.nc; ++j) {
        const float g = got.data()[i * in.c_stride + j], r = same.data()[i * in.c_stride + j];
        if (!same_value(g, r))
          return fail(where + ": element (" + std::to_string(i) + "," + std::to_string(j) +
                      ") is " + std::to_string(g) + ", not bit-identical to " +
                      fma_reference->isa + "'s " + std::to_string(r));
      }
  }
  for (int i = 0; i < k.mr; ++i)
    for (int j = 0; j < k.nc; ++j) {
      const float g = got.data()[i * in.c_stride + j], s = want.data()[i * in.c_stride + j];
      const std::string at = where + ": element (" + std::to_string(i) + "," + std::to_string(j) +
                             ") is " + std::to_string(g);
      if (!std::isfinite(s) || !std::isfinite(g)) {
        if (!same_value(g, s)) return fail(at + ", the scalar twin gives " + std::to_string(s));
        continue;
      }
      double ref = 0, mag = 0;
      igemm_reference(k, in, i, j, ref, mag);
      const double bound = 2.0 * (k.ntaps * k.kc + 2) * std::ldexp(1.0, -24) * mag + 1e-30;
      if (!(std::fabs(g - ref) <= bound))
        return fail(at + ", expected " + std::to_string(ref) + " +- " + std::to_string(bound));
      if (!(std::fabs(double(g) - double(s)) <= 2 * bound))
        return fail(at + ", the scalar twin gives " + std::to_string(s));
    }
  return true;
}

// Every row count has its own kernel: one table row per MR (and per width: the 32-column
// kernels always have two full panels, nc = 32).
template <int MR, bool Wide>
int check_igemm(const KernelTable& t, const KernelTable& scalar, Rng& rng) {
  const int kcs[] = {1, 2, 3, 5, 7, 8, 13, 16, 17, 31};
  const int taps[] = {0, 1, 2, 5};
  int cases = 0;
  for (int nc = Wide ? 2 * kNR : 1; nc <= (Wide ? 2 * kNR : kNR); ++nc)
    for (int kc : kcs)
      for (int nt : taps)
        for (int accumulate = 0; accumulate < 2; ++accumulate) {
          IgemmCase k{MR, nc, kc, nt, accumulate, (nc + kc) % 3 == 0 ? 0 : 1,
                      (nc % 2) ? 0.1f : -0.7f, nt > 0 && (nc + kc + accumulate) % 4 == 0, Wide};
          // the wide kernels have one width: spend the cases on more reductions instead
          const int repeats = Wide ? 4 : 1;
          for (int r = 0; r < repeats; ++r) {
            ++cases;
            if (!check_igemm_case(t, scalar, k, rng)) return cases;
          }
        }
  return cases;
}

// -------------------------------------------------------------------- element-wise kernels

// A vector kernel under test: `call(t, x, b, y, n)` runs it from table t on inputs x and b
// (b unused by one-input kernels) into y. `inplace` (y = x) is checked when allowed.
using VectorCall = std::function<void(const KernelTable&, const float*, const float*, float*,
                                      std::size_t)>;

// Bit-exact against the scalar twin, for every n from 0 to 80, prime sizes up to 1031 and
// unaligned starts; inputs random with NaN, infinities, zeros of both signs, denormals and
// the largest floats mixed in. `domain_b` draws the second input (e.g. GDN's norm).
int check_vector_kernel(const char* name, const KernelTable& t, const KernelTable& scalar,
                        Rng& rng, const VectorCall& call, bool inplace,
                        const std::function<float(Rng&)>& domain_b) {
  std::vector<std::size_t> sizes;
  for (std::size_t n = 0; n <= 80; ++n) sizes.push_back(n);
  for (std::size_t n : {97, 127, 251, 509, 1031}) sizes.push_back(n);
  int cases = 0;
  for (std::size_t n : sizes) {
    const std::size_t skew = std::size_t(rng.pick(0, 7));  // start off a 32-byte boundary
    std::vector<float> xs(n + skew), bs(n + skew);
    for (float& v : xs) v = rng.any();
    for (float& v : bs) v = domain_b(rng);
    const float* x = xs.data() + skew;
    const float* b = bs.data() + skew;
    const std::string where = std::string(t.isa) + " " + name + " n=" + std::to_string(n);
    for (int mode = 0; mode < (inplace ? 2 : 1); ++mode) {
      ++cases;
      Guarded got(n), want(n);
      if (mode == 1) {  // y == x
        if (n) std::memcpy(got.data(), x, n * sizeof(float));
        call(t, got.data(), b, got.data(), n);
      } else {
        call(t, x, b, got.data(), n);
      }
      call(scalar, x, b, want.data(), n);
      const std::string w = where + (mode ? " in place" : "");
      if (!got.guards_intact(w, [](long) { return true; })) return cases;
      for (std::size_t i = 0; i < n; ++i)
        if (!same_value(got.data()[i], want.data()[i])) {
          fail(w + ": element " + std::to_string(i) + " is " + std::to_string(got.data()[i]) +
               ", the scalar twin gives " + std::to_string(want.data()[i]) + " (input " +
               std::to_string(x[i]) + ")");
          return cases;
        }
    }
  }
  return cases;
}

float any_value(Rng& rng) { return rng.any(); }
// GDN's norm is beta + gamma x^2 > 0 in a real model; its edge values are checked too.
float norm_value(Rng& rng) {
  if (rng.pick(0, 9) == 0) return rng.any();
  return rng.uni(0.01f, 4.0f);
}

int check_vleaky(const KernelTable& t, const KernelTable& s, Rng& rng) {
  int cases = 0;
  for (float alpha : {0.0f, 0.1f, -2.0f})
    cases += check_vector_kernel(
        "f32-vleaky", t, s, rng,
        [alpha](const KernelTable& k, const float* x, const float*, float* y, std::size_t n) {
          k.leaky(x, y, n, alpha);
        },
        true, any_value);
  return cases;
}

// The mask comes from the second input: byte i is nonzero (and not always 1) where b[i] > 0;
// it is sized exactly, so ASan sees an over-read.
void leaky_grad_call(const KernelTable& k, const float* g, const float* b, float* y,
                     std::size_t n, float alpha) {
  std::vector<std::uint8_t> pos(n);
  for (std::size_t i = 0; i < n; ++i) pos[i] = b[i] > 0.0f ? std::uint8_t(1 + i % 200) : 0;
  k.leaky_grad(pos.data(), g, y, n, alpha);
}

int check_vleaky_grad(const KernelTable& t, const KernelTable& s, Rng& rng) {
  int cases = 0;
  for (float alpha : {0.0f, 0.1f, -2.0f})
    cases += check_vector_kernel(
        "f32-vleaky-grad", t, s, rng,
        [alpha](const KernelTable& k, const float* g, const float* b, float* y, std::size_t n) {
          leaky_grad_call(k, g, b, y, n, alpha);
        },
        true, any_value);
  return cases;
}

int check_vadd(const KernelTable& t, const KernelTable& s, Rng& rng) {
  return check_vector_kernel(
      "f32-vadd", t, s, rng,
      [](const KernelTable& k, const float* a, const float* b, float* y, std::size_t n) {
        k.add(a, b, y, n);
      },
      true, any_value);
}

int check_vsquare(const KernelTable& t, const KernelTable& s, Rng& rng) {
  return check_vector_kernel(
      "f32-vsquare", t, s, rng,
      [](const KernelTable& k, const float* x, const float*, float* y, std::size_t n) {
        k.square(x, y, n);
      },
      true, any_value);
}

int check_gdn_finish(const KernelTable& t, const KernelTable& s, Rng& rng) {
  int cases = 0;
  for (int inverse = 0; inverse < 2; ++inverse)
    cases += check_vector_kernel(
        inverse ? "f32-gdn-finish (inverse)" : "f32-gdn-finish", t, s, rng,
        [inverse](const KernelTable& k, const float* x, const float* norm, float* y,
                  std::size_t n) { k.gdn_finish(x, norm, y, n, inverse); },
        true, norm_value);
  return cases;
}

// f32-vlincomb: rows of linear combinations, bit-exact against the scalar twin (the same
// FMA chain per result) for 0 to 11 terms, and now and then 12 to 50, with and without init
// and activation, over several rows with gaps between them (which must stay unwritten),
// every n to 80 and primes.
int check_vlincomb(const KernelTable& t, const KernelTable& scalar, Rng& rng) {
  std::vector<std::size_t> sizes;
  for (std::size_t n = 0; n <= 80; ++n) sizes.push_back(n);
  for (std::size_t n : {97, 127, 128, 131, 251}) sizes.push_back(n);
  int cases = 0;
  for (std::size_t n : sizes) {
    ++cases;
    const int terms = rng.pick(0, 4) == 0 ? rng.pick(12, 50) : rng.pick(0, 11);
    const int rows = rng.pick(1, 3);
    const std::ptrdiff_t x_stride = std::ptrdiff_t(n) + rng.pick(0, 5);
    const std::ptrdiff_t y_stride = std::ptrdiff_t(n) + rng.pick(0, 5);
    std::vector<std::vector<float>> xs(static_cast<std::size_t>(terms));
    std::vector<const float*> x(std::size_t(terms) + 1, nullptr);
    std::vector<float> coef(std::size_t(terms) + 1, 0.0f);
    for (int j = 0; j < terms; ++j) {  // each term sized exactly: ASan sees an over-read
      xs[std::size_t(j)].resize(std::size_t(rows - 1) * std::size_t(x_stride) + n);
      for (float& v : xs[std::size_t(j)]) v = rng.any();
      x[std::size_t(j)] = xs[std::size_t(j)].data();
      coef[std::size_t(j)] = rng.pick(0, 3) == 0 ? float(rng.pick(-5, 5)) / 4.0f : rng.uni(-2.0f, 2.0f);
    }
    std::vector<float> init(n);
    for (float& v : init) v = rng.any();
    const bool with_init = rng.pick(0, 1) == 1;
    const int act = rng.pick(0, 1) ? lic::kern::kActLeaky : lic::kern::kActNone;
    const float alpha = rng.pick(0, 1) ? 0.0f : 0.1f;
    const std::size_t out_n = std::size_t(rows - 1) * std::size_t(y_stride) + n;
    Guarded got(out_n), want(out_n);
    lic::kern::LincombArgs a{x.data(), coef.data(), terms, x_stride,
                             with_init ? init.data() : nullptr, got.data(), y_stride, rows, n,
                             act, alpha};
    t.lincomb(a);
    a.y = want.data();
    scalar.lincomb(a);
    const std::string where = std::string(t.isa) + " f32-vlincomb n=" + std::to_string(n) +
                              " terms=" + std::to_string(terms) + " rows=" + std::to_string(rows);
    const auto inside = [&](long off) { return std::size_t(off % y_stride) < n; };
    if (!got.guards_intact(where, inside)) return cases;
    for (std::size_t i = 0; i < out_n; ++i)
      if (inside(long(i)) && !same_value(got.data()[i], want.data()[i])) {
        fail(where + ": element " + std::to_string(i) + " is " + std::to_string(got.data()[i]) +
             ", the scalar twin gives " + std::to_string(want.data()[i]));
        return cases;
      }
  }
  return cases;
}

// The scalar twins themselves against hand-computed values.
int check_scalar_basics(const KernelTable& s) {
  const float x[4] = {-2.0f, 0.0f, 3.0f, -0.5f};
  float y[4];
  s.leaky(x, y, 4, 0.25f);
  if (y[0] != -0.5f || y[1] != 0.0f || y[2] != 3.0f || y[3] != -0.125f) fail("scalar leaky");
  const float norm[4] = {4.0f, 1.0f, 9.0f, 0.25f};
  s.gdn_finish(x, norm, y, 4, 0);
  if (y[0] != -1.0f || y[2] != 1.0f || y[3] != -1.0f) fail("scalar gdn");
  s.gdn_finish(x, norm, y, 4, 1);
  if (y[0] != -4.0f || y[2] != 9.0f || y[3] != -0.25f) fail("scalar igdn");
  const std::uint8_t pos[4] = {0, 7, 1, 0};
  s.leaky_grad(pos, x, y, 4, 0.5f);
  if (y[0] != -1.0f || y[1] != 0.0f || y[2] != 3.0f || y[3] != -0.25f) fail("scalar leaky grad");
  s.add(x, norm, y, 4);
  if (y[0] != 2.0f || y[1] != 1.0f || y[2] != 12.0f || y[3] != -0.25f) fail("scalar add");
  s.square(x, y, 4);
  if (y[0] != 4.0f || y[1] != 0.0f || y[2] != 9.0f || y[3] != 0.25f) fail("scalar square");
  // Two rows of norm + 2 x - 0.5 norm, the second row 2 floats on, then leaky (alpha 0.5).
  const float* terms[2] = {x, norm};
  const float coef[2] = {2.0f, -0.5f};
  float z[6] = {0, 0, 0, 0, 0, 0};
  s.lincomb({terms, coef, 2, 2, norm, z, 4, 2, 2, lic::kern::kActLeaky, 0.5f});
  // row 0: 4 - 4 - 2 = -2 -> -1; 1 + 0 - 0.5 = 0.5; row 1: 4 + 6 - 4.5 = 5.5; 1 - 1 - 0.125
  if (z[0] != -1.0f || z[1] != 0.5f || z[4] != 5.5f || z[5] != -0.0625f || z[2] != 0.0f)
    fail("scalar lincomb");
  return 7;
}

// ---------------------------------------------------------------------------------- bench

template <class F>
double ns_per_call(F&& f) {
  using clock = std::chrono::steady_clock;
  int reps = 1;
  double best = 1e300;
  for (;;) {  // grow the repetitions until one timing takes >= 2 ms
    const auto t0 = clock::now();
    for (int r = 0; r < reps; ++r) f();
    const double ns = std::chrono::duration<double, std::nano>(clock::now() - t0).count();
    if (ns >= 2e6 || reps >= (1 << 24)) {
      best = ns / reps;
      break;
    }
    reps *= 2;
  }
  for (int trial = 0; trial < 4; ++trial) {  // best of 5
    const auto t0 = clock::now();
    for (int r = 0; r < reps; ++r) f();
    best = std::min(best, std::chrono::duration<double, std::nano>(clock::now() - t0).count() / reps);
  }
  return best;
}

// One MRx16 (or MRx32) tile of a g_s-like layer: 128 input channels, 25 taps.
double bench_igemm(const KernelTable& t, int mr, bool wide) {
  Rng rng(7);
  const IgemmCase k{mr, wide ? 2 * kNR : kNR, 128, 25, 0, 1, 0.0f, false, wide};
  IgemmInputs in(k, rng);
  std::vector<float> c(std::size_t(mr) * std::size_t(in.c_stride));
  const IgemmArgs p = igemm_args(k, in, c.data());
  const lic::kern::IgemmFn fn = wide ? t.igemm32[mr - 1] : t.igemm[mr - 1];
  return ns_per_call([&] { fn(p); });
}

// 4096 floats: one row of a 32-pixel, 128-channel tensor.
double bench_vector(const VectorCall& call, const KernelTable& t) {
  Rng rng(7);
  std::vector<float> x(4096), b(4096), y(4096);
  for (float& v : x) v = rng.uni(-3.0f, 3.0f);
  for (float& v : b) v = rng.uni(0.01f, 4.0f);
  return ns_per_call([&] { call(t, x.data(), b.data(), y.data(), x.size()); });
}

// ------------------------------------------------------------------------ the kernel table

struct KernelCase {
  const char* name;
  // Whether a table has this kernel at all (the GEMM tiles taller than a level's own are
  // not in its table).
  std::function<bool(const KernelTable&)> has;
  // The function this table uses for the kernel (a level whose function is the one of the
  // level below is not checked again).
  std::function<const void*(const KernelTable&)> id;
  std::function<int(const KernelTable&, const KernelTable&, Rng&)> check;  // returns cases run
  std::function<double(const KernelTable&)> bench;                         // ns per call
};

template <class Fn>
const void* fn_id(Fn f) {
  return reinterpret_cast<const void*>(f);
}

template <int MR, bool Wide = false>
KernelCase igemm_row() {
  static const std::string name =
      "f32-igemm-" + std::to_string(MR) + "x" + std::to_string(Wide ? 2 * kNR : kNR);
  return {name.c_str(),
          [](const KernelTable& t) { return (Wide ? t.mr32 : t.mr) >= MR; },
          [](const KernelTable& t) { return fn_id(Wide ? t.igemm32[MR - 1] : t.igemm[MR - 1]); },
          check_igemm<MR, Wide>, [](const KernelTable& t) { return bench_igemm(t, MR, Wide); }};
}

bool always(const KernelTable&) { return true; }

std::vector<KernelCase> kernel_cases() {
  return {
      igemm_row<1>(), igemm_row<2>(), igemm_row<3>(), igemm_row<4>(), igemm_row<5>(),
      igemm_row<6>(), igemm_row<7>(), igemm_row<8>(), igemm_row<9>(), igemm_row<10>(),
      igemm_row<11>(), igemm_row<12>(), igemm_row<13>(), igemm_row<14>(),
      igemm_row<1, true>(), igemm_row<2, true>(), igemm_row<3, true>(), igemm_row<4, true>(),
      igemm_row<5, true>(), igemm_row<6, true>(), igemm_row<7, true>(), igemm_row<8, true>(),
      igemm_row<9, true>(), igemm_row<10, true>(), igemm_row<11, true>(), igemm_row<12, true>(),
      {"f32-vlincomb", always, [](const KernelTable& t) { return fn_id(t.lincomb); },
       check_vlincomb,
       [](const KernelTable& t) {  // a Winograd input transform: 4 terms, 48 rows of 128
         Rng rng(7);
         std::vector<float> x(41 * 1024), y(48 * 128);
         for (float& v : x) v = rng.uni(-3.0f, 3.0f);
         const float* terms[4] = {x.data(), x.data() + 256, x.data() + 512, x.data() + 768};
         const float coef[4] = {4.0f, -5.0f, 1.0f, 2.0f};
         const lic::kern::LincombArgs a{terms, coef, 4, 1024, nullptr, y.data(), 128, 40, 128,
                                        lic::kern::kActNone, 0.0f};
         return ns_per_call([&] { t.lincomb(a); });
       }},
      {"f32-vleaky", always, [](const KernelTable& t) { return fn_id(t.leaky); }, check_vleaky,
       [](const KernelTable& t) {
         return bench_vector([](const KernelTable& k, const float* x, const float*, float* y,
                                std::size_t n) { k.leaky(x, y, n, 0.1f); }, t);
       }},
      {"f32-vleaky-grad", always, [](const KernelTable& t) { return fn_id(t.leaky_grad); },
       check_vleaky_grad,
       [](const KernelTable& t) {
         return bench_vector([](const KernelTable& k, const float* g, const float* b, float* y,
                                std::size_t n) { leaky_grad_call(k, g, b, y, n, 0.1f); }, t);
       }},
      {"f32-vadd", always, [](const KernelTable& t) { return fn_id(t.add); }, check_vadd,
       [](const KernelTable& t) {
         return bench_vector([](const KernelTable& k, const float* a, const float* b, float* y,
                                std::size_t n) { k.add(a, b, y, n); }, t);
       }},
      {"f32-vsquare", always, [](const KernelTable& t) { return fn_id(t.square); }, check_vsquare,
       [](const KernelTable& t) {
         return bench_vector([](const KernelTable& k, const float* x, const float*, float* y,
                                std::size_t n) { k.square(x, y, n); }, t);
       }},
      {"f32-gdn-finish", always, [](const KernelTable& t) { return fn_id(t.gdn_finish); },
       check_gdn_finish,
       [](const KernelTable& t) {
         return bench_vector([](const KernelTable& k, const float* x, const float* nm, float* y,
                                std::size_t n) { k.gdn_finish(x, nm, y, n, 0); }, t);
       }},
  };
}

std::vector<KernelCase> s16_kernel_cases();

// ------------------------------------------------------------------------- int16 kernels

using lic::kern::S16IgemmArgs;

// An output buffer of n integers between two sentinel zones.
template <class T>
struct GuardedInt {
  static constexpr T kMark = T(0x5A5A5A5A & 0x7FFFFFFF);
  std::vector<T> buf;
  explicit GuardedInt(std::size_t n) : buf(n + 2 * kGuard, kMark) {}
  T* data() { return buf.data() + kGuard; }
  template <class Inside>
  bool guards_intact(const std::string& where, Inside inside) const {
    for (std::size_t i = 0; i < buf.size(); ++i) {
      const long off = long(i) - long(kGuard);
      const bool in = off >= 0 && std::size_t(off) < buf.size() - 2 * kGuard && inside(off);
      if (!in && buf[i] != kMark)
        return fail(where + ": wrote outside its output at offset " + std::to_string(off));
    }
    return true;
  }
};

// Draws int16 values: `mode` 0 random full range, 1 the extremes only, 2 small values.
std::int16_t s16_value(Rng& rng, int mode) {
  if (mode == 1) {
    const int v[] = {-32768, -32767, 32767, 0};
    return std::int16_t(v[rng.pick(0, 3)]);
  }
  return std::int16_t(mode == 2 ? rng.pick(-300, 300) : rng.pick(-32768, 32767));
}

struct S16IgemmCase {
  int mr, nc, kc, ntaps, out32, act, alpha_q, alpha_shift, shift, mode;
};

struct S16IgemmInputs {
  std::vector<std::int16_t> abuf, w;
  std::vector<std::ptrdiff_t> taps;
  std::int32_t bias[kNR];
  std::ptrdiff_t a_stride = 0, c_stride = 0, a_lo = 0;
  int pairs = 0;

  S16IgemmInputs(const S16IgemmCase& k, Rng& rng) {
    a_stride = k.kc + rng.pick(0, 3);
    c_stride = k.nc + rng.pick(0, 5);
    pairs = (k.kc + 1) / 2;
    taps.assign(std::size_t(k.ntaps) + 1, 0);
    std::ptrdiff_t hi = 0;
    for (int t = 0; t < k.ntaps; ++t) {
      taps[std::size_t(t)] = rng.pick(-40, 40);
      a_lo = std::min(a_lo, taps[std::size_t(t)]);
      hi = std::max(hi, taps[std::size_t(t)] + (k.mr - 1) * a_stride + k.kc);
    }
    abuf.resize(std::size_t(std::max<std::ptrdiff_t>(hi - a_lo, 1)));
    for (auto& v : abuf) v = s16_value(rng, k.mode);
    // packed panel; the weight of a channel past kc is zero, as the packer makes it
    w.assign(std::size_t(k.ntaps) * std::size_t(pairs) * 2 * kNR, 0);
    for (int t = 0; t < k.ntaps; ++t)
      for (int q = 0; q < pairs; ++q)
        for (int j = 0; j < kNR; ++j)
          for (int h = 0; h < 2; ++h)
            if (2 * q + h < k.kc)
              w[((std::size_t(t) * std::size_t(pairs) + std::size_t(q)) * kNR + std::size_t(j)) * 2 +
                std::size_t(h)] = std::int16_t(k.mode == 1 ? rng.pick(0, 1) * 65534 - 32767
                                                           : s16_value(rng, k.mode));
    for (auto& b : bias) b = k.mode == 2 ? rng.pick(-100000, 100000) : rng.pick(-(1 << 30), 1 << 30);
  }
  const std::int16_t* a() const { return abuf.data() - a_lo; }
  std::int16_t weight(int t, int k, int j) const {
    return w[((std::size_t(t) * std::size_t(pairs) + std::size_t(k / 2)) * kNR + std::size_t(j)) * 2 +
             std::size_t(k % 2)];
  }
};

template <class T>
bool run_s16_igemm(lic::kern::S16IgemmFn fn, const S16IgemmCase& k, const S16IgemmInputs& in,
                   GuardedInt<T>& out, const std::string& where) {
  S16IgemmArgs p{};
  p.a = k.ntaps > 0 ? in.a() : in.abuf.data();
  p.a_stride = in.a_stride;
  p.taps = in.taps.data();
  p.ntaps = k.ntaps;
  p.kc = k.kc;
  p.w = in.w.data();
  p.bias = in.bias;
  if constexpr (sizeof(T) == 4) p.c32 = reinterpret_cast<std::int32_t*>(out.data());
  else p.c16 = reinterpret_cast<std::int16_t*>(out.data());
  p.c_stride = in.c_stride;
  p.nc = k.nc;
  p.shift = k.shift;
  p.act = k.act;
  p.alpha_q = k.alpha_q;
  p.alpha_shift = k.alpha_shift;
  fn(p);
  const std::ptrdiff_t cs = in.c_stride;
  return out.guards_intact(where, [&](long off) { return off < k.mr * cs && off % cs < k.nc; });
}

// docs/int16.md in int64 for element (i, j); `fits` says whether no partial sum of the
// kernel's order could have left int32 (only then must the int32 kernels agree with it).
std::int64_t s16_igemm_reference(const S16IgemmCase& k, const S16IgemmInputs& in, int i, int j,
                                 bool& fits) {
  std::int64_t acc = in.bias[j], lo = std::min<std::int64_t>(acc, 0), hi = std::max<std::int64_t>(acc, 0);
  for (int t = 0; t < k.ntaps; ++t)
    for (int q = 0; q < k.kc; ++q) {
      const std::int64_t term = std::int64_t(in.a()[in.taps[std::size_t(t)] + i * in.a_stride + q]) *
                                in.weight(t, q, j);
      acc += term;
      (term < 0 ? lo : hi) += term;
    }
  fits = lo >= INT32_MIN && hi <= INT32_MAX;
  return acc;
}

bool check_s16_igemm_case(const KernelTable& t, const KernelTable& scalar, const S16IgemmCase& k,
                          Rng& rng) {
  char buf[220];
  std::snprintf(buf, sizeof buf, "%s s16-igemm-%dx16 nc=%d kc=%d taps=%d out%s act=%d(%d,%d) shift=%d mode=%d",
                t.isa, k.mr, k.nc, k.kc, k.ntaps, k.out32 ? "32" : "16", k.act, k.alpha_q,
                k.alpha_shift, k.shift, k.mode);
  const std::string where = buf;
  const S16IgemmInputs in(k, rng);
  const std::size_t n = std::size_t(k.mr) * std::size_t(in.c_stride);
  for (int i = 0; i < k.mr; ++i)
    for (int j = 0; j < k.nc; ++j) {
      bool fits = false;
      const std::int64_t ref = s16_igemm_reference(k, in, i, j, fits);
      if (!fits) continue;
      // the scalar twin against docs/int16.md
      GuardedInt<std::int32_t> s32(n);
      if (!run_s16_igemm(scalar.s16_igemm[k.mr - 1], k, in, s32, where + " (scalar twin)")) return false;
      if (s32.data()[i * in.c_stride + j] != ref)
        return fail(where + ": scalar twin's sum " + std::to_string(s32.data()[i * in.c_stride + j]) +
                    " differs from the exact " + std::to_string(ref));
      break;
    }
  if (k.out32) {
    GuardedInt<std::int32_t> got(n), want(n);
    if (!run_s16_igemm(t.s16_igemm[k.mr - 1], k, in, got, where)) return false;
    if (!run_s16_igemm(scalar.s16_igemm[k.mr - 1], k, in, want, where + " (scalar twin)")) return false;
    if (got.buf != want.buf) return fail(where + ": differs from the scalar twin");
    return true;
  }
  GuardedInt<std::int16_t> got(n), want(n);
  if (!run_s16_igemm(t.s16_igemm[k.mr - 1], k, in, got, where)) return false;
  if (!run_s16_igemm(scalar.s16_igemm[k.mr - 1], k, in, want, where + " (scalar twin)")) return false;
  for (int i = 0; i < k.mr; ++i)
    for (int j = 0; j < k.nc; ++j) {
      const std::int16_t g = got.data()[i * in.c_stride + j], w = want.data()[i * in.c_stride + j];
      if (g != w)
        return fail(where + ": element (" + std::to_string(i) + "," + std::to_string(j) + ") is " +
                    std::to_string(g) + ", the scalar twin gives " + std::to_string(w));
      bool fits = false;
      const std::int64_t acc = s16_igemm_reference(k, in, i, j, fits);
      if (!fits) continue;
      std::int64_t v = lic::kern::sat16(lic::kern::floor_shift(acc, k.shift));
      if (k.act && v < 0)
        v = lic::kern::sat16(lic::kern::round_shift(v * k.alpha_q, k.alpha_shift));
      if (w != v)
        return fail(where + ": the scalar twin gives " + std::to_string(w) + ", docs/int16.md " +
                    std::to_string(v));
    }
  return true;
}

template <int MR>
int check_s16_igemm(const KernelTable& t, const KernelTable& scalar, Rng& rng) {
  const int kcs[] = {1, 2, 3, 5, 8, 13, 16, 17, 31, 64};
  const int taps[] = {0, 1, 2, 5};
  const int shifts[] = {0, 1, 7, 15, 24, 31};
  int cases = 0;
  for (int nc = 1; nc <= kNR; ++nc)
    for (int kc : kcs)
      for (int nt : taps) {
        const int c = cases;
        S16IgemmCase k{MR, nc, kc, nt, c % 5 == 0, c % 3 ? lic::kern::kActLeaky : lic::kern::kActNone,
                       c % 3 == 1 ? 0 : rng.pick(-32767, 32767), c % 3 == 1 ? 0 : rng.pick(0, 30),
                       shifts[c % 6], c % 4 == 0 ? 1 : c % 4 == 1 ? 2 : 0};
        ++cases;
        if (!check_s16_igemm_case(t, scalar, k, rng)) return cases;
      }
  return cases;
}

// int16 vector kernels: bytes identical to the scalar twin for every n = 0..80 and primes,
// unaligned starts, in place; `call(t, x, b, y, n)` with x, b int16 inputs.
template <class Out>
using S16VectorCall = std::function<void(const KernelTable&, const std::int16_t*, const std::int16_t*,
                                         Out*, std::size_t)>;

template <class Out>
int check_s16_vector(const char* name, const KernelTable& t, const KernelTable& scalar, Rng& rng,
                     const S16VectorCall<Out>& call, bool inplace,
                     const std::function<std::int16_t(Rng&)>& domain_b) {
  std::vector<std::size_t> sizes;
  for (std::size_t n = 0; n <= 80; ++n) sizes.push_back(n);
  for (std::size_t n : {97, 127, 251, 509, 1031}) sizes.push_back(n);
  int cases = 0;
  for (std::size_t n : sizes) {
    const std::size_t skew = std::size_t(rng.pick(0, 7));
    std::vector<std::int16_t> xs(n + skew), bs(n + skew);
    const int mode = rng.pick(0, 2);
    for (auto& v : xs) v = s16_value(rng, mode);
    for (auto& v : bs) v = domain_b(rng);
    const std::int16_t* x = xs.data() + skew;
    const std::int16_t* b = bs.data() + skew;
    const std::string where = std::string(t.isa) + " " + name + " n=" + std::to_string(n);
    for (int m = 0; m < (inplace ? 2 : 1); ++m) {
      ++cases;
      GuardedInt<Out> got(n), want(n);
      if (m == 1) {
        if (n) std::memcpy(got.data(), x, n * sizeof(Out));
        call(t, reinterpret_cast<const std::int16_t*>(got.data()), b, got.data(), n);
      } else {
        call(t, x, b, got.data(), n);
      }
      call(scalar, x, b, want.data(), n);
      const std::string w = where + (m ? " in place" : "");
      if (!got.guards_intact(w, [](long) { return true; })) return cases;
      for (std::size_t i = 0; i < n; ++i)
        if (std::memcmp(&got.data()[i], &want.data()[i], sizeof(Out)) != 0) {
          fail(w + ": element " + std::to_string(i) + " is " + std::to_string(got.data()[i]) +
               ", the scalar twin gives " + std::to_string(want.data()[i]) + " (input " +
               std::to_string(x[i]) + ")");
          return cases;
        }
    }
  }
  return cases;
}

std::int16_t any_s16(Rng& rng) { return s16_value(rng, rng.pick(0, 2)); }

int check_s16_vleaky(const KernelTable& t, const KernelTable& s, Rng& rng) {
  int cases = 0;
  for (int aq : {0, 20972, -12345, 32767})
    for (int as : {0, 1, 15, 21, 30})
      cases += check_s16_vector<std::int16_t>(
          "s16-vleaky", t, s, rng,
          [aq, as](const KernelTable& k, const std::int16_t* x, const std::int16_t*, std::int16_t* y,
                   std::size_t n) { k.s16_leaky(x, y, n, aq, as); },
          true, any_s16);
  return cases;
}

int check_s16_vadd(const KernelTable& t, const KernelTable& s, Rng& rng) {
  int cases = 0;
  for (int up : {0, 1, 7, 15})
    for (int sh : {0, 1, 9, 16})
      for (int swap = 0; swap < 2; ++swap)
        cases += check_s16_vector<std::int16_t>(
            "s16-vadd", t, s, rng,
            [up, sh, swap](const KernelTable& k, const std::int16_t* a, const std::int16_t* b,
                           std::int16_t* y, std::size_t n) {
              k.s16_add(a, b, y, n, swap ? 0 : up, swap ? up : 0, sh);
            },
            true, any_s16);
  return cases;
}

int check_s16_vsquare(const KernelTable& t, const KernelTable& s, Rng& rng) {
  int cases = 0;
  for (int sh : {0, 1, 14, 15, 16, 30, 31})
    cases += check_s16_vector<std::int16_t>(
        "s16-vsquare", t, s, rng,
        [sh](const KernelTable& k, const std::int16_t* x, const std::int16_t*, std::int16_t* y,
             std::size_t n) { k.s16_square(x, y, n, sh); },
        true, any_s16);
  return cases;
}

int check_s16_gdn_finish(const KernelTable& t, const KernelTable& s, Rng& rng) {
  int cases = 0;
  // (max norm bits, root shift k, m): norm < 2^bits, norm << k < 2^62
  const int setups[][3] = {{31, 31, 30}, {31, 30, 46}, {20, 42, 0}, {12, 50, 13}, {31, 0, 5},
                           {2, 60, 62}, {31, 31, 62}};
  for (int inverse = 0; inverse < 2; ++inverse)
    for (const auto& st : setups) {
      const int bits = st[0], k = st[1], m = inverse ? st[2] : std::min(st[2], 46);
      std::vector<std::int32_t> norm(1100);
      for (auto& v : norm) {
        const int top = bits >= 31 ? INT32_MAX : (1 << bits) - 1;
        v = rng.pick(0, 9) == 0 ? top : rng.pick(0, 9) == 0 ? 1 : rng.pick(1, top);
      }
      cases += check_s16_vector<std::int16_t>(
          inverse ? "s16-gdn-finish (inverse)" : "s16-gdn-finish", t, s, rng,
          [&norm, k, inverse, m](const KernelTable& kt, const std::int16_t* x, const std::int16_t*,
                                 std::int16_t* y, std::size_t n) {
            kt.s16_gdn_finish(x, norm.data(), y, n, k, inverse, m);
          },
          true, any_s16);
    }
  return cases;
}

int check_quantize(const KernelTable& t, const KernelTable& s, Rng& rng) {
  int cases = 0;
  for (int sh : {-32, -3, 0, 1, 10, 15, 24, 32}) {
    std::vector<std::size_t> sizes;
    for (std::size_t n = 0; n <= 80; ++n) sizes.push_back(n);
    for (std::size_t n : {97, 1031}) sizes.push_back(n);
    for (std::size_t n : sizes) {
      const std::size_t skew = std::size_t(rng.pick(0, 7));
      std::vector<float> xs(n + skew);
      for (float& v : xs) {
        const int kind = rng.pick(0, 3);
        if (kind == 0) v = rng.any();
        else if (kind == 1)  // half-way and next to it, at this shift
          v = std::ldexp(float(rng.pick(-40000, 40000)) + 0.5f, -sh) *
              (rng.pick(0, 1) ? 1.0f : 1.0f + float(rng.pick(-1, 1)) * 1.2e-7f);
        else if (kind == 2) v = std::ldexp(rng.uni(-1.0f, 1.0f), -sh) * 40000.0f;
        else v = std::ldexp(rng.uni(-1.0f, 1.0f), -sh);
      }
      const float* x = xs.data() + skew;
      GuardedInt<std::int16_t> got(n), want(n);
      t.quantize(x, got.data(), n, sh);
      s.quantize(x, want.data(), n, sh);
      ++cases;
      const std::string where = std::string(t.isa) + " f32-s16-vcvt shift=" + std::to_string(sh) +
                                " n=" + std::to_string(n);
      if (!got.guards_intact(where, [](long) { return true; })) return cases;
      for (std::size_t i = 0; i < n; ++i) {
        if (got.data()[i] != want.data()[i])
          return fail(where + ": element " + std::to_string(i) + " is " + std::to_string(got.data()[i]) +
                      ", the scalar twin gives " + std::to_string(want.data()[i]));
        // the twin against docs/int16.md, in long double
        const float xv = x[i];
        long double e = std::isnan(xv) ? 0.0L : std::floor(std::ldexp((long double)xv, sh) + 0.5L);
        e = std::max(-32768.0L, std::min(32767.0L, e));
        if ((long double)want.data()[i] != e)
          return fail(where + ": the scalar twin gives " + std::to_string(want.data()[i]) +
                      " for " + std::to_string(xv));
      }
    }
  }
  return cases;
}

int check_dequantize(const KernelTable& t, const KernelTable& s, Rng&) {
  int cases = 0;
  std::vector<std::int16_t> all(65536);
  for (int i = 0; i < 65536; ++i) all[std::size_t(i)] = std::int16_t(i - 32768);
  for (int sh : {-32, 0, 7, 15, 32}) {
    for (std::size_t skew : {0, 3}) {
      const std::size_t n = all.size() - skew;
      Guarded got(n), want(n);
      t.dequantize(all.data() + skew, got.data(), n, sh);
      s.dequantize(all.data() + skew, want.data(), n, sh);
      ++cases;
      const std::string where = std::string(t.isa) + " s16-f32-vcvt shift=" + std::to_string(sh);
      if (!got.guards_intact(where, [](long) { return true; })) return cases;
      for (std::size_t i = 0; i < n; ++i)
        if (!same_bits(got.data()[i], want.data()[i]) ||
            double(want.data()[i]) != std::ldexp(double(all[i + skew]), -sh))
          return fail(where + ": element " + std::to_string(i));
    }
  }
  return cases;
}

// The int16 scalar twins against hand-computed values (docs/int16.md's examples).
int check_s16_scalar_basics(const KernelTable& s) {
  const std::int16_t x[4] = {-5, 5, -32768, 3};
  std::int16_t y[4];
  s.s16_leaky(x, y, 4, 1, 1);  // alpha 1/2: rs(-5, 1) = -2, rs(-32768, 1) = -16384
  if (y[0] != -2 || y[1] != 5 || y[2] != -16384 || y[3] != 3) fail("scalar s16 leaky");
  const std::int16_t b[4] = {1, 1, -1, 32767};
  s.s16_add(x, b, y, 4, 2, 0, 1);  // rs(4x + b, 1)
  if (y[0] != -9 || y[1] != 11 || y[2] != -32768 || y[3] != 16390) fail("scalar s16 add");
  s.s16_square(x, y, 4, 1);  // rs(x², 1), capped
  if (y[0] != 13 || y[1] != 13 || y[2] != 32767 || y[3] != 5) fail("scalar s16 square");
  const std::int32_t norm[4] = {4, 4, 1, 9};
  s.s16_gdn_finish(x, norm, y, 4, 0, 1, 0);  // x * sqrt(norm)
  if (y[0] != -10 || y[1] != 10 || y[2] != -32768 || y[3] != 9) fail("scalar s16 igdn");
  s.s16_gdn_finish(x, norm, y, 4, 0, 0, 0);  // x / sqrt(norm), half up: -2.5 -> -2, 2.5 -> 3
  if (y[0] != -2 || y[1] != 3 || y[2] != -32768 || y[3] != 1) fail("scalar s16 gdn");
  const float f[4] = {0.5f, -0.5f, 1.5f, std::numeric_limits<float>::quiet_NaN()};
  s.quantize(f, y, 4, 0);
  if (y[0] != 1 || y[1] != 0 || y[2] != 2 || y[3] != 0) fail("scalar quantize");
  return 6;
}

// One 6x16 tile of a g_s-like layer: 128 input channels, 9 taps (a phase of a 5x5 kernel).
double bench_s16_igemm(const KernelTable& t, int mr) {
  Rng rng(7);
  const S16IgemmCase k{mr, kNR, 128, 9, 0, lic::kern::kActLeaky, 0, 0, 12, 2};
  S16IgemmInputs in(k, rng);
  std::vector<std::int16_t> c(std::size_t(mr) * std::size_t(in.c_stride));
  S16IgemmArgs p{in.a(), in.a_stride, in.taps.data(), k.ntaps, k.kc, in.w.data(), in.bias,
                 c.data(), nullptr, in.c_stride, k.nc, k.shift, k.act, 0, 0};
  return ns_per_call([&] { t.s16_igemm[mr - 1](p); });
}

double bench_f32_igemm_phase(const KernelTable& t, int mr) {
  Rng rng(7);
  const IgemmCase k{mr, kNR, 128, 9, 0, 1, 0.0f, false};
  IgemmInputs in(k, rng);
  std::vector<float> c(std::size_t(mr) * std::size_t(in.c_stride));
  const IgemmArgs p = igemm_args(k, in, c.data());
  return ns_per_call([&] { t.igemm[mr - 1](p); });
}

template <int MR>
KernelCase s16_igemm_row() {
  static const std::string name = "s16-igemm-" + std::to_string(MR) + "x16";
  return {name.c_str(), always, [](const KernelTable& t) { return fn_id(t.s16_igemm[MR - 1]); },
          check_s16_igemm<MR>, [](const KernelTable& t) { return bench_s16_igemm(t, MR); }};
}

double bench_s16_vector(const KernelTable& t, const std::function<void(const KernelTable&,
                        const std::int16_t*, std::int16_t*, std::size_t)>& call) {
  Rng rng(7);
  std::vector<std::int16_t> x(4096), y(4096);
  for (auto& v : x) v = s16_value(rng, 0);
  return ns_per_call([&] { call(t, x.data(), y.data(), x.size()); });
}

std::vector<KernelCase> s16_kernel_cases() {
  static std::vector<std::int32_t> norms(4096, 1 << 20);
  return {
      s16_igemm_row<1>(), s16_igemm_row<2>(), s16_igemm_row<3>(), s16_igemm_row<4>(),
      s16_igemm_row<5>(), s16_igemm_row<6>(),
      {"f32-igemm-6x16 (9 taps)", always, [](const KernelTable& t) { return fn_id(t.igemm[5]); },
       [](const KernelTable&, const KernelTable&, Rng&) { return 0; },
       [](const KernelTable& t) { return bench_f32_igemm_phase(t, 6); }},
      {"s16-vleaky", always, [](const KernelTable& t) { return fn_id(t.s16_leaky); }, check_s16_vleaky,
       [](const KernelTable& t) {
         return bench_s16_vector(t, [](const KernelTable& k, const std::int16_t* x, std::int16_t* y,
                                       std::size_t n) { k.s16_leaky(x, y, n, 20972, 21); });
       }},
      {"s16-vadd", always, [](const KernelTable& t) { return fn_id(t.s16_add); }, check_s16_vadd,
       [](const KernelTable& t) {
         return bench_s16_vector(t, [](const KernelTable& k, const std::int16_t* x, std::int16_t* y,
                                       std::size_t n) { k.s16_add(x, x, y, n, 3, 0, 2); });
       }},
      {"s16-vsquare", always, [](const KernelTable& t) { return fn_id(t.s16_square); }, check_s16_vsquare,
       [](const KernelTable& t) {
         return bench_s16_vector(t, [](const KernelTable& k, const std::int16_t* x, std::int16_t* y,
                                       std::size_t n) { k.s16_square(x, y, n, 15); });
       }},
      {"s16-gdn-finish", always, [](const KernelTable& t) { return fn_id(t.s16_gdn_finish); },
       check_s16_gdn_finish,
       [](const KernelTable& t) {
         return bench_s16_vector(t, [](const KernelTable& k, const std::int16_t* x, std::int16_t* y,
                                       std::size_t n) { k.s16_gdn_finish(x, norms.data(), y, n, 30, 1, 30); });
       }},
      {"f32-s16-vcvt", always, [](const KernelTable& t) { return fn_id(t.quantize); }, check_quantize,
       [](const KernelTable& t) {
         std::vector<float> x(4096, 0.3f);
         std::vector<std::int16_t> y(4096);
         return ns_per_call([&] { t.quantize(x.data(), y.data(), x.size(), 12); });
       }},
      {"s16-f32-vcvt", always, [](const KernelTable& t) { return fn_id(t.dequantize); }, check_dequantize,
       [](const KernelTable& t) {
         std::vector<std::int16_t> x(4096, 77);
         std::vector<float> y(4096);
         return ns_per_call([&] { t.dequantize(x.data(), y.data(), x.size(), 12); });
       }},
  };
}

// ------------------------------------------------------------------------- fault injection

KernelTable broken;  // the table under test with one kernel replaced (--break)
lic::kern::IgemmFn real_igemm6 = nullptr;
lic::kern::LeakyFn real_leaky = nullptr;
lic::kern::S16IgemmFn real_s16_igemm6 = nullptr;

void s16_igemm6_overrun(const S16IgemmArgs& p) {
  real_s16_igemm6(p);
  if (p.c32 != nullptr) p.c32[p.nc] = 0;
  else p.c16[p.nc] = 0;  // one past the last valid column of row 0
}
void s16_igemm6_wrong(const S16IgemmArgs& p) {
  real_s16_igemm6(p);
  if (p.c32 != nullptr) p.c32[0] ^= 1;
  else p.c16[0] = std::int16_t(p.c16[0] ^ 1);
}

void igemm6_overrun(const IgemmArgs& p) {
  real_igemm6(p);
  p.c[p.nc] = 0.0f;  // one past the last valid column of row 0
}
void igemm6_wrong(const IgemmArgs& p) {
  real_igemm6(p);
  p.c[0] = std::nextafter(p.c[0], kInf) * 1.001f + 1e-3f;
}
void leaky_overrun(const float* x, float* y, std::size_t n, float alpha) {
  real_leaky(x, y, n, alpha);
  y[n] = 0.0f;
}

KernelTable inject(const KernelTable& t, const std::string& how) {
  broken = t;
  real_igemm6 = t.igemm[5];
  real_leaky = t.leaky;
  real_s16_igemm6 = t.s16_igemm[5];
  if (how == "overrun") {
    broken.igemm[5] = igemm6_overrun;
    broken.leaky = leaky_overrun;
    broken.s16_igemm[5] = s16_igemm6_overrun;
  } else {
    broken.igemm[5] = igemm6_wrong;
    broken.s16_igemm[5] = s16_igemm6_wrong;
  }
  return broken;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned seed = 1;
  bool bench = false;
  std::string breakage;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seed" && i + 1 < argc) {
      seed = unsigned(std::stoul(argv[++i]));
    } else if (a == "--bench") {
      bench = true;
    } else if (a == "--break" && i + 1 < argc && (std::string(argv[i + 1]) == "overrun" ||
                                                  std::string(argv[i + 1]) == "value")) {
      breakage = argv[++i];
    } else {
      std::fprintf(stderr, "usage: check_kernels [--seed N] [--bench] [--break overrun|value]\n");
      return 2;
    }
  }

  // The levels to test: every one the CPU supports that has kernels of its own.
  std::vector<KernelTable> levels;
  for (int i = 0; i < lic::kern::kIsaCount; ++i) {
    const Isa isa = static_cast<Isa>(i);
    const char* name = lic::kern::isa_name(isa);
    if (!lic::kern::cpu_supports(isa)) {
      std::printf("%-9s skipped: this CPU lacks it\n", name);
    } else if (!lic::kern::has_kernels(isa)) {
      std::printf("%-9s skipped: no kernels of its own in this build\n", name);
    } else {
      levels.push_back(lic::kern::kernels_for(isa));
    }
  }
  if (!breakage.empty()) levels.back() = inject(levels.back(), breakage);

  const KernelTable& scalar = levels.front();
  for (const KernelTable& t : levels)
    if (t.level == Isa::kAvx2Fma) fma_reference = &t;
  check_scalar_basics(scalar);
  check_s16_scalar_basics(scalar);
  std::vector<KernelCase> cases = kernel_cases();
  for (KernelCase& k : s16_kernel_cases()) cases.push_back(std::move(k));
  for (const KernelCase& k : cases) {
    for (std::size_t l = 0; l < levels.size(); ++l) {
      const KernelTable& t = levels[l];
      if (!k.has(t)) continue;  // a tile height this level does not use
      if (l > 0 && k.has(levels[l - 1]) && k.id(t) == k.id(levels[l - 1])) {
        std::printf("%-9s %-16s same as %s\n", t.isa, k.name, levels[l - 1].isa);
        continue;
      }
      Rng rng(seed * 1000003u + unsigned(l));
      const int before = failures;
      const int n = k.check(t, scalar, rng);
      std::printf("%-9s %-16s %s (%d cases)\n", t.isa, k.name, failures == before ? "ok" : "FAILED",
                  n);
    }
  }

  if (bench) {
    std::printf("\nbench: ns per call (speed-up over the lowest level that has the kernel); "
                "igemm: one MRx16 or MRx32 tile, 128 channels x 25 taps; vector kernels: 4096 "
                "floats\n");
    for (const KernelCase& k : cases) {
      double base = 0;
      std::printf("%-16s", k.name);
      for (std::size_t l = 0; l < levels.size(); ++l) {
        if (!k.has(levels[l])) continue;
        const double ns = k.bench(levels[l]);
        if (base == 0) base = ns;
        std::printf("  %s %10.1f ns (%.2fx)", levels[l].isa, ns, base / ns);
      }
      std::printf("\n");
    }
  }

  if (failures) {
    std::printf("%d failure(s)\n", failures);
    return 1;
  }
  std::printf("all kernels passed on:");
  for (const KernelTable& t : levels) std::printf(" %s", t.isa);
  std::printf("\n");
  return 0;
}
