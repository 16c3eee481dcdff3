// How fast fresh pages are mapped in, by one thread and by two at once (issue 10: whether
// page filling scales on this machine, and what mapping while another thread populates
// costs). Two threads populate 16 MiB each, first from regions mapped beforehand, then each
// mapping its own region while the other populates (the address-space lock: mmap takes it
// for writing, MADV_POPULATE_WRITE for reading).
//
//     g++ -O2 -pthread benchmarks/page_fill.cpp -o /tmp/page_fill && /tmp/page_fill
#include <sys/mman.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <thread>

namespace {

constexpr std::size_t kBytes = std::size_t(16) << 20;

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

char* map_region() {
  void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<char*>(p);
}

// Both threads at once; each maps its region first when `map_inside`.
double two_threads(bool map_inside) {
  char* regions[2] = {nullptr, nullptr};
  if (!map_inside)
    for (char*& r : regions) r = map_region();
  const auto t0 = std::chrono::steady_clock::now();
  auto fill = [&](int i) {
    if (map_inside) regions[i] = map_region();
    if (regions[i]) madvise(regions[i], kBytes, MADV_POPULATE_WRITE);
  };
  std::thread a(fill, 0), b(fill, 1);
  a.join();
  b.join();
  const double ms = ms_since(t0);
  for (char* r : regions)
    if (r) munmap(r, kBytes);
  return ms;
}

}  // namespace

int main() {
  for (int rep = 0; rep < 5; ++rep) {
    char* p = map_region();
    if (!p) return 1;
    const auto t0 = std::chrono::steady_clock::now();
    madvise(p, kBytes, MADV_POPULATE_WRITE);
    const double one = ms_since(t0);
    munmap(p, kBytes);
    const double mapped_before = two_threads(false), mapped_inside = two_threads(true);
    std::printf("16 MiB: one thread %.2f ms; 2 x 16 MiB at once: %.2f ms (mapped beforehand), "
                "%.2f ms (each mapping its own)\n", one, mapped_before, mapped_inside);
  }
  return 0;
}
