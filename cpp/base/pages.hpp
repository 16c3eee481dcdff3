// Fresh memory, mapped in at once: a new buffer otherwise takes a page fault per 4 KiB
// page on first touch, which a program run once per image pays for every buffer it makes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace lic {

// Maps in every page of [p, p + bytes) with one system call where Linux offers it
// (MADV_POPULATE_WRITE, Linux 5.14): a fresh buffer otherwise takes a page fault per 4 KiB
// page on first touch, which on the benchmark VM costs twice as long (16 MiB: 4.1-4.6 ms
// faulted in, 1.9-2.1 ms populated; docs/performance.md, "Earlier run: PNG writer, loading
// and thread start"). Elsewhere, or when the kernel refuses, nothing happens and the pages
// fault in as before. The call holds the address-space lock for reading: another thread's
// mmap or munmap meanwhile waits for it (why the programs keep one heap,
// codec/programs/cli.hpp).
inline void populate_pages(void* p, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
  static const std::uintptr_t page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t first = (a + page - 1) / page * page, end = (a + bytes) / page * page;
  if (end > first) madvise(reinterpret_cast<void*>(first), end - first, MADV_POPULATE_WRITE);
#else
  (void)p;
  (void)bytes;
#endif
}

// Buffers from this size on are populated when they are allocated (below, a page or two:
// the call would cost more than the faults it saves).
constexpr std::size_t kPopulateBytes = std::size_t(256) << 10;

// v.resize(n) (elements value-initialised as by resize), with the pages of a new
// allocation mapped in at once (populate_pages).
template <class T>
void resize_populated(std::vector<T>& v, std::size_t n) {
  if (n > v.capacity() && n * sizeof(T) >= kPopulateBytes) {
    std::vector<T> fresh;
    fresh.reserve(n);
    populate_pages(fresh.data(), n * sizeof(T));
    fresh.assign(v.begin(), v.end());
    v = std::move(fresh);
  }
  v.resize(n);
}

}  // namespace lic
