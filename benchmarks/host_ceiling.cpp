// The host's own two-thread ceiling, for benchmarks/ab_programs.py: a loop of independent
// 8-wide multiply-add chains (compute-bound like the networks' GEMMs, no memory traffic),
// its work shared out between THREADS threads. On a virtual machine whose two CPUs share a
// physical core or its neighbours' load, this loop itself runs well short of 2x faster on
// two threads, and no program can do better than it.
//
//   host_ceiling THREADS MILLIONS           prints the wall time (ms) of MILLIONS million
//                                           iterations split evenly between THREADS threads,
//                                           and a checksum
//   host_ceiling THREADS MILLIONS shared    the same work taken by the threads a quarter
//                                           million at a time from a shared counter; also
//                                           prints how many pieces each thread took
//
// If the threads merely ran at unequal speeds, the shared counter would let the faster one
// take more and reach 2x where the even split does not; if both are slowed whenever both
// run, neither way gets there.
//
// Built by ab_programs.py with -O2 -march=native (fused multiply-adds where the CPU has them).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

typedef float v8 __attribute__((vector_size(32)));

// Ten chains in registers, so that the multiply-add latency is hidden; returns a value
// the compiler cannot drop.
static float chains(long iterations) {
  v8 a0, a1, a2, a3, a4, a5, a6, a7, a8, a9;
  for (int j = 0; j < 8; ++j) {
    a0[j] = 1.0f + 1e-7f * float(j);
    a1[j] = a0[j] + 1e-6f, a2[j] = a0[j] + 2e-6f, a3[j] = a0[j] + 3e-6f, a4[j] = a0[j] + 4e-6f;
    a5[j] = a0[j] + 5e-6f, a6[j] = a0[j] + 6e-6f, a7[j] = a0[j] + 7e-6f, a8[j] = a0[j] + 8e-6f;
    a9[j] = a0[j] + 9e-6f;
  }
  v8 m, c;
  for (int j = 0; j < 8; ++j) m[j] = 0.9999999f, c[j] = 1e-7f;
  for (long k = 0; k < iterations; ++k) {
    a0 = a0 * m + c, a1 = a1 * m + c, a2 = a2 * m + c, a3 = a3 * m + c, a4 = a4 * m + c;
    a5 = a5 * m + c, a6 = a6 * m + c, a7 = a7 * m + c, a8 = a8 * m + c, a9 = a9 * m + c;
    // (no instruction: keeps the compiler from folding the iterations together)
    asm volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6),
                 "+x"(a7), "+x"(a8), "+x"(a9));
  }
  const v8 s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9;
  return s[0];
}

static constexpr long kPiece = 250000;

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const long millions = argc > 2 ? std::atol(argv[2]) : 50;
  const bool shared = argc == 4 && std::strcmp(argv[3], "shared") == 0;
  if ((argc != 3 && !shared) || threads < 1 || threads > 256 || millions < 1 ||
      millions > 100000) {
    std::fprintf(stderr, "usage: host_ceiling THREADS MILLIONS [shared]\n");
    return 2;
  }
  const long each = millions * 1000000 / threads;
  const long pieces = millions * 1000000 / kPiece;
  std::atomic<long> next_piece{0};
  std::vector<float> sums(static_cast<std::size_t>(threads));
  std::vector<long> taken(static_cast<std::size_t>(threads));
  auto work = [&](int t) {
    if (!shared) {
      sums[std::size_t(t)] = chains(each);
      return;
    }
    float sum = 0.0f;
    while (next_piece.fetch_add(1) < pieces) {
      sum += chains(kPiece);
      ++taken[std::size_t(t)];
    }
    sums[std::size_t(t)] = sum;
  };
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& t : pool) t.join();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  float total = 0.0f;
  for (float s : sums) total += s;
  std::printf("%.3f %g", ms, double(total));  // the sum keeps the loops alive
  if (shared)
    for (long n : taken) std::printf(" %ld", n);
  std::printf("\n");
  return 0;
}
