// checkasm-style kernel tests: every SIMD kernel against its scalar twin and against a
// double-precision reference, on random inputs at sizes that hit every tail, with sentinel
// guard zones around outputs and inputs sized exactly (so ASan sees any over-read).
//
//   check_kernels [SEED]      prints one line per kernel set checked; exit 0 = all passed
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lic/dispatch.hpp"

namespace {

using lic::kern::IgemmArgs;
using lic::kern::KernelTable;

constexpr float kSentinel = -12345.6789f;
int failures = 0;

void fail(const std::string& what) {
  if (failures < 20) std::printf("FAIL: %s\n", what.c_str());
  ++failures;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

struct Rng {
  std::mt19937 g;
  explicit Rng(unsigned seed) : g(seed) {}
  float uni(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(g); }
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g); }
};

// One igemm case run through `fn`; checks guard zones and the result against a double
// reference with a bound from the magnitudes involved (SIMD uses FMA, scalar does not).
void check_igemm_case(const char* isa, lic::kern::IgemmFn fn, int mr, int nc, int kc, int ntaps,
                      int accumulate, int act, float alpha, Rng& rng) {
  const std::ptrdiff_t a_stride = kc + rng.pick(0, 3);
  std::vector<std::ptrdiff_t> taps(std::size_t(ntaps) + 1);  // +1: non-null even for 0 taps
  for (int t = 0; t < ntaps; ++t) taps[std::size_t(t)] = rng.pick(-40, 40);
  // Exact extent of what the kernel may read: rows [0, mr) x taps x [0, kc).
  std::ptrdiff_t lo = 0, hi = 0;
  for (int t = 0; t < ntaps; ++t) {
    lo = std::min(lo, taps[std::size_t(t)]);
    hi = std::max(hi, taps[std::size_t(t)] + (mr - 1) * a_stride + kc);
  }
  std::vector<float> abuf(std::size_t(std::max<std::ptrdiff_t>(hi - lo, 1)));
  for (float& v : abuf) v = rng.uni(-1.0f, 1.0f);
  const float* a = abuf.data() - lo;
  std::vector<float> w(std::size_t(ntaps) * std::size_t(kc) * 16 + 1);
  for (float& v : w) v = rng.uni(-1.0f, 1.0f);
  float bias[16];
  for (float& v : bias) v = rng.uni(-1.0f, 1.0f);
  const std::ptrdiff_t c_stride = nc + rng.pick(0, 5);
  const std::size_t guard = 8;
  std::vector<float> cbuf(guard * 2 + std::size_t(mr) * std::size_t(c_stride), kSentinel);
  float* c = cbuf.data() + guard;
  std::vector<float> init(std::size_t(mr) * 16);
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < 16; ++j) {
      init[std::size_t(i) * 16 + std::size_t(j)] = accumulate ? rng.uni(-2.0f, 2.0f) : bias[j];
      if (accumulate && j < nc) c[i * c_stride + j] = init[std::size_t(i) * 16 + std::size_t(j)];
    }

  IgemmArgs p;
  p.a = ntaps > 0 ? a : abuf.data();
  p.a_stride = a_stride;
  p.taps = taps.data();
  p.ntaps = ntaps;
  p.kc = kc;
  p.w = w.data();
  p.bias = bias;
  p.c = c;
  p.c_stride = c_stride;
  p.nc = nc;
  p.accumulate = accumulate;
  p.act = act;
  p.alpha = alpha;
  fn(p);

  char where[200];
  std::snprintf(where, sizeof where, "%s igemm mr=%d nc=%d kc=%d taps=%d acc=%d act=%d", isa, mr,
                nc, kc, ntaps, accumulate, act);
  for (std::size_t i = 0; i < cbuf.size(); ++i) {
    const std::ptrdiff_t off = std::ptrdiff_t(i) - std::ptrdiff_t(guard);
    const bool inside = off >= 0 && off < mr * c_stride && (off % c_stride) < nc;
    if (!inside && !same_bits(cbuf[i], kSentinel)) {
      fail(std::string(where) + ": wrote outside its output at offset " + std::to_string(off));
      return;
    }
  }
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nc; ++j) {
      const double start = init[std::size_t(i) * 16 + std::size_t(j)];
      double ref = start, mag = std::fabs(start);
      for (int t = 0; t < ntaps; ++t)
        for (int k = 0; k < kc; ++k) {
          const double term = double(a[taps[std::size_t(t)] + i * a_stride + k]) *
                              double(w[(std::size_t(t) * std::size_t(kc) + std::size_t(k)) * 16 +
                                       std::size_t(j)]);
          ref += term;
          mag += std::fabs(term);
        }
      if (act && !(ref >= 0)) ref *= alpha, mag *= std::fabs(alpha);
      const double bound = 2.0 * (ntaps * kc + 2) * std::ldexp(1.0, -24) * mag + 1e-30;
      const double got = c[i * c_stride + j];
      if (!(std::fabs(got - ref) <= bound)) {
        fail(std::string(where) + ": element (" + std::to_string(i) + "," + std::to_string(j) +
             ") is " + std::to_string(got) + ", expected " + std::to_string(ref));
        return;
      }
    }
}

// Both kernel sets on the same case must agree closely too (same inputs, same seed).
void check_igemm(const char* isa, const KernelTable& t, unsigned seed) {
  const int kcs[] = {1, 2, 3, 5, 8, 13, 17, 31};
  const int taps[] = {0, 1, 2, 5};
  Rng rng(seed);
  for (int mr = 1; mr <= 6; ++mr)
    for (int nc = 1; nc <= 16; ++nc)
      for (int kc : kcs)
        for (int nt : taps) {
          const int act = (mr + nc + kc) % 3 == 0 ? 0 : 1;
          const float alpha = (nc % 2) ? 0.1f : -0.7f;
          for (int accumulate = 0; accumulate < 2; ++accumulate)
            check_igemm_case(isa, t.igemm[mr - 1], mr, nc, kc, nt, accumulate, act, alpha, rng);
        }
}

// Element-wise kernels: bit-exact against the scalar twin (same IEEE operations).
void check_elementwise(const char* isa, const KernelTable& t, const KernelTable& ref,
                       unsigned seed) {
  Rng rng(seed);
  for (std::size_t n = 0; n < 80; n += (n < 40 ? 1 : 7)) {
    const std::size_t guard = 8;
    std::vector<float> x(n), y(n), norm(n);
    for (std::size_t i = 0; i < n; ++i) {
      x[i] = rng.uni(-3.0f, 3.0f);
      y[i] = rng.uni(-3.0f, 3.0f);
      norm[i] = rng.uni(0.01f, 4.0f);
    }
    if (n > 3) x[2] = -0.0f;
    auto run = [&](const char* name, auto&& call_new, auto&& call_ref) {
      std::vector<float> got(n + 2 * guard, kSentinel), want(n + 2 * guard, kSentinel);
      call_new(got.data() + guard);
      call_ref(want.data() + guard);
      for (std::size_t i = 0; i < got.size(); ++i)
        if (!same_bits(got[i], want[i])) {
          fail(std::string(isa) + " " + name + " n=" + std::to_string(n) + " differs at " +
               std::to_string(long(i) - long(guard)));
          return;
        }
    };
    run("leaky", [&](float* o) { t.leaky(x.data(), o, n, 0.1f); },
        [&](float* o) { ref.leaky(x.data(), o, n, 0.1f); });
    run("leaky(-2)", [&](float* o) { t.leaky(x.data(), o, n, -2.0f); },
        [&](float* o) { ref.leaky(x.data(), o, n, -2.0f); });
    run("leaky in place", [&](float* o) {
          if (n) std::memcpy(o, x.data(), n * sizeof(float));
          t.leaky(o, o, n, 0.3f);
        },
        [&](float* o) { ref.leaky(x.data(), o, n, 0.3f); });
    run("add", [&](float* o) { t.add(x.data(), y.data(), o, n); },
        [&](float* o) { ref.add(x.data(), y.data(), o, n); });
    run("square", [&](float* o) { t.square(x.data(), o, n); },
        [&](float* o) { ref.square(x.data(), o, n); });
    run("gdn", [&](float* o) { t.gdn_finish(x.data(), norm.data(), o, n, 0); },
        [&](float* o) { ref.gdn_finish(x.data(), norm.data(), o, n, 0); });
    run("igdn", [&](float* o) { t.gdn_finish(x.data(), norm.data(), o, n, 1); },
        [&](float* o) { ref.gdn_finish(x.data(), norm.data(), o, n, 1); });
  }
}

// The scalar twins themselves against hand-written expectations.
void check_scalar_basics(const KernelTable& s) {
  const float x[4] = {-2.0f, 0.0f, 3.0f, -0.5f};
  float y[4];
  s.leaky(x, y, 4, 0.25f);
  if (y[0] != -0.5f || y[1] != 0.0f || y[2] != 3.0f || y[3] != -0.125f) fail("scalar leaky");
  const float norm[4] = {4.0f, 1.0f, 9.0f, 0.25f};
  s.gdn_finish(x, norm, y, 4, 0);
  if (y[0] != -1.0f || y[2] != 1.0f || y[3] != -1.0f) fail("scalar gdn");
  s.gdn_finish(x, norm, y, 4, 1);
  if (y[0] != -4.0f || y[2] != 9.0f || y[3] != -0.25f) fail("scalar igdn");
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned seed = argc > 1 ? unsigned(std::stoul(argv[1])) : 1u;
  const KernelTable scalar = lic::kern::select_kernels(true);
  const KernelTable best = lic::kern::select_kernels(false);
  check_scalar_basics(scalar);
  check_igemm(scalar.isa, scalar, seed);
  std::printf("checked %s\n", scalar.isa);
  if (std::strcmp(best.isa, scalar.isa) != 0) {
    check_igemm(best.isa, best, seed);
    check_elementwise(best.isa, best, scalar, seed);
    std::printf("checked %s\n", best.isa);
  }
  if (failures) {
    std::printf("%d failure(s)\n", failures);
    return 1;
  }
  return 0;
}
