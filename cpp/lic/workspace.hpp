// BufferPool: float buffers kept for reuse, within a run (a value that died gives its
// memory to the next one) and across runs, like ONNX Runtime's arena. Fresh memory is
// expensive to first touch (page faults: 60-110 ms for 50 MB on the benchmark machine,
// more than the convolution writing it), so the runtime recycles instead of reallocating.
// Thread-safe: concurrent Model::run calls share the pool.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "lic/tensor.hpp"

namespace lic {

// (A template over the element type: float buffers for the float ops, int16 ones for the
// fixed-point ops of docs/int16.md.)
// Asks the kernel to back the 2 MiB-aligned part of [p, p + bytes) with huge pages when it
// is first touched. A fresh process first touches every buffer it uses: perf put 6-20% of
// a decoder's CPU time (1 and 2 threads) in page faults (clear_page); with the windows in 2 MiB
// pages its faults went from 7555 to 4492. Best effort: where transparent huge pages are
// off, or not Linux, nothing changes.
inline void advise_huge_pages(void* p, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t kHuge = std::uintptr_t(1) << 21;
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t lo = (a + kHuge - 1) & ~(kHuge - 1);
  const std::uintptr_t hi = (a + bytes) & ~(kHuge - 1);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

// Buffers of at least this many bytes are given huge pages (one at the least).
constexpr std::size_t kHugePageBufferBytes = std::size_t(3) << 20;

template <class T>
class BasicBufferPool {
 public:
  // A buffer of exactly n elements. Its contents are unspecified: callers overwrite it all.
  std::vector<T> take(std::size_t n) {
    std::vector<T> v;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Best fit: the smallest kept buffer that holds n floats without reallocating.
      std::size_t best = free_.size();
      for (std::size_t i = 0; i < free_.size(); ++i)
        if (free_[i].capacity() >= n &&
            (best == free_.size() || free_[i].capacity() < free_[best].capacity()))
          best = i;
      if (best != free_.size()) {
        v = std::move(free_[best]);
        free_[best] = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (v.capacity() < n && n * sizeof(T) >= kHugePageBufferBytes) {
      v.reserve(n);  // allocated, not yet touched: the advice decides the page size
      advise_huge_pages(v.data(), n * sizeof(T));
    }
    v.resize(n);  // within capacity: no allocation
    // LIC_POISON_BUFFERS=1 (tests): every buffer handed out holds NaN (int16: -32768), so
    // that reading an element nobody wrote shows in the output.
    static const bool poison = std::getenv("LIC_POISON_BUFFERS") != nullptr;
    if (poison) std::fill(v.begin(), v.end(), poison_value());
    return v;
  }

  static T poison_value() {
    if constexpr (std::is_floating_point<T>::value)
      return std::numeric_limits<T>::quiet_NaN();
    else
      return std::numeric_limits<T>::min();
  }

  void give(std::vector<T>&& v) {
    if (v.capacity() == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(v));
    v = std::vector<T>();
  }

  // Returns all kept memory to the system.
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    free_.clear();
  }

  std::size_t kept_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t total = 0;
    for (const auto& v : free_) total += v.capacity() * sizeof(T);
    return total;
  }

 private:
  std::mutex mu_;
  std::vector<std::vector<T>> free_;
};

using BufferPool = BasicBufferPool<float>;
using S16BufferPool = BasicBufferPool<std::int16_t>;

// A tensor whose storage comes from `pool` (contents unspecified).
inline Tensor pooled_tensor(BufferPool& pool, int h, int w, int c) {
  Tensor t;
  const std::size_t n = Tensor::checked_size(h, w, c);
  t.height = h;
  t.width = w;
  t.channels = c;
  t.data = pool.take(n);
  return t;
}

// An int16 tensor at `shift` whose storage comes from `pool` (contents unspecified).
inline QTensor pooled_qtensor(S16BufferPool& pool, int h, int w, int c, int shift) {
  QTensor t;
  const std::size_t n = Tensor::checked_size(h, w, c);
  t.height = h;
  t.width = w;
  t.channels = c;
  t.shift = shift;
  t.data = pool.take(n);
  return t;
}

}  // namespace lic
